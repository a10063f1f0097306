#include <ember/host/partition_store.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <unordered_map>

#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <ember/host/spill_file.hpp>

namespace fs = std::filesystem;

namespace ember {

std::string_view to_string(memory_tier t) noexcept {
  switch (t) {
    case memory_tier::device:
      return "device";
    case memory_tier::pinned_host:
      return "pinned_host";
    case memory_tier::host:
      return "host";
    case memory_tier::disk:
      return "disk";
  }
  return "unknown";
}

table host_tier_copier::to_host(const table_view& rows, memory_resource& mr) {
  return copy_table(rows, mr);
}

table host_tier_copier::to_device(const table_view& rows, memory_resource& mr) {
  return copy_table(rows, mr);
}

namespace {

using clock_type = std::chrono::steady_clock;

// How long acquire() waits for another thread's move of the same partition (a local copy or a
// file read: seconds at most, unless the machine is in trouble).
constexpr auto move_wait_limit = std::chrono::seconds(120);

struct entry {
  std::string key;
  std::shared_ptr<const void> owner;
  table_view rows;
  memory_tier tier = memory_tier::device;
  std::int64_t bytes = 0;
  std::int64_t rows_count = 0;
  fs::path file;  // disk tier only
  std::int64_t file_bytes = 0;
  int pins = 0;
  bool moving = false;
  bool droppable = false;
  std::uint64_t tick = 0;
  std::chrono::system_clock::time_point last_use{};
};

// Lower is faster; a partition moves one rank down when spilled.
int rank(memory_tier t) {
  switch (t) {
    case memory_tier::device:
      return 0;
    case memory_tier::pinned_host:
    case memory_tier::host:
      return 1;
    case memory_tier::disk:
      return 2;
  }
  return 2;
}

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// A fresh folder of this store's own inside `parent` (mkdtemp: never one that another store,
// in this process or another worker sharing the spill folder, uses).
fs::path private_spill_dir(const fs::path& parent, const std::string& name) {
  auto pattern = (parent / ("ember-spill-" + std::to_string(::getpid()) + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw invalid_input(name + ": cannot create a spill folder under " + parent.string() + ": " +
                        std::strerror(errno));
  }
  return pattern;
}

// Fault injection (partition_store_options::corrupt_first_spills).
void flip_middle_byte(const fs::path& file) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(0, std::ios::end);
  auto size = static_cast<std::streamoff>(f.tellg());
  if (size <= 0) return;
  f.seekg(size / 2);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(size / 2);
  f.write(&c, 1);
  logger().warn("fault injection: flipped byte {} of spill file {}", size / 2, file.string());
}

}  // namespace

struct partition_store::state {
  partition_store_options options;
  bool private_dir = false;
  std::shared_ptr<tier_copier> copier;

  mutable std::mutex mutex;  // guards everything below
  std::condition_variable moved;
  std::unordered_map<std::string, std::shared_ptr<entry>> entries;
  std::uint64_t tick = 0;
  std::uint64_t next_file = 0;
  std::size_t disk_used = 0, disk_peak = 0;
  partition_store_stats counters;
  std::set<std::string> changed, removed;
  std::atomic<int> corrupted_spills{0};

  tracking_resource& tracker(memory_tier t) {
    return t == memory_tier::device ? *options.device : *options.host;
  }

  void touch(entry& e) {
    e.tick = ++tick;
    e.last_use = std::chrono::system_clock::now();
  }
  void mark_changed(const std::string& key) {
    changed.insert(key);
    removed.erase(key);
  }
  void mark_removed(const std::string& key) {
    changed.erase(key);
    removed.insert(key);
  }

  // Removes `e` from the map when it is still the record for its key. Caller holds the mutex.
  bool forget(const std::shared_ptr<entry>& e) {
    auto it = entries.find(e->key);
    if (it == entries.end() || it->second != e) return false;
    entries.erase(it);
    mark_removed(e->key);
    return true;
  }

  void drop_file(entry& e) {
    if (e.file.empty()) return;
    std::error_code ec;
    fs::remove(e.file, ec);
    disk_used -= static_cast<std::size_t>(e.file_bytes);
    e.file.clear();
    e.file_bytes = 0;
  }

  // Moves `e` (marked moving by the caller) one tier down. Runs without the mutex. Returns
  // false when it could not (the partition stays where it was).
  bool spill_one(const std::shared_ptr<entry>& e) {
    auto start = clock_type::now();
    memory_tier from = e->tier;
    std::shared_ptr<const void> new_owner;
    table_view new_rows;
    fs::path file;
    std::int64_t file_bytes = 0;
    try {
      if (from == memory_tier::device) {
        auto copy = std::make_shared<table>(copier->to_host(e->rows, *options.host));
        new_rows = copy->view();
        new_owner = std::move(copy);
      } else if (e->droppable) {
        // A copy of data that lives elsewhere: dropping it frees the memory as well as a spill.
        std::shared_ptr<const void> gone;
        {
          std::lock_guard lock(mutex);
          e->moving = false;
          moved.notify_all();
          if (forget(e)) ++counters.dropped;
          gone = std::move(e->owner);
        }
        return true;
      } else {
        {
          std::lock_guard lock(mutex);
          if (options.disk_limit != tracking_resource::unlimited &&
              disk_used + static_cast<std::size_t>(e->bytes) > options.disk_limit) {
            throw out_of_memory(options.name + ": the disk tier (" + options.spill_dir.string() +
                                ") is full: " + std::to_string(disk_used) + " of " +
                                std::to_string(options.disk_limit) + " bytes used");
          }
          file = options.spill_dir / (std::to_string(next_file++) + ".spill");
        }
        file_bytes = write_spill_file(file, e->rows);
        if (corrupted_spills.fetch_add(1) < options.corrupt_first_spills) flip_middle_byte(file);
      }
    } catch (const std::exception& ex) {
      logger().warn("{}: could not spill partition '{}' from the {} tier: {}", options.name, e->key,
                    to_string(from), ex.what());
      std::lock_guard lock(mutex);
      e->moving = false;
      moved.notify_all();
      return false;
    }
    std::shared_ptr<const void> old_owner;
    {
      std::lock_guard lock(mutex);
      e->moving = false;
      moved.notify_all();
      auto it = entries.find(e->key);
      bool present = it != entries.end() && it->second == e;
      if (!present) {
        // Erased meanwhile: throw the copy away.
        if (!file.empty()) {
          std::error_code ec;
          fs::remove(file, ec);
        }
        return true;
      }
      old_owner = std::move(e->owner);
      if (from == memory_tier::device) {
        e->owner = std::move(new_owner);
        e->rows = new_rows;
        e->tier = memory_tier::host;
        counters.spilled_to_host_bytes += e->bytes;
      } else {
        e->owner.reset();
        e->rows = table_view{};
        e->tier = memory_tier::disk;
        e->file = file;
        e->file_bytes = file_bytes;
        disk_used += static_cast<std::size_t>(file_bytes);
        disk_peak = std::max(disk_peak, disk_used);
        counters.spilled_to_disk_bytes += e->bytes;
      }
      ++counters.spills;
      counters.spill_seconds += seconds_since(start);
      mark_changed(e->key);
    }
    // The old memory is freed here, outside the mutex (when no other partition shares it).
    old_owner.reset();
    return true;
  }

  bool make_room(memory_tier t, std::size_t bytes) {
    auto& tr = tracker(t);
    for (;;) {
      std::size_t used = tr.used();
      if (tr.limit() == tracking_resource::unlimited || used + bytes <= tr.limit()) return true;
      std::size_t need = used + bytes - tr.limit();
      std::vector<std::shared_ptr<entry>> victims;
      {
        std::lock_guard lock(mutex);
        std::vector<std::shared_ptr<entry>> candidates;
        for (auto& [key, e] : entries) {
          if (e->pins == 0 && !e->moving && rank(e->tier) == rank(t)) candidates.push_back(e);
        }
        std::sort(candidates.begin(), candidates.end(),
                  [](const auto& a, const auto& b) { return a->tick < b->tick; });
        std::size_t sum = 0;
        for (auto& e : candidates) {
          if (sum >= need) break;
          e->moving = true;
          sum += static_cast<std::size_t>(std::max<std::int64_t>(e->bytes, 1));
          victims.push_back(e);
        }
      }
      if (victims.empty()) return false;
      bool any = false;
      for (auto& e : victims) any = spill_one(e) || any;
      if (!any) return false;
    }
  }

  // Moves `e` (marked moving by the caller) up to `want`. Runs without the mutex. Throws
  // invalid_input for a damaged spill file (after dropping the partition).
  void bring_up(const std::shared_ptr<entry>& e, memory_tier want) {
    auto start = clock_type::now();
    std::shared_ptr<const void> owner;
    table_view rows;
    memory_tier tier;
    fs::path file;
    {
      std::lock_guard lock(mutex);
      owner = e->owner;
      rows = e->rows;
      tier = e->tier;
      file = e->file;
    }
    std::int64_t from_disk = 0, from_host = 0;
    try {
      if (tier == memory_tier::disk) {
        make_room(memory_tier::host, static_cast<std::size_t>(e->bytes));
        std::shared_ptr<table> loaded;
        try {
          loaded = std::make_shared<table>(read_spill_file(file, *options.host));
        } catch (const invalid_input& damaged) {
          {
            std::lock_guard lock(mutex);
            ++counters.corrupt_spills;
            e->moving = false;
            forget(e);
            drop_file(*e);
            moved.notify_all();
          }
          throw invalid_input(
              options.name + ": partition '" + e->key +
              "' spilled to disk came back damaged, so it is lost: " + damaged.what());
        }
        rows = loaded->view();
        owner = std::move(loaded);
        tier = memory_tier::host;
        from_disk = e->bytes;
      }
      if (want == memory_tier::device && tier != memory_tier::device) {
        make_room(memory_tier::device, static_cast<std::size_t>(e->bytes));
        auto up = std::make_shared<table>(copier->to_device(rows, *options.device));
        rows = up->view();
        owner = std::move(up);
        tier = memory_tier::device;
        from_host = e->bytes;
      }
    } catch (const invalid_input&) {
      throw;
    } catch (...) {
      std::lock_guard lock(mutex);
      e->moving = false;
      moved.notify_all();
      // Erased while it moved: nobody else removes its file.
      auto it = entries.find(e->key);
      if (it == entries.end() || it->second != e) drop_file(*e);
      throw;
    }
    std::lock_guard lock(mutex);
    e->moving = false;
    moved.notify_all();
    if (from_disk > 0) drop_file(*e);
    e->owner = std::move(owner);
    e->rows = rows;
    e->tier = tier;
    counters.unspilled_from_disk_bytes += from_disk;
    counters.unspilled_from_host_bytes += from_host;
    ++counters.unspills;
    counters.unspill_seconds += seconds_since(start);
    if (entries.count(e->key) != 0 && entries.at(e->key) == e) mark_changed(e->key);
  }

  partition_info info_of(const entry& e) const {
    partition_info i;
    i.key = e.key;
    i.tier = e.tier;
    i.bytes = e.bytes;
    i.file_bytes = e.file_bytes;
    i.rows = e.rows_count;
    i.pins = e.pins;
    i.last_use = e.last_use;
    return i;
  }
};

pinned_partition::pinned_partition(pinned_partition&& other) noexcept { *this = std::move(other); }

pinned_partition& pinned_partition::operator=(pinned_partition&& other) noexcept {
  if (this != &other) {
    if (_store) _store->unpin(_entry);
    _store = std::exchange(other._store, nullptr);
    _entry = std::move(other._entry);
    _key = std::move(other._key);
    _owner = std::move(other._owner);
    _rows = std::exchange(other._rows, table_view{});
    _tier = other._tier;
    _bytes = other._bytes;
  }
  return *this;
}

pinned_partition::~pinned_partition() {
  if (_store) _store->unpin(_entry);
}

partition_store::partition_store(partition_store_options options)
    : _state(std::make_unique<state>()) {
  EMBER_EXPECTS(options.device != nullptr && options.host != nullptr, invalid_input,
                "a partition store needs a device and a host tier");
  auto& s = *_state;
  // The store spills into a folder of its own inside the one given (several workers may share
  // it), removed by the destructor.
  auto parent = options.spill_dir.empty() ? fs::temp_directory_path() : options.spill_dir;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec || !fs::is_directory(parent)) {
    throw invalid_input(options.name + ": cannot create the spill folder " + parent.string() +
                        (ec ? ": " + ec.message() : ""));
  }
  options.spill_dir = private_spill_dir(parent, options.name);
  s.private_dir = true;
  s.copier = options.copier ? options.copier : std::make_shared<host_tier_copier>();
  s.options = std::move(options);
  s.options.device->set_reclaimer(
      [&s](std::size_t bytes) { return s.make_room(memory_tier::device, bytes); });
  s.options.host->set_reclaimer(
      [&s](std::size_t bytes) { return s.make_room(memory_tier::host, bytes); });
}

partition_store::~partition_store() {
  auto& s = *_state;
  s.options.device->set_reclaimer(nullptr);
  s.options.host->set_reclaimer(nullptr);
  std::lock_guard lock(s.mutex);
  for (auto& [key, e] : s.entries) s.drop_file(*e);
  s.entries.clear();
  if (s.private_dir) {
    std::error_code ec;
    fs::remove_all(s.options.spill_dir, ec);
  }
}

void partition_store::put(const std::string& key, std::shared_ptr<const void> owner,
                          table_view rows, memory_tier tier, std::int64_t bytes, bool droppable) {
  EMBER_EXPECTS(tier != memory_tier::disk, invalid_input,
                "partition '" + key + "': put() takes memory tiers; the disk tier is for spills");
  auto e = std::make_shared<entry>();
  e->key = key;
  e->owner = std::move(owner);
  e->rows = std::move(rows);
  e->tier = tier;
  e->bytes = bytes;
  e->rows_count = e->rows.num_rows();
  e->droppable = droppable;
  auto& s = *_state;
  std::lock_guard lock(s.mutex);
  if (s.entries.count(key) != 0) {
    throw logic_error(s.options.name + ": partition '" + key + "' is already stored");
  }
  s.touch(*e);
  s.entries.emplace(key, e);
  s.mark_changed(key);
}

void partition_store::put(const std::string& key, table rows, memory_tier tier,
                          std::int64_t bytes) {
  auto owned = std::make_shared<const table>(std::move(rows));
  auto view = owned->view();
  put(key, std::move(owned), std::move(view), tier, bytes);
}

std::optional<pinned_partition> partition_store::acquire(const std::string& key, memory_tier want) {
  return take(key, want, true);
}

std::optional<std::int64_t> partition_store::prefetch(const std::string& key, memory_tier want) {
  auto p = take(key, want, false);
  if (!p) return std::nullopt;
  return p->bytes();
}

std::optional<pinned_partition> partition_store::take(const std::string& key, memory_tier want,
                                                      bool lookup) {
  EMBER_EXPECTS(want == memory_tier::device || want == memory_tier::host, invalid_input,
                "acquire() brings partitions to the device or the host tier");
  auto& s = *_state;
  std::shared_ptr<entry> e;
  bool move = false;
  {
    std::unique_lock lock(s.mutex);
    auto deadline = clock_type::now() + move_wait_limit;
    for (;;) {
      auto it = s.entries.find(key);
      if (it == s.entries.end()) {
        if (lookup) ++s.counters.misses;
        return std::nullopt;
      }
      e = it->second;
      if (!e->moving) break;
      if (s.moved.wait_until(lock, deadline) == std::cv_status::timeout) {
        throw timeout(s.options.name + ": partition '" + key + "' has been moving between tiers " +
                      "for more than 120 s");
      }
    }
    if (lookup) ++s.counters.hits;
    // Pinned now, so that no spill takes it between here and the handle.
    ++e->pins;
    if (rank(e->tier) <= rank(want)) {
      if (lookup) ++s.counters.tier_hits;
    } else {
      e->moving = true;
      move = true;
    }
  }
  if (move) {
    try {
      s.bring_up(e, want);
    } catch (...) {
      std::lock_guard lock(s.mutex);
      --e->pins;
      throw;
    }
  }
  std::lock_guard lock(s.mutex);
  s.touch(*e);
  if (s.entries.count(key) != 0 && s.entries.at(key) == e) s.mark_changed(key);
  pinned_partition p;
  p._store = this;
  p._entry = e;
  p._key = key;
  p._owner = e->owner;
  p._rows = e->rows;
  p._tier = e->tier;
  p._bytes = e->bytes;
  return p;
}

void partition_store::unpin(const std::shared_ptr<void>& token) noexcept {
  auto& s = *_state;
  auto e = std::static_pointer_cast<entry>(token);
  std::lock_guard lock(s.mutex);
  if (e->pins > 0) --e->pins;
  auto it = s.entries.find(e->key);
  if (it != s.entries.end() && it->second == e) s.mark_changed(e->key);
}

bool partition_store::contains(const std::string& key) const {
  std::lock_guard lock(_state->mutex);
  return _state->entries.count(key) != 0;
}

bool partition_store::erase(const std::string& key) {
  auto& s = *_state;
  std::shared_ptr<entry> e;
  {
    std::lock_guard lock(s.mutex);
    auto it = s.entries.find(key);
    if (it == s.entries.end()) return false;
    e = it->second;
    s.forget(e);
    if (!e->moving) s.drop_file(*e);
  }
  return true;
}

std::size_t partition_store::erase_prefix(std::string_view prefix) {
  auto& s = *_state;
  std::vector<std::shared_ptr<entry>> gone;
  {
    std::lock_guard lock(s.mutex);
    for (auto& [key, e] : s.entries) {
      if (std::string_view(key).substr(0, prefix.size()) == prefix) gone.push_back(e);
    }
    for (auto& e : gone) {
      s.forget(e);
      if (!e->moving) s.drop_file(*e);
    }
  }
  // Memory is freed here, outside the mutex, when nothing else holds it.
  return gone.size();
}

bool partition_store::make_room(memory_tier tier, std::size_t bytes) {
  EMBER_EXPECTS(tier == memory_tier::device || tier == memory_tier::host, invalid_input,
                "make_room() works on the device and host tiers");
  return _state->make_room(tier, bytes);
}

std::int64_t partition_store::spill_all(memory_tier tier) {
  EMBER_EXPECTS(tier == memory_tier::device || tier == memory_tier::host, invalid_input,
                "spill_all() works on the device and host tiers");
  auto& s = *_state;
  std::vector<std::shared_ptr<entry>> victims;
  {
    std::lock_guard lock(s.mutex);
    for (auto& [key, e] : s.entries) {
      if (e->pins == 0 && !e->moving && rank(e->tier) == rank(tier)) {
        e->moving = true;
        victims.push_back(e);
      }
    }
  }
  std::sort(victims.begin(), victims.end(),
            [](const auto& a, const auto& b) { return a->tick < b->tick; });
  std::int64_t moved = 0;
  for (auto& e : victims)
    if (s.spill_one(e)) moved += e->bytes;
  return moved;
}

std::vector<partition_info> partition_store::partitions() const {
  auto& s = *_state;
  std::lock_guard lock(s.mutex);
  std::vector<partition_info> out;
  out.reserve(s.entries.size());
  for (auto& [key, e] : s.entries) out.push_back(s.info_of(*e));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  return out;
}

std::optional<partition_info> partition_store::find(const std::string& key) const {
  auto& s = *_state;
  std::lock_guard lock(s.mutex);
  auto it = s.entries.find(key);
  if (it == s.entries.end()) return std::nullopt;
  return s.info_of(*it->second);
}

partition_store_stats partition_store::stats() const {
  auto& s = *_state;
  std::lock_guard lock(s.mutex);
  partition_store_stats out = s.counters;
  auto usage = [](memory_tier t, const tracking_resource& r) {
    tier_usage u;
    u.tier = t;
    u.used = r.used();
    u.peak = r.peak();
    u.limit = r.limit();
    return u;
  };
  out.device = usage(memory_tier::device, *s.options.device);
  out.host = usage(memory_tier::host, *s.options.host);
  out.disk.tier = memory_tier::disk;
  out.disk.used = s.disk_used;
  out.disk.peak = s.disk_peak;
  out.disk.limit = s.options.disk_limit;
  for (auto& [key, e] : s.entries) {
    auto& u = e->tier == memory_tier::device ? out.device
              : e->tier == memory_tier::disk ? out.disk
                                             : out.host;
    ++u.partitions;
    u.partition_bytes += e->bytes;
  }
  return out;
}

residency_changes partition_store::take_changes() {
  auto& s = *_state;
  std::lock_guard lock(s.mutex);
  residency_changes out;
  for (const auto& key : s.changed) {
    auto it = s.entries.find(key);
    if (it != s.entries.end()) out.changed.push_back(s.info_of(*it->second));
  }
  out.removed.assign(s.removed.begin(), s.removed.end());
  s.changed.clear();
  s.removed.clear();
  return out;
}

const fs::path& partition_store::spill_dir() const noexcept { return _state->options.spill_dir; }

}  // namespace ember
