#include "bench_env.hpp"
#include "bench_cluster.hpp"

#include <unistd.h>

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

#include "bench_stats.hpp"
#include "cluster_flags.hpp"
#include "machine_info.hpp"
#include "table_printer.hpp"

namespace ember::cli {
namespace {

using clock_type = std::chrono::steady_clock;

int& clusters_started() {
  static int n = 0;
  return n;
}

// A scheduler and workers of this executable, stopped (SIGKILL) when it goes away. Its logs are
// removed with it unless EMBER_BENCH_KEEP_LOGS is set.
class bench_cluster {
 public:
  bench_cluster(int workers, bool shared_memory, const std::string& backend = "cpu")
      : _dir(std::filesystem::temp_directory_path() /
             ("ember-bench-cluster-" + std::to_string(::getpid()) + "-" +
              std::to_string(clusters_started()++))) {
    std::filesystem::create_directories(_dir);
    auto exe = current_executable().string();
    std::vector<std::string> flags;
    if (shared_memory) flags.push_back("--shared-memory");
    std::vector<std::string> sched = {exe,           "scheduler", "--listen",
                                      "127.0.0.1:0", "--data",    (_dir / "data").string()};
    sched.insert(sched.end(), flags.begin(), flags.end());
    _scheduler = std::make_unique<child_process>(sched, _dir / "scheduler", loopback_env);
    address = _scheduler->wait_for_output("listening on (\\S+)", std::chrono::seconds(30));
    for (int i = 0; i < workers; ++i) {
      std::vector<std::string> w = {exe, "worker",        "--scheduler", address,     "--slots",
                                    "1", "--cpu-threads", "1",           "--backend", backend};
      w.insert(w.end(), flags.begin(), flags.end());
      _workers.push_back(
          std::make_unique<child_process>(w, _dir / ("worker" + std::to_string(i)), loopback_env));
    }
    for (auto& w : _workers) w->wait_for_output("ember (worker \\d+)", std::chrono::seconds(30));
  }
  ~bench_cluster() {
    _workers.clear();
    _scheduler.reset();
    if (std::getenv("EMBER_BENCH_KEEP_LOGS") != nullptr) {
      std::cerr << "cluster logs kept in " << _dir.string() << "\n";
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(_dir, ec);
  }
  std::string address;

 private:
  std::filesystem::path _dir;
  std::unique_ptr<child_process> _scheduler;
  std::vector<std::unique_ptr<child_process>> _workers;
};

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

std::string gbps(double bytes_per_second) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GB/s", bytes_per_second / 1e9);
  return buf;
}

void write_report(const nlohmann::json& report, const std::string& path) {
  if (path.empty()) return;
  std::ofstream(path) << report.dump(2) << "\n";
  std::cout << "\nreport written to " << path << "\n";
}

}  // namespace

int run_bench_shuffle(const bench_cluster_options& options) {
  EMBER_EXPECTS(options.workers >= 1, invalid_input, "bench shuffle needs a worker");
  EMBER_EXPECTS(options.backend == "cpu" || options.backend == "cuda", invalid_input,
                "--backend: '" + options.backend + "' is not cpu or cuda");
  EMBER_EXPECTS(options.bytes > 0 && options.rounds >= 1, invalid_input, "bad size or rounds");
  set_loopback_env();
  constexpr size_type row_bytes = 24;  // keyed rows: key, v (int64), x (float64)
  auto rows = options.bytes / row_bytes;
  nlohmann::json report;
  report["workload"] = "shuffle";
  report["parameters"] = {{"bytes", rows * row_bytes},  {"rows", rows},
                          {"workers", options.workers}, {"rounds", options.rounds},
                          {"backend", options.backend}, {"exchange", options.exchange}};
  report["machine"] = host_machine_info();
  report["results"] = nlohmann::json::array();
  std::vector<std::vector<std::string>> summary;
  for (const auto& transport : options.transports) {
    EMBER_EXPECTS(transport == "tcp" || transport == "shm", invalid_input,
                  "--transport: '" + transport + "' is not tcp or shm");
    bool shm = transport == "shm";
    std::cout << "shuffle over " << transport << ": starting " << options.workers << " workers"
              << std::endl;
    std::vector<double> exchange_s, fetch_s, map_s, job_s;
    size_type shuffled = 0, fetched = 0;
    int retried = 0;
    int partitions = options.workers * 2;
    {
      bench_cluster cluster(options.workers, shm, options.backend);
      client_options co;
      co.shared_memory = shm;
      co.exchange = parse_exchange(options.exchange);
      co.partitions_per_worker = 2;
      auto c = client::connect(cluster.address, co);
      auto job = c.generate("keyed", rows, 42, rows, partitions)
                     .repartition({"key"})
                     .group_by({}, {{aggregation_kind::count_all, "", "rows"},
                                    {aggregation_kind::sum, "v", "v_sum"}});
      for (int round = 0; round <= options.rounds; ++round) {
        auto r = job.run();
        auto counted = r.result.view().column(0).data<std::int64_t>()[0];
        EMBER_EXPECTS(
            counted == rows, error,
            "the shuffle lost rows: " + std::to_string(counted) + " of " + std::to_string(rows));
        retried += r.metrics.retried_tasks;
        if (round == 0) continue;  // warm-up
        map_s.push_back(r.metrics.stages.at(0).seconds);
        exchange_s.push_back(r.metrics.stages.at(1).seconds);
        // UCX: the reducers fetched; NCCL: the map stage's output was exchanged in one go.
        const auto& moved = r.metrics.stages.at(0).bytes_fetched > 0 ? r.metrics.stages.at(0)
                                                                     : r.metrics.stages.at(1);
        fetch_s.push_back(moved.fetch_seconds);
        job_s.push_back(r.metrics.seconds);
        shuffled = r.metrics.stages.at(0).bytes_out;
        fetched = moved.bytes_fetched;
      }
    }
    // ucx_perftest runs once the cluster is gone, so that both have the machine to themselves.
    // Blocks a reducer finds on its own worker are taken by reference: only the rest crosses
    // UCX (with hash partitioning, (workers - 1) / workers of the bytes). A worker's bandwidth
    // is what it fetched over the time it spent fetching (first request to last arrival).
    auto ex = summarize(exchange_s);
    auto fx = summarize(fetch_s);
    double remote = static_cast<double>(fetched);
    double per_worker = remote / options.workers / fx.median;
    auto block = static_cast<std::size_t>(shuffled / (partitions * partitions));
    auto message = std::clamp<std::size_t>(block, 64 << 10, 8 << 20);
    std::string note;
    // The killed workers' memory goes back to the system first; then the median of three runs,
    // since a single ucx_perftest on a shared machine swings by a factor of two.
    std::this_thread::sleep_for(std::chrono::seconds(1));
    std::vector<double> perftests;
    for (int i = 0; i < 3; ++i) {
      double bw = perftest_bandwidth(shm ? "sm,self" : "tcp", message, note);
      if (bw > 0) perftests.push_back(bw);
    }
    double perftest = perftests.empty() ? -1 : summarize(perftests).median;
    double ceiling = perftest > 0 ? perftest * 1024 * 1024 : 0;
    nlohmann::json result = {
        {"transport", transport},
        {"bytes_shuffled", shuffled},
        {"bytes_crossing_ucx", remote},
        {"fetch_seconds",
         {{"median", fx.median}, {"min", fx.min}, {"max", fx.max}, {"all", fetch_s}}},
        {"exchange_stage_seconds",
         {{"median", ex.median}, {"min", ex.min}, {"max", ex.max}, {"all", exchange_s}}},
        {"map_seconds", summarize(map_s).median},
        {"job_seconds", summarize(job_s).median},
        {"retried_tasks", retried},
        {"bytes_per_second_per_worker", per_worker},
        {"bytes_per_second_all_workers", per_worker * options.workers},
        {"ucx_perftest",
         {{"test", "tag_bw"},
          {"tls", shm ? "sm,self" : "tcp"},
          {"message_bytes", message},
          {"runs_mib_per_second", perftests},
          {"bytes_per_second", ceiling}}},
        {"ratio_to_perftest", ceiling > 0 ? per_worker / ceiling : 0.0},
        {"all_workers_ratio_to_perftest",
         ceiling > 0 ? per_worker * options.workers / ceiling : 0.0}};
    if (!note.empty()) result["ucx_perftest"]["note"] = note;
    report["results"].push_back(result);
    char ratio[32], all_ratio[32];
    std::snprintf(ratio, sizeof ratio, "%.0f%%", ceiling > 0 ? 100 * per_worker / ceiling : 0.0);
    std::snprintf(all_ratio, sizeof all_ratio, "%.0f%%",
                  ceiling > 0 ? 100 * per_worker * options.workers / ceiling : 0.0);
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.3f", fx.median);
    char stage[32];
    std::snprintf(stage, sizeof stage, "%.3f", ex.median);
    summary.push_back({transport, std::to_string(shuffled >> 20) + " MiB",
                       std::to_string(fetched >> 20) + " MiB", secs, stage, gbps(per_worker),
                       ceiling > 0 ? gbps(ceiling) : "n/a", ratio,
                       gbps(per_worker * options.workers), all_ratio});
  }
  std::cout << "\n";
  print_cells({"transport", "shuffled", "over UCX", "fetch s", "stage s", "per worker",
               "ucx_perftest", "ratio", "all workers", "ratio"},
              summary, std::cout);
  write_report(report, options.json_path);
  return 0;
}

int run_bench_tasks(const bench_cluster_options& options) {
  EMBER_EXPECTS(options.tasks >= 1 && options.rounds >= 1, invalid_input,
                "bad task count or rounds");
  set_loopback_env();
  nlohmann::json report;
  report["workload"] = "tasks";
  report["parameters"] = {
      {"tasks", options.tasks}, {"workers", options.workers}, {"rounds", options.rounds}};
  report["machine"] = host_machine_info();
  auto tasks = static_cast<int>(options.tasks);
  auto measure = [&](client& c) {
    // One generated row per task: each task is a message there, a near-empty operator, and a
    // one-row result back.
    auto job = c.generate("range", options.tasks, 42, 0, tasks);
    std::vector<double> rates;
    for (int round = 0; round <= options.rounds; ++round) {
      auto t0 = clock_type::now();
      auto r = job.run();
      auto s = seconds_since(t0);
      EMBER_EXPECTS(r.result.num_rows() == options.tasks, error, "tasks lost rows");
      if (round > 0) rates.push_back(static_cast<double>(options.tasks) / s);
    }
    return summarize(rates);
  };
  std::cout << "tasks: " << options.tasks << " per job on " << options.workers
            << " worker processes" << std::endl;
  stats distributed;
  {
    bench_cluster cluster(options.workers, false);
    auto c = client::connect(cluster.address);
    distributed = measure(c);
  }
  client_options local;
  local.workers = options.workers;
  local.backend = backend_choice::cpu;
  local.cpu_threads = 1;
  auto in_process = client::local(local);
  auto embedded = measure(in_process);
  report["results"] = {
      {{"cluster", "scheduler + worker processes over UCX (tcp, loopback)"},
       {"tasks_per_second",
        {{"median", distributed.median}, {"min", distributed.min}, {"max", distributed.max}}}},
      {{"cluster", "embedded (in-process executor, the ceiling)"},
       {"tasks_per_second",
        {{"median", embedded.median}, {"min", embedded.min}, {"max", embedded.max}}}}};
  report["ratio_to_embedded"] = distributed.median / embedded.median;
  char a[32], b[32], r[32];
  std::snprintf(a, sizeof a, "%.0f", distributed.median);
  std::snprintf(b, sizeof b, "%.0f", embedded.median);
  std::snprintf(r, sizeof r, "%.0f%%", 100 * distributed.median / embedded.median);
  std::cout << "\n";
  print_cells({"cluster", "tasks/s (median)", "vs embedded"},
              {{"scheduler + " + std::to_string(options.workers) + " worker processes", a, r},
               {"embedded in-process", b, "100%"}},
              std::cout);
  write_report(report, options.json_path);
  return 0;
}

}  // namespace ember::cli
