#include <ember/host/error.hpp>
#include <ember/scheduler/block_store.hpp>

namespace ember {

void block_store::put(const block_key& key, block b) {
  std::lock_guard lock(_mutex);
  auto bytes = b.bytes;
  auto [it, inserted] = _blocks.emplace(key, std::move(b));
  EMBER_EXPECTS(inserted, logic_error,
                "block (stage " + std::to_string(key.stage) + ", map " +
                    std::to_string(key.map_partition) + ", reduce " +
                    std::to_string(key.reduce_partition) + ") was written twice");
  _bytes += bytes;
}

std::optional<block> block_store::get(const block_key& key) const {
  std::lock_guard lock(_mutex);
  auto it = _blocks.find(key);
  if (it == _blocks.end()) return std::nullopt;
  return it->second;
}

std::vector<block> block_store::reduce_input(int stage, int reduce_partition) const {
  std::lock_guard lock(_mutex);
  std::vector<block> out;
  for (auto it = _blocks.lower_bound(block_key{stage, 0, 0});
       it != _blocks.end() && it->first.stage == stage; ++it) {
    if (it->first.reduce_partition == reduce_partition) out.push_back(it->second);
  }
  return out;
}

void block_store::erase_stage(int stage) {
  std::lock_guard lock(_mutex);
  auto first = _blocks.lower_bound(block_key{stage, 0, 0});
  auto last = _blocks.lower_bound(block_key{stage + 1, 0, 0});
  for (auto it = first; it != last; ++it) _bytes -= it->second.bytes;
  _blocks.erase(first, last);
}

void block_store::erase_task(int stage, int map_partition) {
  std::lock_guard lock(_mutex);
  auto first = _blocks.lower_bound(block_key{stage, map_partition, 0});
  auto last = _blocks.lower_bound(block_key{stage, map_partition + 1, 0});
  for (auto it = first; it != last; ++it) _bytes -= it->second.bytes;
  _blocks.erase(first, last);
}

void block_store::clear() {
  std::lock_guard lock(_mutex);
  _blocks.clear();
  _bytes = 0;
}

std::size_t block_store::size() const {
  std::lock_guard lock(_mutex);
  return _blocks.size();
}

std::int64_t block_store::bytes() const {
  std::lock_guard lock(_mutex);
  return _bytes;
}

}  // namespace ember
