#include "bench_cluster_target.hpp"

#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <thread>

#include <ember/host/error.hpp>

#include "bench_env.hpp"
#include "cluster_flags.hpp"
#include "size_parser.hpp"

namespace ember::cli {
namespace {

int& clusters_started() {
  static int n = 0;
  return n;
}

}  // namespace

local_process_cluster::local_process_cluster(const local_cluster_options& options)
    : _dir(std::filesystem::temp_directory_path() /
           ("ember-bench-cluster-" + std::to_string(::getpid()) + "-" +
            std::to_string(clusters_started()++))) {
  EMBER_EXPECTS(options.workers >= 1, invalid_input, "--workers: a cluster needs a worker");
  std::filesystem::create_directories(_dir);
  auto exe = current_executable().string();
  std::vector<std::string> shared;
  if (options.shared_memory) shared.push_back("--shared-memory");
  std::vector<std::string> sched = {exe,
                                    "scheduler",
                                    "--listen",
                                    "127.0.0.1:0",
                                    "--data",
                                    (_dir / "data").string(),
                                    "--metrics-listen",
                                    "off"};
  sched.insert(sched.end(), shared.begin(), shared.end());
  _scheduler = std::make_unique<child_process>(sched, _dir / "scheduler", loopback_env);
  _address = _scheduler->wait_for_output("listening on (\\S+)", std::chrono::seconds(30));
  for (int i = 0; i < options.workers; ++i) {
    std::vector<std::string> w = {exe,
                                  "worker",
                                  "--scheduler",
                                  _address,
                                  "--slots",
                                  std::to_string(options.slots),
                                  "--cpu-threads",
                                  std::to_string(options.cpu_threads),
                                  "--backend",
                                  options.backend};
    if (!options.device_memory_limit.empty())
      w.insert(w.end(), {"--device-memory-limit", options.device_memory_limit});
    if (!options.host_memory_limit.empty())
      w.insert(w.end(), {"--host-memory-limit", options.host_memory_limit});
    if (!options.spill_dir.empty()) w.insert(w.end(), {"--spill-dir", options.spill_dir});
    w.insert(w.end(), shared.begin(), shared.end());
    _workers.push_back(
        std::make_unique<child_process>(w, _dir / ("worker" + std::to_string(i)), loopback_env));
  }
  for (auto& w : _workers) w->wait_for_output("ember (worker \\d+)", std::chrono::seconds(30));
}

local_process_cluster::~local_process_cluster() {
  _workers.clear();
  _scheduler.reset();
  if (std::getenv("EMBER_BENCH_KEEP_LOGS") != nullptr) {
    std::cerr << "cluster logs kept in " << _dir.string() << "\n";
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(_dir, ec);
}

void bench_cluster_flags::add_to(CLI::App& cmd) {
  cmd.add_option("--scheduler", scheduler,
                 "HOST:PORT of a running scheduler (default: start a scheduler and worker "
                 "processes on loopback)");
  cmd.add_option("--token-file", token_file, "File holding the cluster token (--scheduler)");
  cmd.add_flag("--embedded", embedded, "Run on the embedded in-process cluster");
  cmd.add_option("--workers", workers, "Worker processes (or embedded workers) to start")
      ->capture_default_str();
  cmd.add_option("--device-memory-limit", device_memory_limit,
                 "Device tier budget of each started worker (e.g. 64MB)");
  cmd.add_option("--host-memory-limit", host_memory_limit,
                 "Host tier budget of each started worker (spills beyond it go to disk)");
  cmd.add_option("--spill-dir", spill_dir, "Spill folder of the started workers");
}

nlohmann::json bench_cluster_flags::parameters() const {
  nlohmann::json p = {{"workers", workers}};
  if (!scheduler.empty()) p["scheduler"] = scheduler;
  if (embedded) p["embedded"] = true;
  if (!device_memory_limit.empty())
    p["device_memory_limit_bytes"] = parse_size(device_memory_limit, "--device-memory-limit");
  if (!host_memory_limit.empty())
    p["host_memory_limit_bytes"] = parse_size(host_memory_limit, "--host-memory-limit");
  return p;
}

bench_cluster_target::bench_cluster_target(const bench_cluster_flags& flags) : _flags(flags) {
  EMBER_EXPECTS(!(flags.embedded && !flags.scheduler.empty()), invalid_input,
                "--embedded and --scheduler: choose one cluster");
  EMBER_EXPECTS(flags.workers >= 1, invalid_input,
                "--workers: " + std::to_string(flags.workers) + " (at least 1)");
  bool budgets = !flags.device_memory_limit.empty() || !flags.host_memory_limit.empty() ||
                 !flags.spill_dir.empty();
  EMBER_EXPECTS(!(budgets && !flags.scheduler.empty()), invalid_input,
                "--device-memory-limit, --host-memory-limit and --spill-dir apply to workers the "
                "bench starts, not to a running cluster (--scheduler)");
  EMBER_EXPECTS(!(flags.embedded && (!flags.host_memory_limit.empty() || !flags.spill_dir.empty())),
                invalid_input,
                "--host-memory-limit and --spill-dir need worker processes, not --embedded");
  // Checked here so that a bad size fails before anything starts.
  if (!flags.device_memory_limit.empty())
    (void)parse_size(flags.device_memory_limit, "--device-memory-limit");
  if (!flags.host_memory_limit.empty())
    (void)parse_size(flags.host_memory_limit, "--host-memory-limit");
  if (!flags.token_file.empty()) _token = read_token_file(flags.token_file);
  if (!flags.scheduler.empty()) {
    _address = flags.scheduler;
  } else if (!flags.embedded) {
    set_loopback_env();
    local_cluster_options o;
    o.workers = flags.workers;
    o.device_memory_limit = flags.device_memory_limit;
    o.host_memory_limit = flags.host_memory_limit;
    o.spill_dir = flags.spill_dir;
    o.backend = flags.backend;
    o.shared_memory = flags.shared_memory;
    _local = std::make_unique<local_process_cluster>(o);
    _address = _local->address();
  }
}

bench_cluster_target::~bench_cluster_target() = default;

client bench_cluster_target::connect(client_options options) const {
  if (_flags.embedded) {
    options.workers = _flags.workers;
    options.backend = backend_choice::cpu;
    options.cpu_threads = 1;
    if (!_flags.device_memory_limit.empty())
      options.device_memory_limit =
          static_cast<std::size_t>(parse_size(_flags.device_memory_limit, "--device-memory-limit"));
    return client::local(options);
  }
  options.token = _token;
  options.shared_memory = _flags.shared_memory;
  return client::connect(_address, options);
}

std::string bench_cluster_target::kind() const {
  if (_flags.embedded) return "embedded";
  return _local ? "local-processes" : "scheduler";
}

nlohmann::json bench_cluster_target::describe(const client& c) const {
  auto status = c.status();
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& w : status.workers) {
    if (!w.alive) continue;
    workers.push_back(
        {{"id", w.id}, {"name", w.name}, {"backend", w.backend}, {"description", w.description}});
  }
  nlohmann::json j = {{"kind", kind()}, {"workers", workers}};
  j["address"] = _flags.embedded ? std::string("in-process") : _address;
  j["transport"] = _flags.embedded        ? "in-process (no transport)"
                   : !_local              ? "UCX"
                   : _flags.shared_memory ? "UCX shared memory (loopback host)"
                                          : "UCX tcp over loopback";
  return j;
}

cluster_counters counters_of(const cluster_status& status) {
  cluster_counters c;
  for (const auto& w : status.workers) {
    if (!w.alive) continue;
    auto& t = c.tiers;
    t.spilled_to_host_bytes += w.spilled_to_host_bytes;
    t.spilled_to_disk_bytes += w.spilled_to_disk_bytes;
    t.unspilled_bytes += w.unspilled_bytes;
    t.spills += w.spills;
    t.unspills += w.unspills;
    t.spill_seconds += w.spill_seconds;
    t.unspill_seconds += w.unspill_seconds;
    for (const auto& tier : w.tiers) {
      if (tier.tier != "device") continue;
      t.device_peak_bytes = std::max(t.device_peak_bytes, static_cast<std::int64_t>(tier.peak));
      t.device_limit_bytes = std::max(t.device_limit_bytes, static_cast<std::int64_t>(tier.limit));
    }
    c.residency.hits += w.hits;
    c.residency.tier_hits += w.tier_hits;
    c.residency.misses += w.misses;
  }
  return c;
}

cluster_counters counters_between(const cluster_counters& before, const cluster_counters& after) {
  cluster_counters d = after;
  auto& t = d.tiers;
  t.spilled_to_host_bytes -= before.tiers.spilled_to_host_bytes;
  t.spilled_to_disk_bytes -= before.tiers.spilled_to_disk_bytes;
  t.unspilled_bytes -= before.tiers.unspilled_bytes;
  t.spills -= before.tiers.spills;
  t.unspills -= before.tiers.unspills;
  t.spill_seconds -= before.tiers.spill_seconds;
  t.unspill_seconds -= before.tiers.unspill_seconds;
  d.residency.hits -= before.residency.hits;
  d.residency.tier_hits -= before.residency.tier_hits;
  d.residency.misses -= before.residency.misses;
  return d;
}

cluster_counters settled_counters(const client& c, std::chrono::milliseconds limit) {
  auto same = [](const cluster_counters& a, const cluster_counters& b) {
    return a.tiers.spilled_to_host_bytes == b.tiers.spilled_to_host_bytes &&
           a.tiers.spilled_to_disk_bytes == b.tiers.spilled_to_disk_bytes &&
           a.tiers.unspilled_bytes == b.tiers.unspilled_bytes &&
           a.residency.hits == b.residency.hits && a.residency.misses == b.residency.misses;
  };
  auto deadline = std::chrono::steady_clock::now() + limit;
  auto last = counters_of(c.status());
  int quiet = 0;
  // Workers report with each heartbeat (250 ms by default): two quiet readings 300 ms apart.
  while (quiet < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto now = counters_of(c.status());
    quiet = same(now, last) ? quiet + 1 : 0;
    last = now;
  }
  return last;
}

report_shuffle shuffle_of(const job_metrics& metrics, const cluster_status& status) {
  std::map<int, std::string> names;
  for (const auto& w : status.workers) names[w.id] = w.name;
  auto name = [&](int id) {
    auto it = names.find(id);
    return it != names.end() && !it->second.empty() ? it->second : "worker " + std::to_string(id);
  };
  report_shuffle s;
  std::map<std::pair<int, int>, report_link> links;
  for (const auto& stage : metrics.stages) {
    s.bytes += stage.bytes_fetched;
    s.seconds += stage.fetch_seconds;
    for (const auto& l : stage.links) {
      auto& link = links[{l.from_worker, l.to_worker}];
      link.from = name(l.from_worker);
      link.to = name(l.to_worker);
      link.bytes += l.bytes;
      link.seconds += l.seconds;
    }
  }
  for (auto& [key, link] : links) s.links.push_back(std::move(link));
  return s;
}

}  // namespace ember::cli
