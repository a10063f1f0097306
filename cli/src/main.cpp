// The `ember` command line. Subcommands live in their own files; this file wires flags to them
// and turns exceptions into messages and exit codes (2: bad input, 1: anything else).
#include <cctype>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <ember/config.hpp>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <ember/transport/address.hpp>

#include "bench_cache.hpp"
#include "bench_import.hpp"
#include "bench_jobs.hpp"
#include "bench_cluster.hpp"
#include "bench_coordination.hpp"
#include "bench_ops.hpp"
#include "bench_report_render.hpp"
#include "cache_commands.hpp"
#include "coordination_commands.hpp"
#include "data_commands.hpp"
#include "run_command.hpp"
#include "service_commands.hpp"
#include "size_parser.hpp"
#include "status_command.hpp"

namespace {

// Checks a --metrics-listen value: HOST:PORT or `off`.
std::string metrics_address_problem(const std::string& value) {
  if (value == "off") return {};
  try {
    (void)ember::transport::parse_host_port(value);
    return {};
  } catch (const std::exception& e) {
    return std::string(e.what()) + " (give HOST:PORT, or off)";
  }
}

// Where an option of `ember scheduler` or `ember worker` got its value: the command line, or its
// EMBER_* variable (CLI11 reads the variable only when the flag is absent, so the flag wins). A
// bad value names its source: in a container the variable is where the user must look.
class value_sources {
 public:
  value_sources(int argc, char** argv) : _args(argv + 1, argv + (argc > 0 ? argc : 1)) {}

  /// True when `opt` took its value from its variable: the variable is set and not empty (CLI11
  /// ignores an empty one) and the flag is not on the command line.
  [[nodiscard]] bool from_environment(const CLI::Option& opt) const {
    const auto& var = opt.get_envname();
    if (var.empty()) return false;
    const char* value = std::getenv(var.c_str());
    if (value == nullptr || *value == '\0') return false;
    for (const auto& arg : _args) {
      if (arg == "--") break;
      for (const auto& name : opt.get_lnames()) {
        auto flag = "--" + name;
        if (arg == flag || arg.rfind(flag + "=", 0) == 0) return false;
      }
    }
    return true;
  }

  /// "--flag", or "EMBER_X (environment, for --flag)" when the value came from the variable.
  [[nodiscard]] std::string name(const CLI::Option& opt) const {
    auto flag = opt.get_name();
    if (!from_environment(opt)) return flag;
    return opt.get_envname() + " (environment, for " + flag + ")";
  }

  /// The option of `cmd` whose value came from the environment and whose flag CLI11's `message`
  /// names (CLI11's conversion and validation errors name the flag only), or nullptr.
  [[nodiscard]] const CLI::Option* environment_option_in(const CLI::App& cmd,
                                                         const std::string& message) const {
    for (const auto* opt : cmd.get_options()) {
      if (!from_environment(*opt)) continue;
      auto flag = opt->get_name();
      for (auto at = message.find(flag); at != std::string::npos; at = message.find(flag, at + 1)) {
        auto end = at + flag.size();
        bool whole =
            end == message.size() || !(std::isalnum(static_cast<unsigned char>(message[end])) ||
                                       message[end] == '-' || message[end] == '_');
        if (whole) return opt;
      }
    }
    return nullptr;
  }

 private:
  std::vector<std::string> _args;
};

/// `parse()`, with an ember::invalid_input it throws prefixed by the option's source.
template <class Parse>
auto parse_value(const value_sources& sources, const CLI::Option* opt, Parse&& parse)
    -> decltype(parse()) {
  try {
    return parse();
  } catch (const ember::invalid_input& e) {
    throw ember::invalid_input(sources.name(*opt) + ": " + e.what());
  }
}

int run_cli(int argc, char** argv) {
  using namespace ember;
  CLI::App app{"ember: GPU-accelerated distributed compute (this build: CPU backend" +
               std::string(EMBER_WITH_CUDA ? " + CUDA backend)" : ")")};
  app.set_version_flag("--version", std::string("ember ") + EMBER_VERSION);
  app.require_subcommand(1);

  // ember run JOB
  cli::run_options run;
  std::string run_rows, run_scale, run_backend = "auto", run_memory;
  auto* run_cmd =
      app.add_subcommand("run", "Run a built-in job (embedded local cluster unless --scheduler)");
  run_cmd->add_option("job", run.job, "wordcount, groupby, join, sort or enrich")->required();
  run_cmd->add_option("--input", run.inputs, "Input text files (wordcount)");
  run_cmd->add_option("--top", run.top, "Keep only the first N result rows (0: all)");
  run_cmd->add_option("--output", run.output, "Write the result as CSV with a header row");
  run_cmd->add_option("--rows", run_rows, "Rows of generated input (e.g. 1000000 or 20M)");
  run_cmd->add_option("--scale", run_scale, "Bytes of generated input (e.g. 64MB, 1GB)");
  run_cmd->add_option("--seed", run.seed, "Seed of the generated input");
  run_cmd->add_option("--backend", run_backend, "auto, cpu or cuda");
  run_cmd->add_option("--workers", run.workers, "Worker threads of the local cluster (0: auto)");
  run_cmd->add_option("--device-memory-limit", run_memory, "Budget of each worker's device tier");
  run_cmd->add_flag("--quiet", run.quiet, "Print no progress");
  std::string run_exchange = "auto";
  run_cmd->add_option("--exchange", run_exchange,
                      "Shuffle path between GPU workers: auto, ucx or nccl");
  run_cmd->add_option("--timeout-ms", run.timeout_ms, "Fail the job after this long (0: never)");
  run_cmd->add_option("--write-dataset", run.write_dataset,
                      "enrich: commit the enriched table as dataset ROOT/NAME");
  run_cmd->add_option("--input-dataset", run.input_dataset,
                      "enrich: read events from dataset ROOT/NAME and items from ROOT/NAME-items "
                      "(generated and committed first when neither exists)");
  run_cmd
      ->add_option("--write-compression", run.write_compression,
                   "enrich: the written dataset's files, none or zstd")
      ->capture_default_str();
  run.cluster.add_to(*run_cmd);

  // ember scheduler
  scheduler_service_options sched;
  std::string sched_token_file;
  auto* sched_cmd = app.add_subcommand("scheduler", "Run the cluster's scheduler");
  // Every scheduler and worker option has an EMBER_* variable (docker/README.md has the table).
  // A no-op parse-complete callback makes CLI11 read a subcommand's variables only when that
  // subcommand runs: a bad EMBER_HEARTBEAT_MS must not break `ember status` in the same shell.
  sched_cmd->parse_complete_callback([] {});
  sched_cmd->add_option("--listen", sched.listen, "HOST:PORT to listen on (default 127.0.0.1:4242)")
      ->envname("EMBER_LISTEN");
  sched_cmd->add_option("--data", sched.data_dir, "Folder for the scheduler's state")
      ->required()
      ->envname("EMBER_DATA");
  auto* sched_token_opt = sched_cmd
                              ->add_option("--token-file", sched_token_file,
                                           "File holding the cluster token (required off loopback)")
                              ->envname("EMBER_TOKEN_FILE");
  sched_cmd
      ->add_flag("--shared-memory", sched.shared_memory,
                 "Let UCX use shared memory to processes on this host")
      ->envname("EMBER_SHARED_MEMORY");
  int heartbeat_ms = 250;
  auto* heartbeat_opt =
      sched_cmd->add_option("--heartbeat-ms", heartbeat_ms, "Workers' heartbeat interval")
          ->envname("EMBER_HEARTBEAT_MS");
  sched_cmd->add_option("--max-attempts", sched.max_attempts, "Runs of a task before its job fails")
      ->envname("EMBER_MAX_ATTEMPTS");
  std::int64_t retention_ms = 300'000;
  auto* retention_opt = sched_cmd
                            ->add_option("--dead-worker-retention-ms", retention_ms,
                                         "How long `ember status` still lists a dead worker")
                            ->envname("EMBER_DEAD_WORKER_RETENTION_MS");
  std::string sched_metrics = "127.0.0.1:9464";
  auto* sched_metrics_opt =
      sched_cmd
          ->add_option("--metrics-listen", sched_metrics,
                       "HOST:PORT of /metrics and the dashboard (default 127.0.0.1:9464, or "
                       "another free port when that one is taken; off: none; beyond loopback "
                       "they need the cluster token)")
          ->check(metrics_address_problem)
          ->envname("EMBER_METRICS_LISTEN");

  // ember worker
  worker_service_options worker;
  std::string worker_backend = "auto", worker_memory, worker_token_file;
  auto* worker_cmd = app.add_subcommand("worker", "Run a worker (one per GPU, or CPU worker)");
  worker_cmd->parse_complete_callback([] {});
  worker_cmd->add_option("--scheduler", worker.scheduler, "The scheduler's HOST:PORT")
      ->required()
      ->envname("EMBER_SCHEDULER");
  auto* backend_opt = worker_cmd->add_option("--backend", worker_backend, "auto, cpu or cuda")
                          ->envname("EMBER_BACKEND");
  worker_cmd->add_option("--gpu", worker.gpu, "CUDA device of this worker")->envname("EMBER_GPU");
  worker_cmd
      ->add_option("--listen", worker.listen,
                   "HOST[:PORT] where peers fetch blocks (default: the address that "
                   "reaches the scheduler)")
      ->envname("EMBER_WORKER_LISTEN");
  auto* device_memory_opt =
      worker_cmd
          ->add_option("--device-memory-limit", worker_memory,
                       "Budget of the worker's device tier (all task slots together; on the "
                       "CPU backend, host memory standing in for it)")
          ->envname("EMBER_DEVICE_MEMORY_LIMIT");
  std::string worker_host_memory;
  auto* host_memory_opt =
      worker_cmd
          ->add_option("--host-memory-limit", worker_host_memory,
                       "Budget of the worker's host tier (partitions spilled from the device "
                       "tier); beyond it they spill to --spill-dir")
          ->envname("EMBER_HOST_MEMORY_LIMIT");
  worker_cmd
      ->add_option("--spill-dir", worker.spill_dir,
                   "Folder for partitions spilled to disk (default: a private folder under "
                   "the system's temporary folder, removed at exit)")
      ->envname("EMBER_SPILL_DIR");
  worker_cmd->add_option("--slots", worker.task_slots, "Tasks run at once (default 2)")
      ->envname("EMBER_SLOTS");
  worker_cmd->add_option("--cpu-threads", worker.cpu_threads, "OpenMP threads per CPU task slot")
      ->envname("EMBER_CPU_THREADS");
  auto* worker_token_opt =
      worker_cmd->add_option("--token-file", worker_token_file, "File holding the cluster token")
          ->envname("EMBER_TOKEN_FILE");
  worker_cmd->add_option("--name", worker.name, "Name in logs and `ember status`")
      ->envname("EMBER_WORKER_NAME");
  std::int64_t reconnect_ms = 30'000;
  auto* reconnect_opt =
      worker_cmd
          ->add_option("--reconnect-timeout-ms", reconnect_ms,
                       "How long to wait for a restarted scheduler (0: exit at once)")
          ->envname("EMBER_RECONNECT_TIMEOUT_MS");
  std::string worker_metrics = "off";
  worker_cmd
      ->add_option("--metrics-listen", worker_metrics,
                   "HOST:PORT of this worker's /metrics (port 0: any free port; default off; "
                   "beyond loopback it needs the cluster token)")
      ->check(metrics_address_problem)
      ->envname("EMBER_WORKER_METRICS_LISTEN");
  worker_cmd
      ->add_flag("--shared-memory", worker.shared_memory,
                 "Let UCX use shared memory to processes on this host")
      ->envname("EMBER_SHARED_MEMORY");

  // ember status
  cli::cluster_flags status_cluster;
  bool status_json = false;
  auto* status_cmd = app.add_subcommand("status", "Workers, their backend, memory and tasks");
  status_cluster.add_to(*status_cmd);
  status_cmd->add_flag("--json", status_json, "Print JSON");

  // ember bench ops
  auto* bench_cmd = app.add_subcommand("bench", "Benchmarks");
  bench_cmd->require_subcommand(1);
  cli::bench_ops_options ops;
  std::string ops_rows, ops_backend = "auto";
  auto* ops_cmd = bench_cmd->add_subcommand("ops", "Operator throughput: group-by, sort, join");
  ops_cmd->add_option("--rows", ops_rows, "Rows of the group-by and sort inputs (default 20M)");
  ops_cmd->add_option("--json", ops.json_path, "Write the JSON report here");
  ops_cmd->add_option("--backend", ops_backend, "auto, cpu or cuda");
  ops_cmd->add_option("--threads", ops.threads, "CPU threads for ember and the peer (default 2)");
  ops_cmd->add_option("--rounds", ops.rounds, "Timed rounds per workload (default 3)");
  ops_cmd->add_option("--only", ops.only, "Run only these workloads");
  ops_cmd->add_option("--compare", ops.compare, "Run a peer on the same data: duckdb");
  ops_cmd->add_option("--python", ops.python, "Python with duckdb installed (for --compare)");

  cli::bench_cluster_options shuffle;
  std::string shuffle_size;
  auto* shuffle_cmd = bench_cmd->add_subcommand(
      "shuffle", "Shuffle bandwidth across worker processes, beside ucx_perftest");
  shuffle_cmd->add_option("--size", shuffle_size, "Bytes shuffled (default 2GB)");
  shuffle.cluster.add_to(*shuffle_cmd);
  shuffle_cmd->add_option("--transport", shuffle.transports, "tcp and/or shm (default both)")
      ->check(CLI::IsMember({"tcp", "shm"}));
  shuffle_cmd->add_option("--rounds", shuffle.rounds, "Timed rounds (default 3)");
  shuffle_cmd->add_option("--json", shuffle.json_path, "Write the JSON report here");
  shuffle_cmd->add_option("--backend", shuffle.backend, "The workers' backend: cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  shuffle_cmd->add_option("--exchange", shuffle.exchange, "Shuffle path: auto, ucx or nccl")
      ->check(CLI::IsMember({"auto", "ucx", "nccl"}));
  cli::bench_cluster_options tasks;
  std::string tasks_count;
  auto* tasks_cmd = bench_cmd->add_subcommand(
      "tasks", "Near-empty tasks per second through the scheduler and worker processes");
  tasks_cmd->add_option("--tasks", tasks_count, "Tasks per job (default 50000)");
  tasks.cluster.add_to(*tasks_cmd);
  tasks_cmd->add_option("--rounds", tasks.rounds, "Timed rounds (default 3)");
  tasks_cmd->add_option("--json", tasks.json_path, "Write the JSON report here");
  cli::bench_locks_options locks;
  std::string locks_ops, locks_messages, locks_token_file;
  auto* locks_cmd = bench_cmd->add_subcommand(
      "locks", "Lock, key/value and queue round trips through the scheduler, beside Redis");
  locks_cmd->add_option("--ops", locks_ops, "Lock and key/value round trips (default 20000)");
  locks_cmd->add_option("--messages", locks_messages, "Messages per queue (default 100000)");
  locks_cmd->add_option("--rounds", locks.rounds, "Timed rounds (default 3)");
  locks_cmd->add_option("--json", locks.json_path, "Write the JSON report here");
  locks_cmd->add_option("--scheduler", locks.scheduler,
                        "HOST:PORT of a running scheduler (default: start one on loopback)");
  locks_cmd->add_option("--token-file", locks_token_file, "File holding the cluster token");
  cli::bench_cache_options cache_bench;
  auto* cache_bench_cmd = cache_bench.add_to(*bench_cmd);
  cli::bench_import_options import_bench;
  auto* import_bench_cmd = import_bench.add_to(*bench_cmd);
  cli::bench_jobs_options wordcount_bench, enrich_bench;
  auto* wordcount_bench_cmd = wordcount_bench.add_to(*bench_cmd, cli::bench_job::wordcount);
  auto* enrich_bench_cmd = enrich_bench.add_to(*bench_cmd, cli::bench_job::enrich);
  cli::bench_report_render_options report_render;
  auto* report_cmd = report_render.add_to(*bench_cmd);

  // ember lock | queue | topic | kv
  cli::coordination_commands coordination(app);

  // ember data
  cli::data_commands data(app);

  // ember cache
  cli::cache_commands cache(app);

  const value_sources sources(argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // A value CLI11 cannot convert or validate is bad input (exit status 2) like the values
    // ember checks itself; one from an EMBER_* variable is named as such.
    bool bad_value = dynamic_cast<const CLI::ConversionError*>(&e) != nullptr ||
                     dynamic_cast<const CLI::ValidationError*>(&e) != nullptr;
    if (!bad_value) return app.exit(e);
    std::string message = e.what();
    for (const auto* cmd : {sched_cmd, worker_cmd}) {
      if (const auto* opt = sources.environment_option_in(*cmd, message); opt && *cmd) {
        message = sources.name(*opt) + ": " + message;
        break;
      }
    }
    std::cerr << "ember: error: " << message << "\n"
              << "Run with --help for more information.\n";
    return 2;
  }

  if (*run_cmd) {
    if (!run_rows.empty()) run.rows = cli::parse_count(run_rows, "--rows");
    if (!run_scale.empty()) run.scale_bytes = cli::parse_size(run_scale, "--scale");
    if (!run_memory.empty())
      run.device_memory_limit = cli::parse_size(run_memory, "--device-memory-limit");
    EMBER_EXPECTS(run.top >= 0, invalid_input, "--top: negative count " + std::to_string(run.top));
    EMBER_EXPECTS(run.workers >= 0, invalid_input, "--workers: negative count");
    run.backend = parse_backend_choice(run_backend);
    run.exchange = cli::parse_exchange(run_exchange);
    EMBER_EXPECTS(run.timeout_ms >= 0, invalid_input, "--timeout-ms: negative");
    return cli::run_job_command(run);
  }
  if (*shuffle_cmd) {
    if (!shuffle_size.empty()) shuffle.bytes = cli::parse_size(shuffle_size, "--size");
    return cli::run_bench_shuffle(shuffle);
  }
  if (*tasks_cmd) {
    if (!tasks_count.empty()) tasks.tasks = cli::parse_count(tasks_count, "--tasks");
    return cli::run_bench_tasks(tasks);
  }
  if (*locks_cmd) {
    if (!locks_ops.empty()) locks.ops = cli::parse_count(locks_ops, "--ops");
    if (!locks_messages.empty()) locks.messages = cli::parse_count(locks_messages, "--messages");
    if (!locks_token_file.empty()) locks.token = cli::read_token_file(locks_token_file);
    return cli::run_bench_locks(locks);
  }
  if (*cache_bench_cmd) return cli::run_bench_cache(cache_bench);
  if (*import_bench_cmd) return cli::run_bench_import(import_bench);
  if (*wordcount_bench_cmd) return cli::run_bench_jobs(wordcount_bench);
  if (*enrich_bench_cmd) return cli::run_bench_jobs(enrich_bench);
  if (*report_cmd) return cli::run_bench_report(report_render);
  if (*sched_cmd) {
    if (!sched_token_file.empty())
      sched.token = parse_value(sources, sched_token_opt,
                                [&] { return cli::read_token_file(sched_token_file); });
    EMBER_EXPECTS(heartbeat_ms > 0, invalid_input,
                  sources.name(*heartbeat_opt) + " must be positive");
    sched.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
    EMBER_EXPECTS(retention_ms >= 0, invalid_input, sources.name(*retention_opt) + ": negative");
    sched.dead_worker_retention = std::chrono::milliseconds(retention_ms);
    sched.metrics_listen = sched_metrics == "off" ? "" : sched_metrics;
    // The default address gives way when taken (two schedulers on one host both start); an
    // address the user chose must be free.
    sched.metrics_port_fallback =
        sched_metrics_opt->count() == 0 && !sources.from_environment(*sched_metrics_opt);
    return cli::run_scheduler_command(sched);
  }
  if (*worker_cmd) {
    worker.backend =
        parse_value(sources, backend_opt, [&] { return parse_backend_choice(worker_backend); });
    if (!worker_memory.empty())
      worker.device_memory_limit = cli::parse_size(worker_memory, sources.name(*device_memory_opt));
    if (!worker_host_memory.empty())
      worker.host_memory_limit =
          cli::parse_size(worker_host_memory, sources.name(*host_memory_opt));
    if (!worker_token_file.empty())
      worker.token = parse_value(sources, worker_token_opt,
                                 [&] { return cli::read_token_file(worker_token_file); });
    EMBER_EXPECTS(reconnect_ms >= 0, invalid_input, sources.name(*reconnect_opt) + ": negative");
    worker.reconnect_timeout = std::chrono::milliseconds(reconnect_ms);
    worker.metrics_listen = worker_metrics == "off" ? "" : worker_metrics;
    return cli::run_worker_command(worker);
  }
  if (*status_cmd) return cli::run_status_command(status_cluster, status_json);
  if (*ops_cmd) {
    if (!ops_rows.empty()) ops.rows = cli::parse_count(ops_rows, "--rows");
    ops.backend = parse_backend_choice(ops_backend);
    return cli::run_bench_ops(ops);
  }
  if (auto code = coordination.run()) return *code;
  if (auto code = data.run()) return *code;
  if (auto code = cache.run()) return *code;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_cli(argc, argv);
  } catch (const ember::invalid_input& e) {
    std::cerr << "ember: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ember: error: " << e.what() << "\n";
    return 1;
  }
}
