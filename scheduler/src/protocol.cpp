#include <ember/scheduler/plan_codec.hpp>

#include "detail/protocol.hpp"

namespace ember::detail {
namespace {

void put_i32s(byte_writer& w, const std::vector<std::int32_t>& v) {
  w.put_count(v.size());
  for (auto x : v) w.put(x);
}
std::vector<std::int32_t> get_i32s(byte_reader& r, const char* what) {
  auto n = r.get_count(what, 4);
  std::vector<std::int32_t> out(n);
  for (auto& x : out) x = r.get<std::int32_t>(what);
  return out;
}
void put_bytes(byte_writer& w, const std::vector<std::uint8_t>& v) {
  w.put<std::uint64_t>(v.size());
  w.put_bytes(v.data(), v.size());
}
std::vector<std::uint8_t> get_bytes(byte_reader& r, const char* what) {
  auto n = r.get<std::uint64_t>(what);
  if (n > r.remaining())
    r.fail(std::string(what) + ": " + std::to_string(n) + " bytes promised but only " +
           std::to_string(r.remaining()) + " remain");
  auto s = r.get_bytes(static_cast<std::size_t>(n), what);
  return {s.begin(), s.end()};
}
void put_schema(byte_writer& w, const schema& s) {
  w.put_strings(s.names);
  w.put_count(s.types.size());
  for (auto t : s.types) w.put(static_cast<std::uint8_t>(t));
}
schema get_schema(byte_reader& r) {
  schema s;
  s.names = r.get_strings("column names");
  auto n = r.get_count("column types", 1);
  if (n != s.names.size()) r.fail("a schema with different numbers of names and types");
  for (std::size_t i = 0; i < n; ++i)
    s.types.push_back(r.get_enum(static_cast<type_id>(type_count - 1), "column type"));
  return s;
}
void put_heartbeat(byte_writer& w, const heartbeat_msg& h) { h.encode(w); }

}  // namespace

std::string_view to_string(msg m) noexcept {
  static constexpr std::string_view names[] = {
      "register_worker", "registered",     "heartbeat",     "peers",          "define_stage",
      "run_task",        "task_done",      "task_failed",   "release_blocks", "fetch_block",
      "block_data",      "block_missing",  "submit_job",    "job_progress",   "job_result",
      "job_failed",      "status_request", "status_reply",  "nccl_exchange",  "nccl_exchange_done",
      "coord_request",   "coord_reply",    "cache_request", "cache_reply"};
  auto i = static_cast<std::size_t>(m) - transport::first_application_type;
  return i < std::size(names) ? names[i] : "unknown";
}

std::string_view to_string(exchange_path p) noexcept {
  switch (p) {
    case exchange_path::automatic:
      return "auto";
    case exchange_path::ucx:
      return "ucx";
    case exchange_path::nccl:
      return "nccl";
  }
  return "unknown";
}

byte_reader reader_for(msg m, std::span<const std::uint8_t> body, const std::string& peer) {
  return byte_reader(body, "message '" + std::string(to_string(m)) + "' from peer " + peer);
}

std::pair<error_kind, std::string> describe_error(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const invalid_input& x) {
    return {error_kind::invalid_input, x.what()};
  } catch (const out_of_memory& x) {
    return {error_kind::out_of_memory, x.what()};
  } catch (const cuda_error& x) {
    return {error_kind::cuda_error, x.what()};
  } catch (const transport_error& x) {
    return {error_kind::transport_error, x.what()};
  } catch (const timeout& x) {
    return {error_kind::timeout, x.what()};
  } catch (const cancelled& x) {
    return {error_kind::cancelled, x.what()};
  } catch (const data_lost& x) {
    return {error_kind::data_lost, x.what()};
  } catch (const logic_error& x) {
    return {error_kind::logic_error, x.what()};
  } catch (const std::exception& x) {
    return {error_kind::error, x.what()};
  } catch (...) {
    return {error_kind::error, "unknown error"};
  }
}

void throw_error(error_kind kind, const std::string& message) {
  switch (kind) {
    case error_kind::logic_error:
      throw logic_error(message);
    case error_kind::invalid_input:
      throw invalid_input(message);
    case error_kind::out_of_memory:
      throw out_of_memory(message);
    case error_kind::cuda_error:
      throw cuda_error(message);
    case error_kind::transport_error:
      throw transport_error(message);
    case error_kind::timeout:
      throw timeout(message);
    case error_kind::cancelled:
      throw cancelled(message);
    case error_kind::data_lost:
      throw data_lost(message);
    case error_kind::error:
      break;
  }
  throw error(message);
}

void worker_info::encode(byte_writer& w) const {
  w.put_string(name);
  w.put(backend);
  w.put(device);
  w.put_string(description);
  w.put(memory_limit);
  w.put(slots);
  w.put_string(data_host);
  w.put(data_port);
  w.put(pid);
}
worker_info worker_info::decode(byte_reader& r) {
  worker_info i;
  i.name = r.get_string("name");
  i.backend = r.get<std::uint8_t>("backend");
  if (i.backend > 1) r.fail("unknown backend " + std::to_string(i.backend));
  i.device = r.get<std::int32_t>("device");
  i.description = r.get_string("description");
  i.memory_limit = r.get<std::uint64_t>("memory limit");
  i.slots = r.get<std::int32_t>("slots");
  if (i.slots < 1 || i.slots > 1024)
    r.fail("task slots " + std::to_string(i.slots) + " out of range");
  i.data_host = r.get_string("data host");
  i.data_port = r.get<std::int32_t>("data port");
  if (i.data_port <= 0 || i.data_port > 65535) r.fail("data port out of range");
  i.pid = r.get<std::int64_t>("pid");
  return i;
}

void registered_msg::encode(byte_writer& w) const {
  w.put(worker_id);
  w.put(heartbeat_ms);
}
registered_msg registered_msg::decode(byte_reader& r) {
  registered_msg m;
  m.worker_id = r.get<std::int32_t>("worker id");
  m.heartbeat_ms = r.get<std::int32_t>("heartbeat interval");
  if (m.heartbeat_ms < 1) r.fail("heartbeat interval must be positive");
  return m;
}

void store_report::encode(byte_writer& w) const {
  w.put_count(tiers.size());
  for (const auto& t : tiers) {
    w.put(t.tier);
    w.put(t.used);
    w.put(t.peak);
    w.put(t.limit);
    w.put(t.partitions);
    w.put(t.partition_bytes);
  }
  for (auto v :
       {spilled_to_host_bytes, spilled_to_disk_bytes, unspilled_from_host_bytes,
        unspilled_from_disk_bytes, spills, unspills, hits, tier_hits, misses, corrupt_spills})
    w.put(v);
  w.put_f64(spill_seconds);
  w.put_f64(unspill_seconds);
}
store_report store_report::decode(byte_reader& r) {
  store_report m;
  auto n = r.get_count("tiers", 41);
  for (std::size_t i = 0; i < n; ++i) {
    tier_report t;
    t.tier = r.get<std::uint8_t>("tier");
    if (t.tier > 3) throw invalid_input("tier " + std::to_string(t.tier) + " out of range");
    t.used = r.get<std::uint64_t>("tier used");
    t.peak = r.get<std::uint64_t>("tier peak");
    t.limit = r.get<std::uint64_t>("tier limit");
    t.partitions = r.get<std::uint64_t>("tier partitions");
    t.partition_bytes = r.get<std::int64_t>("tier partition bytes");
    m.tiers.push_back(t);
  }
  for (auto* v : {&m.spilled_to_host_bytes, &m.spilled_to_disk_bytes, &m.unspilled_from_host_bytes,
                  &m.unspilled_from_disk_bytes, &m.spills, &m.unspills, &m.hits, &m.tier_hits,
                  &m.misses, &m.corrupt_spills})
    *v = r.get<std::int64_t>("store counter");
  m.spill_seconds = r.get_f64("spill seconds");
  m.unspill_seconds = r.get_f64("unspill seconds");
  return m;
}

namespace {
void put_residency(byte_writer& w, const residency_entry& e) {
  w.put_string(e.key);
  w.put(e.tier);
  w.put(e.bytes);
  w.put(e.rows);
  w.put(e.pins);
  w.put(e.last_use_ms);
}
residency_entry get_residency(byte_reader& r) {
  residency_entry e;
  e.key = r.get_string("partition key");
  e.tier = r.get<std::uint8_t>("partition tier");
  if (e.tier > 3) throw invalid_input("tier " + std::to_string(e.tier) + " out of range");
  e.bytes = r.get<std::int64_t>("partition bytes");
  e.rows = r.get<std::int64_t>("partition rows");
  e.pins = r.get<std::int32_t>("partition pins");
  e.last_use_ms = r.get<std::int64_t>("partition last use");
  return e;
}
}  // namespace

void heartbeat_msg::encode(byte_writer& w) const {
  w.put(running);
  w.put(queued);
  w.put(memory_used);
  w.put(memory_peak);
  w.put(block_bytes);
  w.put(held_back);
  store.encode(w);
  w.put_bool(residency_full);
  w.put_count(changed.size());
  for (const auto& e : changed) put_residency(w, e);
  w.put_strings(removed);
}
heartbeat_msg heartbeat_msg::decode(byte_reader& r) {
  heartbeat_msg m;
  m.running = r.get<std::int32_t>("running");
  m.queued = r.get<std::int32_t>("queued");
  m.memory_used = r.get<std::uint64_t>("memory used");
  m.memory_peak = r.get<std::uint64_t>("memory peak");
  m.block_bytes = r.get<std::uint64_t>("block bytes");
  m.held_back = r.get<std::int32_t>("held back");
  m.store = store_report::decode(r);
  m.residency_full = r.get_bool("residency full");
  auto n = r.get_count("changed partitions", 33);
  for (std::size_t i = 0; i < n; ++i) m.changed.push_back(get_residency(r));
  m.removed = r.get_strings("removed partitions");
  return m;
}

void cache_request_msg::encode(byte_writer& w) const {
  w.put(request);
  w.put(static_cast<std::uint8_t>(op));
  w.put_string(key);
}
cache_request_msg cache_request_msg::decode(byte_reader& r) {
  cache_request_msg m;
  m.request = r.get<std::uint64_t>("request");
  m.op = r.get_enum(cache_op::residency, "cache operation");
  m.key = r.get_string("key");
  return m;
}

void cache_reply_msg::encode(byte_writer& w) const {
  w.put(request);
  w.put_bool(ok);
  w.put(static_cast<std::uint8_t>(kind));
  w.put_string(message);
  w.put_bool(found);
  w.put(worker);
  w.put_count(entries.size());
  for (const auto& e : entries) {
    w.put_string(e.key);
    w.put(e.worker);
    w.put_string(e.worker_name);
    w.put(e.tier);
    w.put(e.bytes);
    w.put(e.rows);
    w.put(e.pins);
    w.put(e.last_use_ms);
    w.put_bool(e.lost);
    w.put_string(e.lost_reason);
  }
}
cache_reply_msg cache_reply_msg::decode(byte_reader& r) {
  cache_reply_msg m;
  m.request = r.get<std::uint64_t>("request");
  m.ok = r.get_bool("ok");
  m.kind = r.get_enum(error_kind::data_lost, "error kind");
  m.message = r.get_string("message");
  m.found = r.get_bool("found");
  m.worker = r.get<std::int32_t>("worker");
  auto n = r.get_count("entries", 46);
  for (std::size_t i = 0; i < n; ++i) {
    cache_entry_info e;
    e.key = r.get_string("key");
    e.worker = r.get<std::int32_t>("worker");
    e.worker_name = r.get_string("worker name");
    e.tier = r.get<std::uint8_t>("tier");
    if (e.tier > 3) throw invalid_input("tier " + std::to_string(e.tier) + " out of range");
    e.bytes = r.get<std::int64_t>("bytes");
    e.rows = r.get<std::int64_t>("rows");
    e.pins = r.get<std::int32_t>("pins");
    e.last_use_ms = r.get<std::int64_t>("last use");
    e.lost = r.get_bool("lost");
    e.lost_reason = r.get_string("lost reason");
    m.entries.push_back(std::move(e));
  }
  return m;
}

void peers_msg::encode(byte_writer& w) const {
  w.put_count(peers.size());
  for (const auto& p : peers) {
    w.put(p.worker_id);
    w.put_string(p.host);
    w.put(p.port);
  }
}
peers_msg peers_msg::decode(byte_reader& r) {
  peers_msg m;
  auto n = r.get_count("peers", 12);
  for (std::size_t i = 0; i < n; ++i) {
    peer_address p;
    p.worker_id = r.get<std::int32_t>("worker id");
    p.host = r.get_string("host");
    p.port = r.get<std::int32_t>("port");
    m.peers.push_back(std::move(p));
  }
  return m;
}

void define_stage_msg::encode(byte_writer& w) const {
  w.put(job);
  w.put(stage_index);
  w.put_string(body.name);
  put_bytes(w, encode_plan(body.body));
  w.put<std::int32_t>(body.partitions);
  w.put(static_cast<std::uint8_t>(body.output.mode));
  w.put_strings(body.output.keys);
  w.put<std::int32_t>(body.output.partitions);
  put_i32s(w, std::vector<std::int32_t>(body.inputs.begin(), body.inputs.end()));
  put_schema(w, body.columns);
  w.put_bool(blocks_on_host);
}
define_stage_msg define_stage_msg::decode(byte_reader& r) {
  define_stage_msg m;
  m.job = r.get<std::uint64_t>("job");
  m.stage_index = r.get<std::int32_t>("stage");
  m.body.name = r.get_string("stage name");
  m.body.body = decode_plan(get_bytes(r, "stage body"));
  m.body.partitions = r.get<std::int32_t>("partitions");
  if (m.body.partitions < 1) r.fail("a stage without partitions");
  m.body.output.mode = r.get_enum(exchange_mode::result, "exchange mode");
  m.body.output.keys = r.get_strings("exchange keys");
  m.body.output.partitions = r.get<std::int32_t>("exchange partitions");
  if (m.body.output.partitions < 1) r.fail("an exchange without partitions");
  auto inputs = get_i32s(r, "stage inputs");
  m.body.inputs.assign(inputs.begin(), inputs.end());
  m.body.columns = get_schema(r);
  m.blocks_on_host = r.get_bool("blocks on host");
  return m;
}

void run_task_msg::encode(byte_writer& w) const {
  w.put(job);
  w.put(stage);
  w.put(partition);
  w.put(attempt);
  w.put_count(inputs.size());
  for (const auto& in : inputs) {
    w.put(in.stage);
    put_i32s(w, in.workers);
  }
}
run_task_msg run_task_msg::decode(byte_reader& r) {
  run_task_msg m;
  m.job = r.get<std::uint64_t>("job");
  m.stage = r.get<std::int32_t>("stage");
  m.partition = r.get<std::int32_t>("partition");
  m.attempt = r.get<std::int32_t>("attempt");
  auto n = r.get_count("inputs", 8);
  for (std::size_t i = 0; i < n; ++i) {
    input_locations in;
    in.stage = r.get<std::int32_t>("input stage");
    in.workers = get_i32s(r, "input workers");
    m.inputs.push_back(std::move(in));
  }
  return m;
}

void task_done_msg::encode(byte_writer& w) const {
  w.put(job);
  w.put(stage);
  w.put(partition);
  w.put(attempt);
  w.put(rows);
  w.put(bytes);
  w.put(input_rows);
  w.put(input_bytes);
  w.put(partitions_skipped);
  w.put_f64(seconds);
  w.put(fetched_bytes);
  w.put_f64(fetch_start);
  w.put_f64(fetch_end);
  w.put_count(labels.size());
  for (const auto& l : labels) {
    w.put_string(l.label);
    w.put(l.rows);
    w.put(l.bytes);
  }
  w.put_count(block_bytes.size());
  for (auto b : block_bytes) w.put(b);
  w.put_count(fetch_sources.size());
  for (const auto& f : fetch_sources) {
    w.put(f.worker);
    w.put(f.bytes);
    w.put_f64(f.start);
    w.put_f64(f.end);
  }
}
task_done_msg task_done_msg::decode(byte_reader& r) {
  task_done_msg m;
  m.job = r.get<std::uint64_t>("job");
  m.stage = r.get<std::int32_t>("stage");
  m.partition = r.get<std::int32_t>("partition");
  m.attempt = r.get<std::int32_t>("attempt");
  m.rows = r.get<std::int64_t>("rows");
  m.bytes = r.get<std::int64_t>("bytes");
  m.input_rows = r.get<std::int64_t>("input rows");
  m.input_bytes = r.get<std::int64_t>("input bytes");
  m.partitions_skipped = r.get<std::int64_t>("partitions skipped");
  m.seconds = r.get_f64("seconds");
  m.fetched_bytes = r.get<std::int64_t>("fetched bytes");
  m.fetch_start = r.get_f64("fetch start");
  m.fetch_end = r.get_f64("fetch end");
  auto n = r.get_count("labels", 20);
  for (std::size_t i = 0; i < n; ++i) {
    label_metrics l;
    l.label = r.get_string("label");
    l.rows = r.get<std::int64_t>("label rows");
    l.bytes = r.get<std::int64_t>("label bytes");
    m.labels.push_back(std::move(l));
  }
  auto b = r.get_count("block bytes", 8);
  for (std::size_t i = 0; i < b; ++i) m.block_bytes.push_back(r.get<std::int64_t>("block bytes"));
  auto f = r.get_count("fetch sources", 28);
  for (std::size_t i = 0; i < f; ++i) {
    fetch_source x;
    x.worker = r.get<std::int32_t>("fetch source worker");
    x.bytes = r.get<std::int64_t>("fetch source bytes");
    x.start = r.get_f64("fetch source start");
    x.end = r.get_f64("fetch source end");
    m.fetch_sources.push_back(x);
  }
  return m;
}

void task_failed_msg::encode(byte_writer& w) const {
  w.put(job);
  w.put(stage);
  w.put(partition);
  w.put(attempt);
  w.put(static_cast<std::uint8_t>(kind));
  w.put_string(message);
  w.put_bool(input_lost);
  w.put_count(lost_blocks.size());
  for (auto [stage, map] : lost_blocks) {
    w.put(stage);
    w.put(map);
  }
}
task_failed_msg task_failed_msg::decode(byte_reader& r) {
  task_failed_msg m;
  m.job = r.get<std::uint64_t>("job");
  m.stage = r.get<std::int32_t>("stage");
  m.partition = r.get<std::int32_t>("partition");
  m.attempt = r.get<std::int32_t>("attempt");
  m.kind = r.get_enum(error_kind::data_lost, "error kind");
  m.message = r.get_string("message");
  m.input_lost = r.get_bool("input lost");
  auto n = r.get_count("lost blocks", 8);
  for (std::size_t i = 0; i < n; ++i) {
    auto stage = r.get<std::int32_t>("lost block stage");
    auto map = r.get<std::int32_t>("lost block map");
    m.lost_blocks.emplace_back(stage, map);
  }
  return m;
}

void release_msg::encode(byte_writer& w) const {
  w.put(job);
  w.put(stage);
  w.put_bool(cancel);
}
release_msg release_msg::decode(byte_reader& r) {
  release_msg m;
  m.job = r.get<std::uint64_t>("job");
  m.stage = r.get<std::int32_t>("stage");
  m.cancel = r.get_bool("cancel");
  return m;
}

void fetch_block_msg::encode(byte_writer& w) const {
  w.put(request);
  w.put(job);
  w.put(stage);
  w.put(map_partition);
  w.put(reduce_partition);
}
fetch_block_msg fetch_block_msg::decode(byte_reader& r) {
  fetch_block_msg m;
  m.request = r.get<std::uint64_t>("request");
  m.job = r.get<std::uint64_t>("job");
  m.stage = r.get<std::int32_t>("stage");
  m.map_partition = r.get<std::int32_t>("map partition");
  m.reduce_partition = r.get<std::int32_t>("reduce partition");
  return m;
}

void block_reply_msg::encode(byte_writer& w) const {
  w.put(request);
  w.put_string(message);
}
block_reply_msg block_reply_msg::decode(byte_reader& r) {
  block_reply_msg m;
  m.request = r.get<std::uint64_t>("request");
  m.message = r.get_string("message");
  return m;
}

void nccl_exchange_msg::encode(byte_writer& w) const {
  w.put(job);
  w.put(stage);
  put_bytes(w, unique_id);
  w.put(rank);
  put_i32s(w, rank_workers);
  put_i32s(w, reduce_owner);
  put_i32s(w, map_workers);
  put_schema(w, schema{column_names, column_types});
}
nccl_exchange_msg nccl_exchange_msg::decode(byte_reader& r) {
  nccl_exchange_msg m;
  m.job = r.get<std::uint64_t>("job");
  m.stage = r.get<std::int32_t>("stage");
  m.unique_id = get_bytes(r, "unique id");
  if (m.unique_id.size() != 128) r.fail("an NCCL unique id has 128 bytes");
  m.rank = r.get<std::int32_t>("rank");
  m.rank_workers = get_i32s(r, "rank workers");
  m.reduce_owner = get_i32s(r, "reduce owners");
  m.map_workers = get_i32s(r, "map workers");
  auto columns = get_schema(r);
  m.column_names = std::move(columns.names);
  m.column_types = std::move(columns.types);
  if (m.rank < 0 || static_cast<std::size_t>(m.rank) >= m.rank_workers.size())
    r.fail("rank out of range");
  for (auto o : m.reduce_owner)
    if (o < 0 || static_cast<std::size_t>(o) >= m.rank_workers.size()) r.fail("owner out of range");
  return m;
}

void nccl_exchange_done_msg::encode(byte_writer& w) const {
  w.put(job);
  w.put(stage);
  w.put_bool(ok);
  w.put_string(message);
}
nccl_exchange_done_msg nccl_exchange_done_msg::decode(byte_reader& r) {
  nccl_exchange_done_msg m;
  m.job = r.get<std::uint64_t>("job");
  m.stage = r.get<std::int32_t>("stage");
  m.ok = r.get_bool("ok");
  m.message = r.get_string("message");
  return m;
}

void submit_job_msg::encode(byte_writer& w) const {
  w.put(request);
  put_bytes(w, plan);
  w.put(partitions_per_worker);
  w.put(broadcast_limit_rows);
  w.put(timeout_ms);
  w.put(static_cast<std::uint8_t>(exchange));
}
submit_job_msg submit_job_msg::decode(byte_reader& r) {
  submit_job_msg m;
  m.request = r.get<std::uint64_t>("request");
  m.plan = get_bytes(r, "plan");
  m.partitions_per_worker = r.get<std::int32_t>("partitions per worker");
  if (m.partitions_per_worker < 1 || m.partitions_per_worker > 4096)
    r.fail("partitions per worker out of range");
  m.broadcast_limit_rows = r.get<std::int64_t>("broadcast limit");
  m.timeout_ms = r.get<std::int64_t>("timeout");
  if (m.broadcast_limit_rows < 0 || m.timeout_ms < 0) r.fail("negative limit");
  m.exchange = r.get_enum(exchange_path::nccl, "exchange path");
  return m;
}

void job_progress_msg::encode(byte_writer& w) const {
  w.put(request);
  w.put_string(stage);
  w.put(done);
  w.put(total);
}
job_progress_msg job_progress_msg::decode(byte_reader& r) {
  job_progress_msg m;
  m.request = r.get<std::uint64_t>("request");
  m.stage = r.get_string("stage");
  m.done = r.get<std::int64_t>("done");
  m.total = r.get<std::int64_t>("total");
  return m;
}

void job_result_msg::encode(byte_writer& w) const {
  w.put(request);
  w.put_count(metrics.stages.size());
  for (const auto& s : metrics.stages) {
    w.put_string(s.name);
    w.put<std::int32_t>(s.tasks);
    w.put_f64(s.seconds);
    w.put(s.rows_out);
    w.put(s.bytes_out);
    w.put(s.bytes_fetched);
    w.put_f64(s.fetch_seconds);
    w.put(s.partitions_skipped);
    w.put_count(s.links.size());
    for (const auto& l : s.links) {
      w.put<std::int32_t>(l.from_worker);
      w.put<std::int32_t>(l.to_worker);
      w.put(l.bytes);
      w.put_f64(l.seconds);
    }
  }
  w.put_count(metrics.labels.size());
  for (const auto& l : metrics.labels) {
    w.put_string(l.label);
    w.put(l.rows);
    w.put(l.bytes);
  }
  w.put_f64(metrics.seconds);
  w.put(metrics.input_rows);
  w.put(metrics.input_bytes);
  w.put(metrics.peak_block_bytes);
  w.put(retried_tasks);
}
job_result_msg job_result_msg::decode(byte_reader& r) {
  job_result_msg m;
  m.request = r.get<std::uint64_t>("request");
  auto n = r.get_count("stages", 60);
  for (std::size_t i = 0; i < n; ++i) {
    stage_metrics s;
    s.name = r.get_string("stage name");
    s.tasks = r.get<std::int32_t>("tasks");
    s.seconds = r.get_f64("seconds");
    s.rows_out = r.get<std::int64_t>("rows");
    s.bytes_out = r.get<std::int64_t>("bytes");
    s.bytes_fetched = r.get<std::int64_t>("bytes fetched");
    s.fetch_seconds = r.get_f64("fetch seconds");
    s.partitions_skipped = r.get<std::int64_t>("partitions skipped");
    auto links = r.get_count("links", 24);
    for (std::size_t j = 0; j < links; ++j) {
      link_metrics l;
      l.from_worker = r.get<std::int32_t>("link from worker");
      l.to_worker = r.get<std::int32_t>("link to worker");
      l.bytes = r.get<std::int64_t>("link bytes");
      l.seconds = r.get_f64("link seconds");
      s.links.push_back(l);
    }
    m.metrics.stages.push_back(std::move(s));
  }
  auto l = r.get_count("labels", 20);
  for (std::size_t i = 0; i < l; ++i) {
    label_metrics x;
    x.label = r.get_string("label");
    x.rows = r.get<std::int64_t>("rows");
    x.bytes = r.get<std::int64_t>("bytes");
    m.metrics.labels.push_back(std::move(x));
  }
  m.metrics.seconds = r.get_f64("seconds");
  m.metrics.input_rows = r.get<std::int64_t>("input rows");
  m.metrics.input_bytes = r.get<std::int64_t>("input bytes");
  m.metrics.peak_block_bytes = r.get<std::int64_t>("peak block bytes");
  m.retried_tasks = r.get<std::int32_t>("retried tasks");
  return m;
}

void job_failed_msg::encode(byte_writer& w) const {
  w.put(request);
  w.put(static_cast<std::uint8_t>(kind));
  w.put_string(message);
}
job_failed_msg job_failed_msg::decode(byte_reader& r) {
  job_failed_msg m;
  m.request = r.get<std::uint64_t>("request");
  m.kind = r.get_enum(error_kind::data_lost, "error kind");
  m.message = r.get_string("message");
  return m;
}

void status_reply_msg::encode(byte_writer& w) const {
  w.put(request);
  w.put_string(scheduler);
  w.put_count(workers.size());
  for (const auto& s : workers) {
    s.info.encode(w);
    w.put(s.id);
    w.put_string(s.address);
    w.put_bool(s.alive);
    w.put(s.heartbeat_age_ms);
    put_heartbeat(w, s.last);
    w.put(s.assigned);
  }
  w.put(running_jobs);
  w.put(finished_jobs);
  w.put(tasks_done);
}
status_reply_msg status_reply_msg::decode(byte_reader& r) {
  status_reply_msg m;
  m.request = r.get<std::uint64_t>("request");
  m.scheduler = r.get_string("scheduler");
  auto n = r.get_count("workers", 40);
  for (std::size_t i = 0; i < n; ++i) {
    worker_status s;
    s.info = worker_info::decode(r);
    s.id = r.get<std::int32_t>("worker id");
    s.address = r.get_string("address");
    s.alive = r.get_bool("alive");
    s.heartbeat_age_ms = r.get<std::int64_t>("heartbeat age");
    s.last = heartbeat_msg::decode(r);
    s.assigned = r.get<std::int32_t>("assigned");
    m.workers.push_back(std::move(s));
  }
  m.running_jobs = r.get<std::int32_t>("running jobs");
  m.finished_jobs = r.get<std::int64_t>("finished jobs");
  m.tasks_done = r.get<std::int64_t>("tasks done");
  return m;
}

// ---- coordination -----------------------------------------------------------------------------

std::string_view to_string(coord_op op) noexcept {
  static constexpr std::string_view names[] = {
      "lock acquire",     "lock renew",    "lock release",    "lock check", "lock list",
      "kv get",           "kv set",        "kv cas",          "kv erase",   "kv list",
      "queue create",     "queue drop",    "queue put",       "queue get",  "queue ack",
      "queue list",       "topic publish", "topic subscribe", "topic poll", "topic unsubscribe",
      "queue ack and get"};
  auto i = static_cast<std::size_t>(op);
  return i < std::size(names) ? names[i] : "unknown";
}

namespace {
void put_blob(byte_writer& w, const std::vector<std::uint8_t>& b) {
  w.put<std::uint64_t>(b.size());
  w.put_bytes(b.data(), b.size());
}
std::vector<std::uint8_t> get_blob(byte_reader& r, const char* what) {
  auto n = r.get<std::uint64_t>(what);
  if (n > r.remaining()) r.fail(std::string(what) + ": " + std::to_string(n) + " bytes do not fit");
  auto b = r.get_bytes(static_cast<std::size_t>(n), what);
  return {b.begin(), b.end()};
}
}  // namespace

void coord_request_msg::encode(byte_writer& w) const {
  w.put(request);
  w.put(static_cast<std::uint8_t>(op));
  w.put_string(name);
  w.put_string(owner);
  put_blob(w, value);
  w.put(permits);
  w.put(ttl_ms);
  w.put(timeout_ms);
  w.put(token);
  w.put(id);
  w.put<std::uint8_t>(has_expected ? 1 : 0);
  w.put(expected_version);
  w.put_string(fence_lock);
  w.put(fence_token);
  w.put(queue.capacity);
  w.put<std::uint8_t>(queue.durable ? 1 : 0);
  w.put<std::int64_t>(queue.visibility_timeout.count());
  w.put(queue.max_message_bytes);
  w.put(buffer);
  w.put(max_messages);
}
coord_request_msg coord_request_msg::decode(byte_reader& r) {
  coord_request_msg m;
  m.request = r.get<std::uint64_t>("request");
  m.op = r.get_enum(coord_op::last, "operation");
  m.name = r.get_string("name");
  m.owner = r.get_string("owner");
  m.value = get_blob(r, "value");
  m.permits = r.get<std::int32_t>("permits");
  m.ttl_ms = r.get<std::int64_t>("ttl");
  m.timeout_ms = r.get<std::int64_t>("timeout");
  m.token = r.get<std::uint64_t>("token");
  m.id = r.get<std::uint64_t>("id");
  m.has_expected = r.get_bool("has expected version");
  m.expected_version = r.get<std::uint64_t>("expected version");
  m.fence_lock = r.get_string("fence lock");
  m.fence_token = r.get<std::uint64_t>("fence token");
  m.queue.capacity = r.get<std::uint64_t>("queue capacity");
  m.queue.durable = r.get_bool("queue durable");
  m.queue.visibility_timeout = std::chrono::milliseconds(r.get<std::int64_t>("visibility timeout"));
  m.queue.max_message_bytes = r.get<std::uint64_t>("max message bytes");
  m.buffer = r.get<std::uint32_t>("buffer");
  m.max_messages = r.get<std::uint32_t>("max messages");
  return m;
}

void coord_reply_msg::encode(byte_writer& w) const {
  w.put(request);
  w.put<std::uint8_t>(ok ? 1 : 0);
  w.put(static_cast<std::uint8_t>(kind));
  w.put_string(message);
  w.put<std::uint8_t>(found ? 1 : 0);
  w.put(token);
  w.put(ttl_ms);
  w.put(version);
  w.put(id);
  w.put(deliveries);
  w.put(count);
  w.put(lost);
  put_blob(w, value);
  put_blob(w, items);
}
coord_reply_msg coord_reply_msg::decode(byte_reader& r) {
  coord_reply_msg m;
  m.request = r.get<std::uint64_t>("request");
  m.ok = r.get_bool("ok");
  m.kind = r.get_enum(error_kind::data_lost, "error kind");
  m.message = r.get_string("message");
  m.found = r.get_bool("found");
  m.token = r.get<std::uint64_t>("token");
  m.ttl_ms = r.get<std::int64_t>("ttl");
  m.version = r.get<std::uint64_t>("version");
  m.id = r.get<std::uint64_t>("id");
  m.deliveries = r.get<std::uint32_t>("deliveries");
  m.count = r.get<std::uint64_t>("count");
  m.lost = r.get<std::uint64_t>("lost");
  m.value = get_blob(r, "value");
  m.items = get_blob(r, "items");
  return m;
}

}  // namespace ember::detail
