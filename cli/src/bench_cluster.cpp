#include "bench_cluster.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include <ember/host/error.hpp>
#include <ember/host/process.hpp>
#include <ember/scheduler/client.hpp>

#include "bench_cluster_target.hpp"
#include "bench_env.hpp"
#include "bench_report.hpp"
#include "bench_stats.hpp"
#include "cluster_flags.hpp"
#include "progress.hpp"

namespace ember::cli {
namespace {

using clock_type = std::chrono::steady_clock;

// ucx_perftest tag bandwidth between two processes on loopback over `tls`, `size`-byte
// messages: MB/s as it reports them (MiB per second), or -1 when it is not installed.
double perftest_bandwidth(const std::string& tls, std::size_t size, std::string& note) {
  auto dir =
      std::filesystem::temp_directory_path() / ("ember-perftest-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  // Removed after the processes below are gone (declared first, destroyed last).
  struct remove_dir {
    std::filesystem::path path;
    ~remove_dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } cleanup{dir};
  auto port = std::to_string(20000 + ::getpid() % 20000);
  std::vector<std::string> env = {"UCX_TLS=" + tls, "UCX_NET_DEVICES=lo"};
  auto iterations = std::to_string(std::max<std::size_t>(50, (std::size_t{2} << 30) / size));
  try {
    child_process server({"ucx_perftest", "-p", port}, dir / "server", env);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    child_process client({"ucx_perftest", "127.0.0.1", "-p", port, "-t", "tag_bw", "-s",
                          std::to_string(size), "-n", iterations, "-w", "20"},
                         dir / "client", env);
    auto code = client.wait_exit(std::chrono::seconds(300));
    auto out = client.out();
    std::smatch m;
    // Final: iterations, overhead 50%, average, overall, bandwidth average, overall, ...
    std::regex final_line(R"(Final:\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+))");
    if (!code || *code != 0 || !std::regex_search(out, m, final_line)) {
      note = "ucx_perftest failed: " + client.err().substr(0, 300);
      return -1;
    }
    return std::stod(m[1].str());
  } catch (const std::exception& e) {
    note = std::string("ucx_perftest unavailable: ") + e.what();
    return -1;
  }
}

// The round whose `seconds` is the median (the first of two middles).
std::size_t median_index(const std::vector<double>& seconds) {
  std::vector<std::size_t> order(seconds.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return seconds[a] < seconds[b]; });
  return order[order.size() / 2];
}

// What one transport's rounds measured.
struct shuffle_rounds {
  std::vector<double> map_s, exchange_s, fetch_s, job_s;
  std::vector<job_metrics> metrics;
  size_type shuffled = 0, fetched = 0;
  int retried = 0;
  cluster_counters moved;
  report_shuffle links;
  nlohmann::json cluster;
};

shuffle_rounds run_shuffle_rounds(const bench_cluster_options& options,
                                  const bench_cluster_flags& flags, size_type rows, int partitions,
                                  progress& bar, const std::string& step) {
  shuffle_rounds out;
  bench_cluster_target target(flags);
  client_options co;
  co.exchange = parse_exchange(options.exchange);
  co.partitions_per_worker = 2;
  co.job_timeout = std::chrono::minutes(30);
  auto c = target.connect(co);
  out.cluster = target.describe(c);
  auto job = c.generate("keyed", rows, 42, rows, partitions)
                 .repartition({"key"})
                 .group_by({}, {{aggregation_kind::count_all, "", "rows"},
                                {aggregation_kind::sum, "v", "v_sum"}});
  cluster_counters before;
  for (int round = 0; round <= options.rounds; ++round) {
    bar.update(step, round, options.rounds + 1);
    if (round == 1) before = settled_counters(c);
    auto r = job.run();
    auto counted = r.result.view().column(0).data<std::int64_t>()[0];
    EMBER_EXPECTS(
        counted == rows, error,
        "the shuffle lost rows: " + std::to_string(counted) + " of " + std::to_string(rows));
    out.retried += r.metrics.retried_tasks;
    if (round == 0) continue;  // warm-up
    out.map_s.push_back(r.metrics.stages.at(0).seconds);
    out.exchange_s.push_back(r.metrics.stages.at(1).seconds);
    // UCX: the reducers fetched; NCCL: the map stage's output was exchanged in one go.
    const auto& moved =
        r.metrics.stages.at(0).bytes_fetched > 0 ? r.metrics.stages.at(0) : r.metrics.stages.at(1);
    out.fetch_s.push_back(moved.fetch_seconds);
    out.job_s.push_back(r.metrics.seconds);
    out.shuffled = r.metrics.stages.at(0).bytes_out;
    out.fetched = moved.bytes_fetched;
    out.metrics.push_back(std::move(r.metrics));
  }
  bar.update(step, options.rounds + 1, options.rounds + 1);
  bar.finish();
  out.moved = counters_between(before, settled_counters(c));
  out.links = shuffle_of(out.metrics.at(median_index(out.fetch_s)), c.status());
  return out;
}

}  // namespace

int run_bench_shuffle(const bench_cluster_options& options) {
  const auto& flags = options.cluster;
  EMBER_EXPECTS(!flags.embedded, invalid_input,
                "--embedded: the shuffle workload measures transports between worker processes "
                "(drop --embedded, or use --scheduler HOST:PORT)");
  EMBER_EXPECTS(options.backend == "cpu" || options.backend == "cuda", invalid_input,
                "--backend: '" + options.backend + "' is not cpu or cuda");
  EMBER_EXPECTS(options.bytes > 0, invalid_input, "--size must be positive");
  EMBER_EXPECTS(options.rounds >= 1, invalid_input, "--rounds must be at least 1");
  for (const auto& transport : options.transports)
    EMBER_EXPECTS(transport == "tcp" || transport == "shm", invalid_input,
                  "--transport: '" + transport + "' is not one of tcp, shm");
  (void)parse_exchange(options.exchange);
  set_loopback_env();
  constexpr size_type row_bytes = 24;  // keyed rows: key, v (int64), x (float64)
  auto rows = options.bytes / row_bytes;
  int partitions = flags.workers * 2;
  bool remote = !flags.scheduler.empty();
  // A running cluster's transport is its own: one series of rounds there.
  std::vector<std::string> transports =
      remote ? std::vector<std::string>{"cluster"} : options.transports;
  auto parameters = flags.parameters();
  parameters.update({{"bytes", rows * row_bytes},
                     {"rows", rows},
                     {"rounds", options.rounds},
                     {"backend", options.backend},
                     {"exchange", options.exchange},
                     {"transports", transports}});
  bench_report report("shuffle", parameters);
  report.not_measured("latency", "the shuffle workload measures bandwidth, not latency");
  report.details()["results"] = nlohmann::json::array();
  progress bar;
  bool first = true;
  for (const auto& transport : transports) {
    bool shm = transport == "shm";
    auto cluster_flags = flags;
    cluster_flags.backend = options.backend;
    cluster_flags.shared_memory = shm;
    auto step = "shuffle " + transport + " round";
    auto r = run_shuffle_rounds(options, cluster_flags, rows, partitions, bar, step);
    // Blocks a reducer finds on its own worker are taken by reference: only the rest crosses
    // UCX (with hash partitioning, (workers - 1) / workers of the bytes). A worker's bandwidth
    // is what it fetched over the time it spent fetching (first request to last arrival).
    auto fx = summarize(r.fetch_s);
    double per_worker = static_cast<double>(r.fetched) / flags.workers / fx.median;
    std::string label = "shuffle " + transport;
    report.add_stage({label + ": map", r.map_s, rows, r.shuffled,
                      "generate and hash-partition the rows into blocks"});
    report.add_stage({label + ": exchange stage", r.exchange_s, rows, r.shuffled,
                      "the reduce stage: fetch every block, then count and sum"});
    report.add_stage({label + ": fetch", r.fetch_s,
                      rows * r.fetched / std::max<size_type>(1, r.shuffled), r.fetched,
                      "blocks fetched from other workers: the longest any worker spent fetching "
                      "(bytes: all workers)"});
    report.add_stage({label + ": job", r.job_s, rows, rows * row_bytes, "the whole job"});
    nlohmann::json result = {{"transport", transport},
                             {"bytes_shuffled", r.shuffled},
                             {"bytes_crossing_ucx", r.fetched},
                             {"fetch_seconds", spread(r.fetch_s)},
                             {"exchange_stage_seconds", spread(r.exchange_s)},
                             {"retried_tasks", r.retried},
                             {"bytes_per_second_per_worker", per_worker},
                             {"bytes_per_second_all_workers", per_worker * flags.workers}};
    if (first) {
      report.set_cluster(r.cluster);
      report.set_tiers(r.moved.tiers);
      report.set_residency(r.moved.residency);
      report.set_shuffle(std::move(r.links));
      first = false;
    }
    if (remote) {
      report.not_measured("ucx_perftest",
                          "a running cluster's links are not this host's loopback: no ceiling");
    } else {
      // ucx_perftest runs once the cluster is gone, so that both have the machine to
      // themselves; the killed workers' memory goes back to the system first. The median of
      // three runs: a single ucx_perftest on a shared machine swings by a factor of two.
      auto block = static_cast<std::size_t>(r.shuffled / (partitions * partitions));
      auto message = std::clamp<std::size_t>(block, 64 << 10, 8 << 20);
      std::string note;
      std::this_thread::sleep_for(std::chrono::seconds(1));
      std::vector<double> perftests;
      for (int i = 0; i < 3; ++i) {
        bar.update("ucx_perftest " + transport, i, 3);
        double bw = perftest_bandwidth(shm ? "sm,self" : "tcp", message, note);
        if (bw > 0) perftests.push_back(bw * 1024 * 1024);
      }
      bar.update("ucx_perftest " + transport, 3, 3);
      bar.finish();
      result["ucx_perftest"] = {{"test", "tag_bw"},
                                {"tls", shm ? "sm,self" : "tcp"},
                                {"message_bytes", message},
                                {"runs_bytes_per_second", perftests}};
      if (!note.empty()) result["ucx_perftest"]["note"] = note;
      if (perftests.empty()) {
        report.not_measured("ucx_perftest " + transport, note);
      } else {
        auto ceiling = summarize(perftests).median;
        report.add_comparison({label + ": fetch",
                               "ucx_perftest tag_bw " + transport + " (one pair of processes)",
                               "ceiling", "bytes_per_second_per_worker", per_worker, ceiling});
      }
    }
    report.details()["results"].push_back(std::move(result));
  }
  if (report.comparisons().empty()) {
    // No perftest (not installed, or a running cluster): the same shuffle on the embedded
    // in-process cluster, where blocks never cross a transport, is the ceiling.
    client_options local;
    local.workers = flags.workers;
    local.backend = backend_choice::cpu;
    local.cpu_threads = 1;
    local.partitions_per_worker = 2;
    auto in_process = client::local(local);
    std::vector<double> seconds;
    for (int round = 0; round <= options.rounds; ++round) {
      bar.update("embedded shuffle round", round, options.rounds + 1);
      auto r = in_process.generate("keyed", rows, 42, rows, partitions)
                   .repartition({"key"})
                   .group_by({}, {{aggregation_kind::count_all, "", "rows"}})
                   .run();
      if (round > 0) seconds.push_back(r.metrics.seconds);
    }
    bar.finish();
    const auto& job = report.stages().at(3);
    report.add_comparison({job.name, "the embedded in-process cluster (no transport)", "ceiling",
                           "seconds", summarize(job.seconds).median, summarize(seconds).median});
  }
  report.print_summary(std::cout);
  report.write(options.json_path, std::cout);
  return 0;
}

int run_bench_tasks(const bench_cluster_options& options) {
  const auto& flags = options.cluster;
  EMBER_EXPECTS(options.tasks >= 1, invalid_input, "--tasks must be positive");
  EMBER_EXPECTS(options.rounds >= 1, invalid_input, "--rounds must be at least 1");
  EMBER_EXPECTS(!flags.embedded, invalid_input,
                "--embedded: the tasks workload compares worker processes with the embedded "
                "cluster itself (drop --embedded)");
  auto parameters = flags.parameters();
  parameters.update({{"tasks", options.tasks}, {"rounds", options.rounds}});
  bench_report report("tasks", parameters);
  report.not_measured("tiers", "near-empty tasks move no partitions between tiers");
  report.not_measured("shuffle", "the tasks workload has no shuffle");
  report.not_measured("residency", "near-empty tasks read no stored partitions");
  report.not_measured("latency", "measured as throughput (tasks per second)");
  auto tasks = static_cast<int>(options.tasks);
  progress bar;
  auto measure = [&](client& c, const std::string& step) {
    // One generated row per task: each task is a message there, a near-empty operator, and a
    // one-row result back.
    auto job = c.generate("range", options.tasks, 42, 0, tasks);
    std::vector<double> seconds;
    for (int round = 0; round <= options.rounds; ++round) {
      bar.update(step, round, options.rounds + 1);
      auto t0 = clock_type::now();
      auto r = job.run();
      auto s = seconds_since(t0);
      EMBER_EXPECTS(r.result.num_rows() == options.tasks, error, "tasks lost rows");
      if (round > 0) seconds.push_back(s);
    }
    bar.update(step, options.rounds + 1, options.rounds + 1);
    bar.finish();
    return seconds;
  };
  std::vector<double> distributed;
  {
    bench_cluster_target target(flags);
    auto c = target.connect();
    report.set_cluster(target.describe(c));
    distributed = measure(c, "tasks on the cluster, round");
  }
  client_options local;
  local.workers = flags.workers;
  local.backend = backend_choice::cpu;
  local.cpu_threads = 1;
  auto in_process = client::local(local);
  auto embedded = measure(in_process, "tasks embedded, round");
  report.add_stage({"tasks: scheduler and workers", distributed, options.tasks, options.tasks * 8,
                    "one-row tasks through the scheduler and the workers"});
  report.add_stage({"tasks: embedded", embedded, options.tasks, options.tasks * 8,
                    "the same job on the embedded in-process cluster"});
  report.add_comparison({"tasks: scheduler and workers",
                         "the embedded in-process executor (no scheduler, no transport)", "ceiling",
                         "seconds", summarize(distributed).median, summarize(embedded).median});
  report.print_summary(std::cout);
  report.write(options.json_path, std::cout);
  return 0;
}

}  // namespace ember::cli
