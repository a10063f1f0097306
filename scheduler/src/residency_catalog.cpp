#include <ember/scheduler/residency_catalog.hpp>

namespace ember {

namespace {
bool has_prefix(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}
}  // namespace

void residency_catalog::replace_worker(int worker, std::vector<residency_record> records) {
  std::erase_if(_records, [&](const auto& r) { return r.second.worker == worker; });
  update(worker, std::move(records), {});
}

void residency_catalog::update(int worker, std::vector<residency_record> changed,
                               const std::vector<std::string>& removed) {
  for (const auto& key : removed) {
    auto it = _records.find(key);
    if (it != _records.end() && it->second.worker == worker) _records.erase(it);
  }
  for (auto& r : changed) {
    r.worker = worker;
    _lost.erase(r.key);
    auto key = r.key;
    _records[key] = std::move(r);
  }
}

void residency_catalog::worker_lost(int worker, const std::string& worker_name,
                                    const std::string& reason) {
  for (auto it = _records.begin(); it != _records.end();) {
    if (it->second.worker != worker) {
      ++it;
      continue;
    }
    if (has_prefix(it->first, cache_prefix)) {
      _lost[it->first] = "worker " + std::to_string(worker) + " (" + worker_name +
                         "), which held it, was lost: " + reason;
    }
    it = _records.erase(it);
  }
}

void residency_catalog::forget_lost(const std::string& key) { _lost.erase(key); }

std::optional<residency_record> residency_catalog::find(const std::string& key) const {
  auto it = _records.find(key);
  if (it == _records.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> residency_catalog::lost_reason(const std::string& key) const {
  auto it = _lost.find(key);
  if (it == _lost.end()) return std::nullopt;
  return it->second;
}

std::vector<residency_record> residency_catalog::records() const { return with_prefix(""); }

std::vector<residency_record> residency_catalog::with_prefix(std::string_view prefix) const {
  std::vector<residency_record> out;
  for (auto it = _records.lower_bound(std::string(prefix));
       it != _records.end() && has_prefix(it->first, prefix); ++it)
    out.push_back(it->second);
  return out;
}

std::vector<std::pair<std::string, std::string>> residency_catalog::lost_with_prefix(
    std::string_view prefix) const {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = _lost.lower_bound(std::string(prefix));
       it != _lost.end() && has_prefix(it->first, prefix); ++it)
    out.emplace_back(it->first, it->second);
  return out;
}

std::map<int, input_residency> residency_catalog::residency_of(
    const std::vector<std::string>& keys) const {
  std::map<int, input_residency> out;
  for (const auto& key : keys) {
    auto it = _records.find(key);
    if (it == _records.end()) continue;
    auto& r = it->second;
    auto& in = out[r.worker];
    switch (r.tier) {
      case memory_tier::device:
        in.device += r.bytes;
        break;
      case memory_tier::pinned_host:
      case memory_tier::host:
        in.host += r.bytes;
        break;
      case memory_tier::disk:
        in.disk += r.bytes;
        break;
    }
  }
  return out;
}

}  // namespace ember
