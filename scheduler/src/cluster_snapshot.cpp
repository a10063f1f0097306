#include <charconv>
#include <cmath>
#include <ember/host/json_text.hpp>
#include <ember/host/partition_store.hpp>

#include "detail/cluster_snapshot.hpp"

namespace ember::detail {
namespace {

std::string tier_name(std::uint8_t tier) {
  return tier <= static_cast<std::uint8_t>(memory_tier::disk)
             ? std::string(to_string(static_cast<memory_tier>(tier)))
             : "tier" + std::to_string(tier);
}

// A label value: backslash, double quote and newline escaped (the format's three).
void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

double seconds_since(std::chrono::steady_clock::time_point then,
                     std::chrono::steady_clock::time_point now) {
  return std::max(0.0, std::chrono::duration<double>(now - then).count());
}

// ---- JSON written by hand: objects of a few fields ---------------------------------------------

class json_object {
 public:
  json_object& field(std::string_view name, std::string_view text) {
    key(name);
    _out += json_quote(text);
    return *this;
  }
  json_object& field(std::string_view name, const char* text) {
    return field(name, std::string_view(text));
  }
  json_object& field(std::string_view name, std::int64_t v) {
    key(name);
    _out += std::to_string(v);
    return *this;
  }
  json_object& field(std::string_view name, int v) { return field(name, std::int64_t{v}); }
  json_object& field(std::string_view name, std::uint64_t v) {
    key(name);
    _out += std::to_string(v);
    return *this;
  }
  json_object& field(std::string_view name, double v) {
    key(name);
    _out += std::isfinite(v) ? number(v) : "null";
    return *this;
  }
  json_object& field(std::string_view name, bool v) {
    key(name);
    _out += v ? "true" : "false";
    return *this;
  }
  /// `json` is already JSON (an object or an array).
  json_object& raw(std::string_view name, std::string_view json) {
    key(name);
    _out += json;
    return *this;
  }
  [[nodiscard]] std::string str() const { return _out + "}"; }

 private:
  void key(std::string_view name) {
    _out += _out.size() == 1 ? "" : ", ";
    _out += json_quote(name);
    _out += ": ";
  }
  std::string _out = "{";
};

template <class T, class F>
std::string json_array(const std::vector<T>& items, F&& one) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += one(items[i]);
  }
  return out + "]";
}

std::string stage_json(const stage_snapshot& s) {
  return json_object()
      .field("name", s.name)
      .field("done", s.done)
      .field("total", s.total)
      .field("running", s.running)
      .field("state", s.state)
      .str();
}

std::string job_json(const job_snapshot& j) {
  return json_object()
      .field("id", j.id)
      .field("state", j.state)
      .field("message", j.message)
      .field("client", j.client)
      .field("seconds", j.seconds)
      .field("started_unix_ms", j.started_unix_ms)
      .raw("stages", json_array(j.stages, stage_json))
      .str();
}

std::string tier_json(const tier_report& t) {
  return json_object()
      .field("tier", tier_name(t.tier))
      .field("used", t.used)
      .field("peak", t.peak)
      .field("limit", t.limit)
      .field("partitions", t.partitions)
      .field("partition_bytes", t.partition_bytes)
      .str();
}

}  // namespace

// ---- prometheus_text ---------------------------------------------------------------------------

void prometheus_text::family(std::string_view name, std::string_view type, std::string_view help) {
  _out += "# HELP ";
  _out += name;
  _out += ' ';
  _out += help;
  _out += "\n# TYPE ";
  _out += name;
  _out += ' ';
  _out += type;
  _out += '\n';
}

void prometheus_text::start_sample(std::string_view name, const metric_labels& labels) {
  _out += name;
  if (!labels.empty()) {
    _out += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i) _out += ',';
      _out += labels[i].first;
      _out += "=\"";
      append_label_value(_out, labels[i].second);
      _out += '"';
    }
    _out += '}';
  }
  _out += ' ';
}

void prometheus_text::sample(std::string_view name, const metric_labels& labels,
                             std::int64_t value) {
  start_sample(name, labels);
  _out += std::to_string(value);
  _out += '\n';
}

void prometheus_text::sample(std::string_view name, const metric_labels& labels, double value) {
  start_sample(name, labels);
  _out += number(value);
  _out += '\n';
}

void prometheus_text::single(std::string_view name, std::string_view type, std::string_view help,
                             std::int64_t value) {
  family(name, type, help);
  sample(name, {}, value);
}

void write_store_metrics(prometheus_text& out,
                         const std::vector<std::pair<metric_labels, const store_report*>>& stores) {
  auto with = [](metric_labels labels, std::string_view name, std::string value) {
    labels.emplace_back(name, std::move(value));
    return labels;
  };
  auto i64 = [](std::uint64_t v) { return static_cast<std::int64_t>(v); };
  out.family("ember_tier_used_bytes", "gauge",
             "Bytes accounted in a memory tier now (partitions, task results and scratch; disk: "
             "spill files)");
  for (const auto& [labels, r] : stores)
    for (const auto& t : r->tiers)
      out.sample("ember_tier_used_bytes", with(labels, "tier", tier_name(t.tier)), i64(t.used));
  out.family("ember_tier_peak_bytes", "gauge", "Highest bytes accounted in a memory tier");
  for (const auto& [labels, r] : stores)
    for (const auto& t : r->tiers)
      out.sample("ember_tier_peak_bytes", with(labels, "tier", tier_name(t.tier)), i64(t.peak));
  out.family("ember_tier_limit_bytes", "gauge",
             "Budget of a memory tier (tiers without a budget are left out)");
  for (const auto& [labels, r] : stores)
    for (const auto& t : r->tiers)
      if (t.limit != 0)
        out.sample("ember_tier_limit_bytes", with(labels, "tier", tier_name(t.tier)), i64(t.limit));
  out.family("ember_tier_partitions", "gauge", "Partitions held in a tier of the partition store");
  for (const auto& [labels, r] : stores)
    for (const auto& t : r->tiers)
      out.sample("ember_tier_partitions", with(labels, "tier", tier_name(t.tier)),
                 i64(t.partitions));
  out.family("ember_tier_partition_bytes", "gauge",
             "Bytes of the partitions held in a tier of the partition store");
  for (const auto& [labels, r] : stores)
    for (const auto& t : r->tiers)
      out.sample("ember_tier_partition_bytes", with(labels, "tier", tier_name(t.tier)),
                 t.partition_bytes);
  out.family("ember_spilled_bytes_total", "counter",
             "Bytes of partitions spilled one tier down (to host: from the device tier; to disk: "
             "from the host tier)");
  for (const auto& [labels, r] : stores) {
    out.sample("ember_spilled_bytes_total", with(labels, "to", "host"), r->spilled_to_host_bytes);
    out.sample("ember_spilled_bytes_total", with(labels, "to", "disk"), r->spilled_to_disk_bytes);
  }
  out.family("ember_unspilled_bytes_total", "counter",
             "Bytes of partitions brought back up a tier on use (from host or from disk)");
  for (const auto& [labels, r] : stores) {
    out.sample("ember_unspilled_bytes_total", with(labels, "from", "host"),
               r->unspilled_from_host_bytes);
    out.sample("ember_unspilled_bytes_total", with(labels, "from", "disk"),
               r->unspilled_from_disk_bytes);
  }
  out.family("ember_spills_total", "counter", "Partitions spilled one tier down");
  for (const auto& [labels, r] : stores) out.sample("ember_spills_total", labels, r->spills);
  out.family("ember_unspills_total", "counter", "Partitions brought back up a tier");
  for (const auto& [labels, r] : stores) out.sample("ember_unspills_total", labels, r->unspills);
  out.family("ember_store_hits_total", "counter",
             "Partition store lookups that found the partition (in any tier)");
  for (const auto& [labels, r] : stores) out.sample("ember_store_hits_total", labels, r->hits);
  out.family("ember_store_tier_hits_total", "counter",
             "Partition store lookups that found the partition in the tier asked for");
  for (const auto& [labels, r] : stores)
    out.sample("ember_store_tier_hits_total", labels, r->tier_hits);
  out.family("ember_store_misses_total", "counter",
             "Partition store lookups that did not find the partition");
  for (const auto& [labels, r] : stores) out.sample("ember_store_misses_total", labels, r->misses);
  out.family("ember_corrupt_spills_total", "counter",
             "Spill files that failed their checksum when read back");
  for (const auto& [labels, r] : stores)
    out.sample("ember_corrupt_spills_total", labels, r->corrupt_spills);
}

// ---- /metrics ----------------------------------------------------------------------------------

std::string render_scheduler_metrics(const cluster_snapshot& s, const coordination_snapshot& c,
                                     std::chrono::steady_clock::time_point now) {
  prometheus_text out;
  out.single("ember_jobs_running", "gauge", "Jobs submitted and not yet ended",
             static_cast<std::int64_t>(s.running_jobs.size()));
  out.single("ember_jobs_finished_total", "counter",
             "Jobs that ended (successful, failed or cancelled)", s.jobs_finished);
  out.single("ember_jobs_failed_total", "counter", "Jobs that failed or were cancelled",
             s.jobs_failed);
  out.family("ember_tasks", "gauge",
             "Tasks of running jobs by state (queued: waiting for their inputs or a worker)");
  out.sample("ember_tasks", {{"state", "running"}}, s.tasks_running);
  out.sample("ember_tasks", {{"state", "queued"}}, s.tasks_queued);
  out.single("ember_tasks_done_total", "counter", "Tasks that finished successfully", s.tasks_done);
  out.single("ember_shuffle_bytes_total", "counter",
             "Bytes of shuffle blocks moved between workers (fetched over UCX or exchanged by "
             "NCCL) by finished tasks",
             s.shuffle_bytes);
  out.single("ember_transport_errors_total", "counter",
             "Connections lost to an error (peer failure, silence past the heartbeat limit, "
             "malformed messages)",
             s.transport_errors);
  out.single("ember_catalog_partitions", "gauge",
             "Partitions in the scheduler's residency catalog (every worker and tier)",
             s.catalog_partitions);

  std::int64_t alive = 0, dead = 0;
  for (const auto& w : s.workers) (w.alive ? alive : dead) += 1;
  out.family("ember_workers", "gauge", "Workers by state (dead ones stay listed for a while)");
  out.sample("ember_workers", {{"state", "alive"}}, alive);
  out.sample("ember_workers", {{"state", "dead"}}, dead);

  // Per-worker series: live workers only (a worker that rejoins comes back under a new id).
  std::vector<std::pair<metric_labels, const store_report*>> stores;
  for (const auto& w : s.workers)
    if (w.alive)
      stores.push_back({{{"worker", w.name}, {"worker_id", std::to_string(w.id)}}, &w.store});
  out.family("ember_worker_heartbeat_age_seconds", "gauge",
             "Seconds since the worker's last heartbeat");
  for (const auto& w : s.workers)
    if (w.alive)
      out.sample("ember_worker_heartbeat_age_seconds",
                 {{"worker", w.name}, {"worker_id", std::to_string(w.id)}},
                 seconds_since(w.last_heartbeat, now));
  out.family("ember_worker_tasks", "gauge",
             "Tasks on a worker by state (running; queued there; held back by admission "
             "control; assigned by the scheduler and not yet reported)");
  for (const auto& w : s.workers) {
    if (!w.alive) continue;
    for (auto [state, n] : {std::pair<const char*, int>{"running", w.running},
                            {"queued", w.queued},
                            {"held_back", w.held_back},
                            {"assigned", w.assigned}}) {
      out.sample("ember_worker_tasks",
                 {{"worker", w.name}, {"worker_id", std::to_string(w.id)}, {"state", state}},
                 std::int64_t{n});
    }
  }
  write_store_metrics(out, stores);

  out.family("ember_lock_holders", "gauge", "Leases held on a lock");
  for (const auto& l : c.locks)
    out.sample("ember_lock_holders", {{"lock", l.name}},
               static_cast<std::int64_t>(l.holders.size()));
  out.family("ember_lock_waiters", "gauge", "Owners waiting for a lock");
  for (const auto& l : c.locks)
    out.sample("ember_lock_waiters", {{"lock", l.name}}, static_cast<std::int64_t>(l.waiters));
  out.family("ember_queue_depth", "gauge", "Messages waiting in a queue for a consumer");
  for (const auto& q : c.queues)
    out.sample("ember_queue_depth", {{"queue", q.name}}, static_cast<std::int64_t>(q.ready));
  out.family("ember_queue_in_flight", "gauge", "Messages delivered and not yet acknowledged");
  for (const auto& q : c.queues)
    out.sample("ember_queue_in_flight", {{"queue", q.name}},
               static_cast<std::int64_t>(q.in_flight));
  return out.take();
}

// ---- /api/cluster ------------------------------------------------------------------------------

std::string render_cluster_json(const cluster_snapshot& s, const coordination_snapshot& c,
                                std::chrono::steady_clock::time_point now) {
  auto unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  auto counters = json_object()
                      .field("jobs_running", static_cast<std::int64_t>(s.running_jobs.size()))
                      .field("jobs_finished", s.jobs_finished)
                      .field("jobs_failed", s.jobs_failed)
                      .field("tasks_running", s.tasks_running)
                      .field("tasks_queued", s.tasks_queued)
                      .field("tasks_done", s.tasks_done)
                      .field("shuffle_bytes", s.shuffle_bytes)
                      .field("transport_errors", s.transport_errors)
                      .field("catalog_partitions", s.catalog_partitions)
                      .str();
  auto workers = json_array(s.workers, [&](const worker_snapshot& w) {
    const auto& r = w.store;
    return json_object()
        .field("id", w.id)
        .field("name", w.name)
        .field("address", w.address)
        .field("backend", w.backend)
        .field("device", w.device)
        .field("description", w.description)
        .field("alive", w.alive)
        .field("heartbeat_age_ms",
               static_cast<std::int64_t>(seconds_since(w.last_heartbeat, now) * 1000))
        .field("slots", w.slots)
        .field("assigned", w.assigned)
        .field("running", w.running)
        .field("queued", w.queued)
        .field("held_back", w.held_back)
        .raw("tiers", json_array(r.tiers, tier_json))
        .field("spilled_to_host_bytes", r.spilled_to_host_bytes)
        .field("spilled_to_disk_bytes", r.spilled_to_disk_bytes)
        .field("unspilled_bytes", r.unspilled_from_host_bytes + r.unspilled_from_disk_bytes)
        .field("hits", r.hits)
        .field("misses", r.misses)
        .str();
  });
  // The residency map: partitions by worker and tier, from each worker's latest report.
  auto by_worker = json_array(s.workers, [&](const worker_snapshot& w) {
    json_object tiers;
    for (const auto& t : w.store.tiers) {
      if (t.tier == static_cast<std::uint8_t>(memory_tier::pinned_host)) continue;  // staging only
      tiers.raw(
          tier_name(t.tier),
          json_object().field("partitions", t.partitions).field("bytes", t.partition_bytes).str());
    }
    return json_object()
        .field("worker", w.id)
        .field("name", w.name)
        .field("alive", w.alive)
        .raw("tiers", tiers.str())
        .str();
  });
  auto entries = json_array(s.cache_entries, [](const cache_entry_snapshot& e) {
    return json_object()
        .field("key", e.key)
        .field("worker", e.worker)
        .field("tier", e.tier)
        .field("bytes", e.bytes)
        .field("rows", e.rows)
        .field("pins", e.pins)
        .str();
  });
  auto residency = json_object()
                       .raw("tiers", R"(["device", "host", "disk"])")
                       .raw("workers", by_worker)
                       .raw("cache_entries", entries)
                       .field("cache_entries_total", s.cache_entries_total)
                       .str();
  auto jobs = json_object()
                  .raw("running", json_array(s.running_jobs, job_json))
                  .raw("recent", json_array(s.recent_jobs, job_json))
                  .str();
  auto locks = json_array(c.locks, [&](const lock_summary& l) {
    auto holders = json_array(l.holders, [&](const lock_grant& g) {
      return json_object()
          .field("owner", g.owner)
          .field("token", g.token)
          .field(
              "expires_in_ms",
              static_cast<std::int64_t>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(g.expires - now).count()))
          .str();
    });
    return json_object()
        .field("name", l.name)
        .field("permits", l.permits)
        .raw("holders", holders)
        .field("waiters", static_cast<std::uint64_t>(l.waiters))
        .field("newest_token", l.newest_token)
        .str();
  });
  auto queues = json_array(c.queues, [](const queue_info& q) {
    return json_object()
        .field("name", q.name)
        .field("depth", q.ready)
        .field("in_flight", q.in_flight)
        .field("bytes", q.bytes)
        .field("capacity", static_cast<std::uint64_t>(q.options.capacity))
        .field("durable", q.options.durable)
        .field("accepted", q.accepted)
        .field("acked", q.acked)
        .field("redelivered", q.redelivered)
        .str();
  });
  return json_object()
             .field("scheduler", s.scheduler)
             .field("time_unix_ms", static_cast<std::int64_t>(unix_ms))
             .field("snapshot_age_ms",
                    static_cast<std::int64_t>(seconds_since(s.taken, now) * 1000))
             .raw("counters", counters)
             .raw("workers", workers)
             .raw("residency", residency)
             .raw("jobs", jobs)
             .raw("locks", locks)
             .raw("queues", queues)
             .str() +
         "\n";
}

}  // namespace ember::detail
