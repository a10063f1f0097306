#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/cache.hpp>
#include <ember/scheduler/table_bytes.hpp>

#include <algorithm>
#include <mutex>

#include "detail/cache_backends.hpp"
#include "detail/remote_session.hpp"

namespace ember {

namespace {

constexpr auto lookup_timeout = std::chrono::seconds(10);
constexpr auto transfer_timeout = std::chrono::seconds(60);
constexpr std::string_view cache_prefix = "cache/";

void check_key(const std::string& key) {
  EMBER_EXPECTS(!key.empty(), invalid_input, "a cache key may not be empty");
}

void check_host(const table_view& rows) {
  for (const auto& c : rows.columns()) {
    EMBER_EXPECTS(c.kind() != memory_kind::device, invalid_input,
                  "the cache takes host tables; copy device tables with to_host() first");
  }
}

std::chrono::system_clock::time_point from_ms(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

cache_entry entry_of(const detail::cache_entry_info& e) {
  cache_entry out;
  out.key = e.key;
  out.worker = e.worker;
  out.worker_name = e.worker_name;
  out.tier = static_cast<memory_tier>(e.tier);
  out.bytes = e.bytes;
  out.rows = e.rows;
  out.pins = e.pins;
  out.last_use = from_ms(e.last_use_ms);
  out.lost = e.lost;
  out.lost_reason = e.lost_reason;
  return out;
}

}  // namespace

namespace detail {

// ---- a remote scheduler's workers ------------------------------------------------------------

remote_cache_backend::remote_cache_backend(std::shared_ptr<remote_session> session)
    : _session(std::move(session)) {}

int remote_cache_backend::put(const std::string& key, const table_view& rows) {
  // A copy the send may read until it completes, whatever happens to the caller's table.
  auto copy = copy_table(rows);
  auto view = copy.view();
  auto [reply, unused] = _session->cache_call({0, cache_op::put, key}, &view, transfer_timeout);
  return reply.worker;
}

std::optional<table> remote_cache_backend::get(const std::string& key) {
  auto [reply, rows] = _session->cache_call({0, cache_op::get, key}, nullptr, transfer_timeout);
  if (!reply.found || !rows) return std::nullopt;
  return std::move(rows);
}

bool remote_cache_backend::erase(const std::string& key) {
  return _session->cache_call({0, cache_op::erase, key}, nullptr, lookup_timeout).first.found;
}

std::vector<cache_entry> remote_cache_backend::list(cache_op op) {
  auto [reply, unused] = _session->cache_call({0, op, ""}, nullptr, lookup_timeout);
  std::vector<cache_entry> out;
  for (const auto& e : reply.entries) out.push_back(entry_of(e));
  return out;
}

std::vector<cache_entry> remote_cache_backend::entries() { return list(cache_op::list); }
std::vector<cache_entry> remote_cache_backend::residency() { return list(cache_op::residency); }

// ---- the embedded cluster's store ------------------------------------------------------------

local_cache_backend::local_cache_backend(std::size_t device_limit)
    : _device(default_host_pool(), "device tier of the embedded cluster's cache", device_limit),
      _host(default_host_pool(), "host tier of the embedded cluster's cache") {
  partition_store_options o;
  o.device = &_device;
  o.host = &_host;
  o.name = "the embedded cluster's cache";
  _store = std::make_unique<partition_store>(o);
}

local_cache_backend::~local_cache_backend() = default;

int local_cache_backend::put(const std::string& key, const table_view& rows) {
  auto full = std::string(cache_prefix) + key;
  auto bytes = table_bytes(rows);
  _store->make_room(memory_tier::device, static_cast<std::size_t>(bytes));
  auto copy = copy_table(rows, _device);
  std::lock_guard lock(_mutex);  // erase and put as one step
  _store->erase(full);
  _store->put(full, std::move(copy), memory_tier::device, bytes);
  return 0;
}

std::optional<table> local_cache_backend::get(const std::string& key) {
  auto p = _store->acquire(std::string(cache_prefix) + key, memory_tier::host);
  if (!p) return std::nullopt;
  return copy_table(p->rows());
}

bool local_cache_backend::erase(const std::string& key) {
  return _store->erase(std::string(cache_prefix) + key);
}

std::vector<cache_entry> local_cache_backend::list(bool cache_only) {
  std::vector<cache_entry> out;
  for (const auto& p : _store->partitions()) {
    bool cached = p.key.starts_with(cache_prefix);
    if (cache_only && !cached) continue;
    cache_entry e;
    e.key = cache_only ? p.key.substr(cache_prefix.size()) : p.key;
    e.worker = 0;
    e.worker_name = "embedded";
    e.tier = p.tier;
    e.bytes = p.bytes;
    e.rows = p.rows;
    e.pins = p.pins;
    e.last_use = p.last_use;
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<cache_entry> local_cache_backend::entries() { return list(true); }
std::vector<cache_entry> local_cache_backend::residency() { return list(false); }

}  // namespace detail

distributed_cache::distributed_cache(std::shared_ptr<detail::cache_backend> backend)
    : _backend(std::move(backend)) {}

int distributed_cache::put(const std::string& key, const table_view& rows) {
  check_key(key);
  check_host(rows);
  return _backend->put(key, rows);
}

std::optional<table> distributed_cache::get(const std::string& key) {
  check_key(key);
  return _backend->get(key);
}

bool distributed_cache::erase(const std::string& key) {
  check_key(key);
  return _backend->erase(key);
}

std::vector<std::string> distributed_cache::keys() {
  std::vector<std::string> out;
  for (const auto& e : _backend->entries())
    if (!e.lost) out.push_back(e.key);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<cache_entry> distributed_cache::entries() { return _backend->entries(); }

}  // namespace ember
