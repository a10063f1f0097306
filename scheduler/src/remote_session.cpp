#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <ember/scheduler/plan_codec.hpp>

#include <thread>
#include <tuple>

#include "detail/remote_session.hpp"
#include "detail/scheduler_connection.hpp"

namespace ember::detail {

using clock_type = std::chrono::steady_clock;

remote_session::remote_session(const std::string& address, const client_options& options)
    : _address(address), _options(options) {
  std::tie(_net, _scheduler) = connect_to_scheduler(address, options, "client", *this);
}

remote_session::~remote_session() { close(); }

void remote_session::close() noexcept {
  if (_net) _net->shutdown();
}

void remote_session::on_message(transport::connection_id, std::uint16_t type,
                                std::span<const std::uint8_t> body) {
  auto m = static_cast<msg>(type);
  std::lock_guard lock(_mutex);
  switch (m) {
    case msg::job_progress: {
      auto p = decode<job_progress_msg>(m, body, _address);
      auto it = _pending.find(p.request);
      if (it != _pending.end()) it->second.progress.push_back(std::move(p));
      break;
    }
    case msg::job_failed: {
      auto f = decode<job_failed_msg>(m, body, _address);
      auto it = _pending.find(f.request);
      if (it != _pending.end()) it->second.failure = std::move(f);
      break;
    }
    case msg::status_reply: {
      auto s = decode<status_reply_msg>(m, body, _address);
      auto it = _pending.find(s.request);
      if (it != _pending.end()) it->second.status = std::move(s);
      break;
    }
    case msg::cache_reply: {
      auto c = decode<cache_reply_msg>(m, body, _address);
      auto it = _pending.find(c.request);
      if (it != _pending.end()) it->second.cache = std::move(c);
      break;
    }
    default:
      throw invalid_input("unexpected message '" + std::string(to_string(m)) +
                          "' from the scheduler");
  }
  _cv.notify_all();
}

void remote_session::on_table(transport::connection_id, std::uint16_t type,
                              std::span<const std::uint8_t> header, table rows) {
  auto m = static_cast<msg>(type);
  if (m == msg::cache_reply) {
    auto c = decode<cache_reply_msg>(m, header, _address);
    std::lock_guard lock(_mutex);
    auto it = _pending.find(c.request);
    if (it == _pending.end()) return;
    it->second.cache = std::move(c);
    it->second.cache_rows = std::move(rows);
    _cv.notify_all();
    return;
  }
  if (m != msg::job_result)
    throw invalid_input("unexpected table message '" + std::string(to_string(m)) +
                        "' from the scheduler");
  auto r = decode<job_result_msg>(m, header, _address);
  std::lock_guard lock(_mutex);
  auto it = _pending.find(r.request);
  if (it == _pending.end()) return;
  job_result out;
  out.result = std::move(rows);
  out.metrics = std::move(r.metrics);
  out.metrics.retried_tasks = r.retried_tasks;
  it->second.result = std::move(out);
  _cv.notify_all();
}

void remote_session::on_disconnected(transport::connection_id id, const std::string& reason) {
  std::lock_guard lock(_mutex);
  if (id != _scheduler) return;
  _lost = reason;
  _cv.notify_all();
}

void remote_session::reconnect_if_lost(std::unique_lock<std::mutex>& lock) {
  _cv.wait(lock, [&] { return !_reconnecting; });  // one thread reconnects, the others wait
  if (!_lost) return;
  // The scheduler went away (a restart, say): calls after that reach it again once it is back.
  auto reason = *_lost;
  _reconnecting = true;
  auto where = transport::parse_host_port(_address);
  auto until = clock_type::now() + _options.reconnect_timeout;
  lock.unlock();
  transport::connection_id id = 0;
  for (;;) {
    try {
      id = _net->connect(where.host, where.port);
      break;
    } catch (const std::exception&) {
      if (clock_type::now() >= until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  lock.lock();
  _reconnecting = false;
  _cv.notify_all();
  if (id == 0)
    throw transport_error("lost the scheduler at " + _address + " (" + reason +
                          ") and could not reach it again within " +
                          std::to_string(_options.reconnect_timeout.count()) + " ms");
  _scheduler = id;
  _lost.reset();
  ++_epoch;
}

job_result remote_session::run(const plan& p) {
  submit_job_msg s;
  s.plan = encode_plan(p);
  // The scheduler drops a peer whose message is over its limit: say why here instead.
  transport::frame_limits limits;
  EMBER_EXPECTS(s.plan.size() + 64 <= limits.max_message_bytes, invalid_input,
                "the plan takes " + std::to_string(s.plan.size()) +
                    " bytes with its in-memory tables, over the " +
                    std::to_string(limits.max_message_bytes) +
                    "-byte message limit: read large inputs from files instead");
  s.partitions_per_worker = _options.partitions_per_worker;
  s.broadcast_limit_rows = _options.broadcast_limit_rows;
  s.timeout_ms = _options.job_timeout.count();
  s.exchange = static_cast<exchange_path>(_options.exchange);
  std::uint64_t epoch = 0;
  transport::connection_id scheduler = 0;
  {
    std::unique_lock lock(_mutex);
    reconnect_if_lost(lock);
    s.request = _next_request++;
    _pending[s.request];
    epoch = _epoch;
    scheduler = _scheduler;
  }
  auto request = s.request;
  struct forget {
    remote_session* self;
    std::uint64_t request;
    ~forget() {
      std::lock_guard lock(self->_mutex);
      self->_pending.erase(request);
    }
  } cleanup{this, request};
  if (!_net->send(scheduler, static_cast<std::uint16_t>(msg::submit_job), encode(s)))
    throw transport_error("lost the scheduler at " + _address);
  // The scheduler enforces the job's timeout; this one only guards against a scheduler that
  // stops answering while its connection stays up.
  std::optional<clock_type::time_point> deadline;
  if (_options.job_timeout.count() > 0)
    deadline = clock_type::now() + _options.job_timeout + std::chrono::seconds(10);
  std::unique_lock lock(_mutex);
  for (;;) {
    _cv.wait_for(lock, std::chrono::milliseconds(50));
    auto& slot = _pending.at(request);
    auto progress = std::move(slot.progress);
    slot.progress.clear();
    if (!progress.empty() && _options.progress) {
      lock.unlock();
      for (const auto& m : progress) _options.progress(m.stage, m.done, m.total);
      lock.lock();
    }
    auto& now = _pending.at(request);
    if (now.result) return std::move(*now.result);
    if (now.failure) throw_error(now.failure->kind, now.failure->message);
    if (_lost || _epoch != epoch)
      throw transport_error("lost the scheduler at " + _address + " while the job ran" +
                            (_lost ? ": " + *_lost : std::string()) + "; run it again");
    if (deadline && clock_type::now() > *deadline)
      throw timeout("the scheduler at " + _address + " did not answer within the job timeout");
  }
}

std::pair<cache_reply_msg, std::optional<table>> remote_session::cache_call(
    cache_request_msg request, const table_view* rows, std::chrono::milliseconds limit) {
  transport::connection_id scheduler = 0;
  {
    std::unique_lock lock(_mutex);
    reconnect_if_lost(lock);
    request.request = _next_request++;
    _pending[request.request];
    scheduler = _scheduler;
  }
  if (rows != nullptr) {
    _net->send_table(scheduler, static_cast<std::uint16_t>(msg::cache_request), encode(request),
                     transport::describe_table(*rows, nullptr));
  } else {
    _net->send(scheduler, static_cast<std::uint16_t>(msg::cache_request), encode(request));
  }
  std::unique_lock lock(_mutex);
  bool answered =
      _cv.wait_for(lock, limit, [&] { return _pending.at(request.request).cache || _lost; });
  auto reply = std::move(_pending.at(request.request).cache);
  auto got = std::move(_pending.at(request.request).cache_rows);
  _pending.erase(request.request);
  if (!answered)
    throw timeout("the scheduler at " + _address + " did not answer a cache request within " +
                  std::to_string(limit.count()) + " ms");
  if (!reply) throw transport_error("lost the scheduler at " + _address + ": " + *_lost);
  if (!reply->ok) throw_error(reply->kind, reply->message);
  return {std::move(*reply), std::move(got)};
}

cluster_status remote_session::status(std::chrono::milliseconds limit) {
  std::uint64_t request;
  transport::connection_id scheduler = 0;
  {
    std::unique_lock lock(_mutex);
    reconnect_if_lost(lock);
    request = _next_request++;
    _pending[request];
    scheduler = _scheduler;
  }
  byte_writer w;
  w.put(request);
  _net->send(scheduler, static_cast<std::uint16_t>(msg::status_request), std::move(w.bytes()));
  std::unique_lock lock(_mutex);
  bool answered = _cv.wait_for(lock, limit, [&] { return _pending.at(request).status || _lost; });
  auto reply = std::move(_pending.at(request).status);
  _pending.erase(request);
  if (!answered) throw timeout("the scheduler at " + _address + " did not answer a status request");
  if (!reply) throw transport_error("lost the scheduler at " + _address + ": " + *_lost);
  cluster_status out;
  out.scheduler = reply->scheduler;
  out.running_jobs = reply->running_jobs;
  out.finished_jobs = reply->finished_jobs;
  out.tasks_done = reply->tasks_done;
  for (const auto& ws : reply->workers) {
    worker_status_info i;
    i.id = ws.id;
    i.name = ws.info.name;
    i.address = ws.info.data_host + ":" + std::to_string(ws.info.data_port);
    i.backend = ws.info.backend == static_cast<std::uint8_t>(backend_kind::cuda) ? "cuda" : "cpu";
    i.device = ws.info.device;
    i.description = ws.info.description;
    i.alive = ws.alive;
    i.heartbeat_age_ms = ws.heartbeat_age_ms;
    i.slots = ws.info.slots;
    i.running_tasks = ws.last.running;
    i.queued_tasks = ws.last.queued;
    i.assigned_tasks = ws.assigned;
    i.memory_limit = ws.info.memory_limit;
    i.memory_used = ws.last.memory_used;
    i.memory_peak = ws.last.memory_peak;
    i.block_bytes = ws.last.block_bytes;
    i.pid = ws.info.pid;
    const auto& st = ws.last.store;
    for (const auto& t : st.tiers) {
      i.tiers.push_back(tier_status{std::string(to_string(static_cast<memory_tier>(t.tier))),
                                    t.used, t.peak, t.limit, t.partitions, t.partition_bytes});
    }
    i.spilled_to_host_bytes = st.spilled_to_host_bytes;
    i.spilled_to_disk_bytes = st.spilled_to_disk_bytes;
    i.unspilled_bytes = st.unspilled_from_host_bytes + st.unspilled_from_disk_bytes;
    i.spills = st.spills;
    i.unspills = st.unspills;
    i.spill_seconds = st.spill_seconds;
    i.unspill_seconds = st.unspill_seconds;
    i.hits = st.hits;
    i.tier_hits = st.tier_hits;
    i.misses = st.misses;
    i.corrupt_spills = st.corrupt_spills;
    i.held_back_tasks = ws.last.held_back;
    out.workers.push_back(std::move(i));
  }
  return out;
}

}  // namespace ember::detail
