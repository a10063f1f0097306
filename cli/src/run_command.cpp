#include "run_command.hpp"

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <tuple>
#include <utility>

#include <ember/host/dataset_store.hpp>
#include <ember/host/error.hpp>
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

// ROOT/NAME: the storage root and the dataset's name (its last component).
std::pair<std::filesystem::path, std::string> root_and_name(const std::string& flag,
                                                            const std::string& value) {
  std::filesystem::path p(value);
  while (!p.empty() && !p.has_filename() && p.has_parent_path() && p != p.parent_path())
    p = p.parent_path();  // a trailing '/'
  auto name = p.filename().string();
  auto root = p.parent_path();
  if (name.empty() || root.empty())
    throw invalid_input(flag + " '" + value +
                        "': expected ROOT/NAME (a storage root and a dataset name)");
  dataset_store::validate_name(name);
  return {root, name};
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
  if (!options.write_dataset.empty() || !options.input_dataset.empty()) {
    if (options.job != "enrich")
      throw invalid_input("--write-dataset and --input-dataset are options of enrich, not of " +
                          options.job);
  }
  if (!options.write_dataset.empty())
    std::tie(jo.output_root, jo.output_dataset) =
        root_and_name("--write-dataset", options.write_dataset);
  if (!options.input_dataset.empty())
    std::tie(jo.input_root, jo.input_dataset) =
        root_and_name("--input-dataset", options.input_dataset);
  if (options.write_compression == "zstd") {
    jo.output_compression = compression_codec::zstd;
  } else if (options.write_compression != "none") {
    throw invalid_input("--write-compression '" + options.write_compression +
                        "': expected none or zstd");
  }
  auto report = run_job(c, options.job, jo);
  bar.finish();

  std::cout << "ember run " << options.job << " on " << c.num_workers() << " "
            << to_string(c.backend()) << " worker(s)"
            << (c.remote() ? " of " + options.cluster.scheduler : std::string()) << ": "
            << report.input_rows << " input rows ("
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
  for (const auto& w : report.written) {
    std::cout << "\ndataset " << w.name << " version " << w.version << " committed under "
              << w.root.string() << ": " << w.rows << " rows in " << w.partitions
              << " partition files (" << human_bytes(static_cast<double>(w.bytes)) << ")\n";
  }
  if (!options.output.empty()) {
    write_csv_file(report.result.view(), options.output);
    std::cout << "\nresult written to " << options.output << "\n";
  }
  return 0;
}

}  // namespace ember::cli
