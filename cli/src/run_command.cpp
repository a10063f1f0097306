#include "run_command.hpp"

#include <cstdio>
#include <iostream>

#include <ember/host/io.hpp>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/jobs.hpp>

#include "progress.hpp"
#include "table_printer.hpp"

namespace ember::cli {
namespace {
std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}
}  // namespace

int run_job_command(const run_options& options) {
  progress bar;
  client_options co;
  co.backend = options.backend;
  co.workers = options.workers;
  co.device_memory_limit = options.device_memory_limit;
  if (!options.quiet) {
    co.progress = [&bar](const std::string& stage, size_type done, size_type total) {
      bar.update(stage, done, total);
    };
  }
  co.exchange = options.exchange;
  co.job_timeout = std::chrono::milliseconds(options.timeout_ms);
  auto c = options.cluster.make_client(co);

  job_options jo;
  jo.inputs = options.inputs;
  jo.rows = options.rows;
  jo.scale_bytes = options.scale_bytes;
  jo.seed = options.seed;
  jo.top = options.top;
  auto report = run_job(c, options.job, jo);
  bar.finish();

 std::cout << "ember run " << options.job << " on " << c.num_workers() << " "
            << to_string(c.backend()) << " worker(s)"
            << (c.remote() ? " of " + options.cluster.scheduler : std::string()) << ": " << report.input_rows << " input rows ("
            << human_bytes(static_cast<double>(report.input_bytes)) << ") in ";
  char secs[32];
  std::snprintf(secs, sizeof(secs), "%.3f s", report.seconds);
  std::cout << secs << "\n\n";
  print_table(report.result.view(), std::cout, options.top > 0 ? options.top : 20);
  if (!report.stages.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : report.stages) {
      std::snprintf(secs, sizeof(secs), "%.3f", s.seconds);
      rows.push_back({s.name, secs, std::to_string(s.rows_out),
                      human_bytes(static_cast<double>(s.bytes_out))});
    }
    std::cout << "\n";
    print_cells({"stage", "seconds", "rows out", "bytes out"}, rows, std::cout);
  }
  if (!options.output.empty()) {
    write_csv_file(report.result.view(), options.output);
    std::cout << "\nresult written to " << options.output << "\n";
  }
  return 0;
}

}  // namespace ember::cli
