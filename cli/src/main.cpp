// The `ember` command line. Subcommands live in their own files; this file wires flags to them
// and turns exceptions into messages and exit codes (2: bad input, 1: anything else).
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <ember/config.hpp>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>

#include "bench_ops.hpp"
#include "run_command.hpp"
#include "size_parser.hpp"

namespace {

int run_cli(int argc, char** argv) {
  using namespace ember;
  CLI::App app{"ember: GPU-accelerated distributed compute (this build: CPU backend" +
               std::string(EMBER_WITH_CUDA ? " + CUDA backend)" : ")")};
  app.set_version_flag("--version", std::string("ember ") + EMBER_VERSION);
  app.require_subcommand(1);

  // ember run JOB
  cli::run_options run;
  std::string run_rows, run_scale, run_backend = "auto", run_memory;
  auto* run_cmd = app.add_subcommand("run", "Run a built-in job on the embedded local cluster");
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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (*run_cmd) {
    if (!run_rows.empty()) run.rows = cli::parse_count(run_rows, "--rows");
    if (!run_scale.empty()) run.scale_bytes = cli::parse_size(run_scale, "--scale");
    if (!run_memory.empty())
      run.device_memory_limit = cli::parse_size(run_memory, "--device-memory-limit");
    EMBER_EXPECTS(run.top >= 0, invalid_input, "--top: negative count " + std::to_string(run.top));
    EMBER_EXPECTS(run.workers >= 0, invalid_input, "--workers: negative count");
    run.backend = parse_backend_choice(run_backend);
    return cli::run_job_command(run);
  }
  if (*ops_cmd) {
    if (!ops_rows.empty()) ops.rows = cli::parse_count(ops_rows, "--rows");
    ops.backend = parse_backend_choice(ops_backend);
    return cli::run_bench_ops(ops);
  }
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
