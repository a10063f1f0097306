#include <algorithm>
#include <deque>
#include <ember/host/error.hpp>
#include <ember/host/wal.hpp>
#include <ember/scheduler/coordination.hpp>
#include <ember/transport/byte_codec.hpp>

namespace ember {
namespace {

using transport::byte_reader;
using transport::byte_writer;

// Log records: what must survive a restart, each applied the same way live and on replay.
enum class op : std::uint8_t {
  token_issued = 1,
  token_accepted = 2,
  kv_set = 3,
  kv_erase = 4,
  token_reserved = 5
};

// Tokens are reserved in blocks: one synced record covers this many grants, so an acquire does
// not wait for the disk. After a restart the next token comes after the block (tokens only
// grow; a restart skips the rest of a block).
constexpr fencing_token token_block = 1024;

std::string lock_text(const std::string& name) { return "lock '" + name + "'"; }

}  // namespace

struct coordination_state::lock_state {
  struct holder {
    fencing_token token = 0;
    std::chrono::milliseconds ttl{0};
    time_point expires;
  };
  struct waiter {
    std::string owner;
    std::chrono::milliseconds ttl{0};
  };
  int permits = 1;
  std::map<std::string, holder> holders;
  std::deque<waiter> waiters;
  fencing_token accepted = 0;  // the newest token an accepted write presented
};

coordination_state::coordination_state()
    : _replay(std::make_unique<wal_replay_report>()), _queues(queue_store::log_fn{}) {}

coordination_state::coordination_state(const std::filesystem::path& dir, bool group_commit)
    : _replay(std::make_unique<wal_replay_report>()),
      _queues([this](std::vector<std::uint8_t> record) {
        // Durable queues log through the same log, ahead of the change like everything else.
        if (_log) {
          _log->append(record);
          ++_since_checkpoint;
          _sync_needed = true;
        }
      }) {
  wal_options o;
  o.dir = dir;
  o.sync = !group_commit;
  _log = write_ahead_log::open(
      o, [&](std::uint64_t, std::span<const std::uint8_t> state) { restore(state); },
      [&](std::uint64_t, std::span<const std::uint8_t> record) { apply(record); }, _replay.get());
  after_replay();
}

coordination_state::~coordination_state() = default;

// ---- the durable part ------------------------------------------------------------------------

void coordination_state::apply(std::span<const std::uint8_t> record) {
  if (queue_store::owns_record(record)) {
    _queues.apply(record);
    return;
  }
  byte_reader r(record, "coordination log record");
  auto kind = r.get<std::uint8_t>("operation");
  switch (static_cast<op>(kind)) {
    case op::token_issued: {
      auto name = r.get_string("lock name");
      auto token = r.get<std::uint64_t>("token");
      auto& newest = _tokens[name];
      newest = std::max(newest, token);
      break;
    }
    case op::token_reserved: {
      auto name = r.get_string("lock name");
      auto high = r.get<std::uint64_t>("reserved up to");
      auto& reserved = _reserved[name];
      reserved = std::max(reserved, high);
      break;
    }
    case op::token_accepted: {
      auto name = r.get_string("lock name");
      auto token = r.get<std::uint64_t>("token");
      auto& lock = _locks[name];
      if (!lock) lock = std::make_unique<lock_state>();
      lock->accepted = std::max(lock->accepted, token);
      auto& newest = _tokens[name];
      newest = std::max(newest, token);
      break;
    }
    case op::kv_set: {
      auto key = r.get_string("key");
      auto version = r.get<std::uint64_t>("version");
      auto n = r.get<std::uint64_t>("value bytes");
      auto value = r.get_bytes(static_cast<std::size_t>(n), "value");
      _kv[key] = kv_entry{{value.begin(), value.end()}, version};
      break;
    }
    case op::kv_erase:
      _kv.erase(r.get_string("key"));
      break;
    default:
      r.fail("unknown operation " + std::to_string(kind));
  }
  if (r.remaining() != 0) r.fail("trailing bytes");
}

void coordination_state::log_and_apply(std::vector<std::uint8_t> record, bool durable) {
  // Written ahead: once a write is acknowledged (after sync()), a restart still knows it.
  if (_log) {
    _log->append(record);
    ++_since_checkpoint;
    _sync_needed |= durable;
  }
  apply(record);
}

std::vector<std::uint8_t> coordination_state::snapshot_bytes() const {
  byte_writer w;
  w.put_count(_tokens.size());
  for (const auto& [name, token] : _tokens) {
    w.put_string(name);
    w.put(token);
    auto it = _locks.find(name);
    w.put<std::uint64_t>(it == _locks.end() ? 0 : it->second->accepted);
    auto r = _reserved.find(name);
    w.put<std::uint64_t>(r == _reserved.end() ? 0 : r->second);
  }
  w.put_count(_kv.size());
  for (const auto& [key, e] : _kv) {
    w.put_string(key);
    w.put(e.version);
    w.put<std::uint64_t>(e.value.size());
    w.put_bytes(e.value.data(), e.value.size());
  }
  _queues.snapshot(w);
  return std::move(w.bytes());
}

void coordination_state::restore(std::span<const std::uint8_t> bytes) {
  byte_reader r(bytes, "coordination snapshot");
  auto locks = r.get_count("locks", 28);
  for (std::size_t i = 0; i < locks; ++i) {
    auto name = r.get_string("lock name");
    _tokens[name] = r.get<std::uint64_t>("token");
    auto accepted = r.get<std::uint64_t>("accepted token");
    if (auto reserved = r.get<std::uint64_t>("reserved token"); reserved > 0)
      _reserved[name] = reserved;
    if (accepted > 0) {
      auto& lock = _locks[name];
      if (!lock) lock = std::make_unique<lock_state>();
      lock->accepted = accepted;
    }
  }
  auto keys = r.get_count("keys", 20);
  for (std::size_t i = 0; i < keys; ++i) {
    auto key = r.get_string("key");
    auto version = r.get<std::uint64_t>("version");
    auto n = r.get<std::uint64_t>("value bytes");
    auto value = r.get_bytes(static_cast<std::size_t>(n), "value");
    _kv[key] = kv_entry{{value.begin(), value.end()}, version};
  }
  _queues.restore(r);
  if (r.remaining() != 0) r.fail("trailing bytes");
}

void coordination_state::checkpoint() {
  if (!_log) return;
  _log->snapshot(snapshot_bytes());
  _since_checkpoint = 0;
}

void coordination_state::sync() {
  if (!_log || !_sync_needed) return;
  _log->sync();
  _sync_needed = false;
}

void coordination_state::after_replay() {
  // Tokens handed out from a reserved block may not all have reached the disk (a machine crash):
  // the next token comes after the whole block. newest_token() stays the newest the log
  // recorded, so its holder can reclaim its lease and write with it.
  _floor = _reserved;
}

// ---- locks -----------------------------------------------------------------------------------

std::optional<lock_grant> coordination_state::acquire(const std::string& name,
                                                      const std::string& owner, int permits,
                                                      std::chrono::milliseconds ttl,
                                                      time_point now) {
  EMBER_EXPECTS(!name.empty() && !owner.empty(), invalid_input, "a lock needs a name and an owner");
  EMBER_EXPECTS(permits >= 1, invalid_input,
                lock_text(name) + ": " + std::to_string(permits) + " permits (at least 1)");
  EMBER_EXPECTS(ttl.count() > 0, invalid_input,
                lock_text(name) + ": a lease of " + std::to_string(ttl.count()) + " ms");
  auto& slot = _locks[name];
  if (!slot) slot = std::make_unique<lock_state>();
  auto& lock = *slot;
  if (lock.holders.empty() && lock.waiters.empty()) lock.permits = permits;
  EMBER_EXPECTS(lock.permits == permits, invalid_input,
                lock_text(name) + " has " + std::to_string(lock.permits) + " permits, not " +
                    std::to_string(permits));
  if (auto h = lock.holders.find(owner); h != lock.holders.end()) {
    h->second.ttl = ttl;
    h->second.expires = now + ttl;
    return lock_grant{name, owner, h->second.token, h->second.expires};
  }
  bool waiting = std::any_of(lock.waiters.begin(), lock.waiters.end(),
                             [&](const lock_state::waiter& w) { return w.owner == owner; });
  if (!waiting) lock.waiters.push_back({owner, ttl});
  for (const auto& g : grant_waiters(lock, name, now))
    if (g.owner == owner) return g;
  return std::nullopt;
}

std::vector<lock_grant> coordination_state::grant_waiters(lock_state& lock, const std::string& name,
                                                          time_point now) {
  std::vector<lock_grant> granted;
  while (static_cast<int>(lock.holders.size()) < lock.permits && !lock.waiters.empty()) {
    auto w = std::move(lock.waiters.front());
    lock.waiters.pop_front();
    auto floor = _floor.find(name);
    auto token = std::max(newest_token(name), floor == _floor.end() ? 0 : floor->second) + 1;
    auto reserved = _reserved.find(name);
    if (reserved == _reserved.end() || token > reserved->second) {
      byte_writer block;
      block.put(static_cast<std::uint8_t>(op::token_reserved));
      block.put_string(name);
      block.put(token + token_block - 1);
      log_and_apply(std::move(block.bytes()));
    }
    // The exact token is logged too, without waiting for the disk: the block above already
    // keeps tokens growing across a crash; this one lets the holder reclaim its lease.
    byte_writer rec;
    rec.put(static_cast<std::uint8_t>(op::token_issued));
    rec.put_string(name);
    rec.put(token);
    log_and_apply(std::move(rec.bytes()), false);
    lock.holders[w.owner] = lock_state::holder{token, w.ttl, now + w.ttl};
    granted.push_back(lock_grant{name, w.owner, token, now + w.ttl});
  }
  return granted;
}

bool coordination_state::renew(const std::string& name, const std::string& owner, time_point now) {
  auto it = _locks.find(name);
  if (it == _locks.end()) return false;
  auto h = it->second->holders.find(owner);
  if (h == it->second->holders.end() || h->second.expires <= now) return false;
  h->second.expires = now + h->second.ttl;
  return true;
}

std::optional<lock_grant> coordination_state::reclaim(const std::string& name,
                                                      const std::string& owner, fencing_token token,
                                                      std::chrono::milliseconds ttl,
                                                      time_point now) {
  if (token == 0 || token != newest_token(name) || ttl.count() <= 0) return std::nullopt;
  auto& slot = _locks[name];
  if (!slot) slot = std::make_unique<lock_state>();
  auto& lock = *slot;
  if (!lock.waiters.empty() || static_cast<int>(lock.holders.size()) >= lock.permits)
    return std::nullopt;
  for (const auto& [other, h] : lock.holders)
    if (h.token == token) return std::nullopt;
  lock.holders[owner] = lock_state::holder{token, ttl, now + ttl};
  return lock_grant{name, owner, token, now + ttl};
}

std::vector<lock_grant> coordination_state::release(const std::string& name,
                                                    const std::string& owner, time_point now) {
  auto it = _locks.find(name);
  EMBER_EXPECTS(it != _locks.end(), invalid_input, "there is no " + lock_text(name));
  auto& lock = *it->second;
  if (lock.holders.erase(owner) == 0) {
    auto w = std::find_if(lock.waiters.begin(), lock.waiters.end(),
                          [&](const lock_state::waiter& x) { return x.owner == owner; });
    EMBER_EXPECTS(w != lock.waiters.end(), invalid_input,
                  "'" + owner + "' neither holds nor waits for " + lock_text(name));
    lock.waiters.erase(w);
    return {};
  }
  return grant_waiters(lock, name, now);
}

std::vector<lock_grant> coordination_state::expire(time_point now) {
  std::vector<lock_grant> granted;
  for (auto& [name, lock] : _locks) {
    std::erase_if(lock->holders, [&](const auto& h) { return h.second.expires <= now; });
    auto more = grant_waiters(*lock, name, now);
    granted.insert(granted.end(), more.begin(), more.end());
  }
  return granted;
}

std::vector<lock_grant> coordination_state::holders(const std::string& name) const {
  std::vector<lock_grant> out;
  auto it = _locks.find(name);
  if (it == _locks.end()) return out;
  for (const auto& [owner, h] : it->second->holders)
    out.push_back(lock_grant{name, owner, h.token, h.expires});
  return out;
}

std::vector<lock_summary> coordination_state::locks() const {
  std::map<std::string, lock_summary> out;
  for (const auto& [name, token] : _tokens) {
    auto& l = out[name];
    l.name = name;
    l.newest_token = token;
  }
  for (const auto& [name, lock] : _locks) {
    if (lock->holders.empty() && lock->waiters.empty() && !_tokens.contains(name)) continue;
    auto& l = out[name];
    l.name = name;
    l.permits = lock->permits;
    l.waiters = lock->waiters.size();
    for (const auto& [owner, h] : lock->holders)
      l.holders.push_back(lock_grant{name, owner, h.token, h.expires});
  }
  std::vector<lock_summary> list;
  for (auto& [name, l] : out) list.push_back(std::move(l));
  return list;
}

bool coordination_state::lock_exists(const std::string& name) const {
  if (_tokens.contains(name)) return true;
  auto it = _locks.find(name);
  return it != _locks.end() && (!it->second->holders.empty() || !it->second->waiters.empty());
}

fencing_token coordination_state::newest_token(const std::string& name) const {
  auto it = _tokens.find(name);
  return it == _tokens.end() ? 0 : it->second;
}

void coordination_state::accept_token(const std::string& name, fencing_token token) {
  auto newest = newest_token(name);
  EMBER_EXPECTS(
      token >= 1 && token <= newest, invalid_input,
      "fencing token " + std::to_string(token) + " was never issued for " + lock_text(name));
  auto it = _locks.find(name);
  fencing_token accepted = it == _locks.end() ? 0 : it->second->accepted;
  bool holds = false;
  if (it != _locks.end()) {
    for (const auto& [owner, h] : it->second->holders) holds |= h.token == token;
  }
  // The newest token is always good; an older one only while its lease lives (semaphores),
  // and never once a newer token has been used.
  EMBER_EXPECTS(token >= accepted && (token == newest || holds), invalid_input,
                "stale fencing token " + std::to_string(token) + " for " + lock_text(name) +
                    ": token " + std::to_string(std::max(newest, accepted)) + " was issued since");
  if (token > accepted) {
    byte_writer rec;
    rec.put(static_cast<std::uint8_t>(op::token_accepted));
    rec.put_string(name);
    rec.put(token);
    log_and_apply(std::move(rec.bytes()));
  }
}

// ---- key/value -------------------------------------------------------------------------------

std::optional<kv_entry> coordination_state::get(const std::string& key) const {
  auto it = _kv.find(key);
  if (it == _kv.end()) return std::nullopt;
  return it->second;
}

std::uint64_t coordination_state::set(const std::string& key, std::span<const std::uint8_t> value) {
  EMBER_EXPECTS(!key.empty(), invalid_input, "a key/value write needs a key");
  auto it = _kv.find(key);
  auto version = (it == _kv.end() ? 0 : it->second.version) + 1;
  byte_writer rec;
  rec.put(static_cast<std::uint8_t>(op::kv_set));
  rec.put_string(key);
  rec.put(version);
  rec.put<std::uint64_t>(value.size());
  rec.put_bytes(value.data(), value.size());
  log_and_apply(std::move(rec.bytes()));
  return version;
}

std::optional<std::uint64_t> coordination_state::compare_and_set(
    const std::string& key, std::uint64_t expected_version, std::span<const std::uint8_t> value) {
  auto it = _kv.find(key);
  auto current = it == _kv.end() ? 0 : it->second.version;
  if (current != expected_version) return std::nullopt;
  return set(key, value);
}

bool coordination_state::erase(const std::string& key,
                               std::optional<std::uint64_t> expected_version) {
  auto it = _kv.find(key);
  if (it == _kv.end()) return false;
  if (expected_version && it->second.version != *expected_version) return false;
  byte_writer rec;
  rec.put(static_cast<std::uint8_t>(op::kv_erase));
  rec.put_string(key);
  log_and_apply(std::move(rec.bytes()));
  return true;
}

std::vector<std::string> coordination_state::keys(const std::string& prefix) const {
  std::vector<std::string> out;
  for (auto it = _kv.lower_bound(prefix); it != _kv.end() && it->first.rfind(prefix, 0) == 0; ++it)
    out.push_back(it->first);
  return out;
}

}  // namespace ember
