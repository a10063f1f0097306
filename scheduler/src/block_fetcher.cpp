#include <ember/host/log.hpp>

#include "detail/block_fetcher.hpp"

namespace ember::detail {

using clock_type = std::chrono::steady_clock;

block_fetcher::block_fetcher(transport::node& net, std::chrono::milliseconds timeout, done_fn done,
                             std::string name)
    : _net(net), _timeout(timeout), _done(std::move(done)), _name(std::move(name)) {
  _connector = std::thread([this] { connect_loop(); });
}

block_fetcher::~block_fetcher() { stop(); }

void block_fetcher::stop() noexcept {
  {
    std::lock_guard lock(_mutex);
    _stopping = true;
    _pending.clear();
  }
  _cv.notify_all();
  if (_connector.joinable()) _connector.join();
}

void block_fetcher::set_peers(const peers_msg& peers) {
  std::lock_guard lock(_mutex);
  for (const auto& p : peers.peers) _addresses[p.worker_id] = {p.host, p.port};
}

void block_fetcher::forget_peers() {
  std::vector<transport::connection_id> open;
  {
    std::lock_guard lock(_mutex);
    _addresses.clear();
    for (const auto& [worker, conn] : _connections) open.push_back(conn);
    _connections.clear();
    _peer_of.clear();
  }
  for (auto c : open) _net.close(c);
}

void block_fetcher::fetch(std::uint64_t ticket, const block_id& id, int holder) {
  {
    std::lock_guard lock(_mutex);
    if (_stopping) return;
    _pending[ticket] = pending{id, holder, clock_type::now() + _timeout};
  }
  send_request(ticket);
}

void block_fetcher::cancel(const std::vector<std::uint64_t>& tickets) {
  std::lock_guard lock(_mutex);
  for (auto t : tickets) _pending.erase(t);
}

void block_fetcher::send_request(std::uint64_t ticket) {
  transport::connection_id conn = 0;
  fetch_block_msg f;
  int holder = 0;
  {
    std::lock_guard lock(_mutex);
    auto it = _pending.find(ticket);
    if (it == _pending.end()) return;
    const auto& p = it->second;
    holder = p.holder;
    f.request = ticket;
    f.job = p.id.job;
    f.stage = p.id.stage;
    f.map_partition = p.id.map;
    f.reduce_partition = p.id.reduce;
    auto c = _connections.find(holder);
    if (c == _connections.end()) {
      _waiting_for[holder].push_back(ticket);
      if (_connecting.insert(holder).second) {
        _to_connect.push_back(holder);
        _cv.notify_all();
      }
      return;
    }
    conn = c->second;
  }
  if (!_net.send(conn, static_cast<std::uint16_t>(msg::fetch_block), encode(f)))
    fail(ticket, "the connection to worker " + std::to_string(holder) + " is closed");
}

void block_fetcher::fail(std::uint64_t ticket, const std::string& why, bool gone) {
  {
    std::lock_guard lock(_mutex);
    if (_pending.erase(ticket) == 0) return;
  }
  _done(ticket, std::nullopt, why, gone);
}

void block_fetcher::on_block(const block_reply_msg& reply, table rows) {
  {
    std::lock_guard lock(_mutex);
    if (_pending.erase(reply.request) == 0) return;  // cancelled or expired meanwhile
  }
  _done(reply.request, std::move(rows), {}, false);
}

void block_fetcher::on_missing(const block_reply_msg& reply, const std::string& peer) {
  fail(reply.request, "worker " + peer + " does not have the block: " + reply.message, true);
}

bool block_fetcher::on_disconnected(transport::connection_id id, const std::string& reason) {
  std::vector<std::uint64_t> lost;
  {
    std::lock_guard lock(_mutex);
    auto p = _peer_of.find(id);
    if (p == _peer_of.end()) return false;
    int worker = p->second;
    _peer_of.erase(p);
    _connections.erase(worker);
    for (const auto& [ticket, f] : _pending)
      if (f.holder == worker) lost.push_back(ticket);
  }
  for (auto t : lost) fail(t, "lost the connection to the worker holding the block: " + reason);
  return true;
}

void block_fetcher::expire() {
  std::vector<std::uint64_t> late;
  {
    std::lock_guard lock(_mutex);
    auto now = clock_type::now();
    for (const auto& [ticket, f] : _pending)
      if (now > f.deadline) late.push_back(ticket);
  }
  for (auto t : late)
    fail(t, "the block did not arrive within " + std::to_string(_timeout.count()) + " ms");
}

void block_fetcher::connect_loop() noexcept {
  for (;;) {
    int peer;
    transport::host_port where;
    {
      std::unique_lock lock(_mutex);
      _cv.wait_for(lock, std::chrono::milliseconds(50),
                   [&] { return _stopping || !_to_connect.empty(); });
      if (_stopping) return;
      if (_to_connect.empty()) continue;
      peer = _to_connect.front();
      _to_connect.pop_front();
      auto a = _addresses.find(peer);
      if (a != _addresses.end()) where = a->second;
    }
    std::string problem;
    transport::connection_id conn = 0;
    if (where.host.empty()) {
      problem = "worker " + std::to_string(peer) + " is not in the peer list";
    } else {
      try {
        conn = _net.connect(where.host, where.port);
      } catch (const std::exception& e) {
        problem = e.what();
      }
    }
    std::vector<std::uint64_t> tickets;
    {
      std::lock_guard lock(_mutex);
      _connecting.erase(peer);
      tickets = std::move(_waiting_for[peer]);
      _waiting_for.erase(peer);
      if (problem.empty()) {
        _connections[peer] = conn;
        _peer_of[conn] = peer;
      }
    }
    if (!problem.empty()) logger().warn("{}: cannot reach worker {}: {}", _name, peer, problem);
    for (auto t : tickets) {
      if (problem.empty()) {
        send_request(t);
      } else {
        fail(t, "cannot reach worker " + std::to_string(peer) + ": " + problem);
      }
    }
  }
}

}  // namespace ember::detail
