#include "cache_commands.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ember/host/csv.hpp>
#include <ember/host/error.hpp>
#include <ember/host/io.hpp>
#include <ember/host/scalar.hpp>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/table_bytes.hpp>

#include "cluster_flags.hpp"
#include "status_command.hpp"
#include "table_printer.hpp"

namespace ember::cli {

struct cache_commands::state {
  // Flags every command has. Only one command runs, so they all bind the same fields.
  cluster_flags cluster;
  bool json = false;

  CLI::App* ls = nullptr;
  CLI::App* put = nullptr;
  CLI::App* get = nullptr;
  CLI::App* rm = nullptr;

  bool all = false;
  std::string key;
  std::string file;
  std::string output;
  std::int64_t max_rows = 20;
};

namespace {

// Cached values are bytes; JSON shows strings as text, invalid UTF-8 replaced.
void print_json(const nlohmann::ordered_json& value) {
  std::cout << value.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  std::cout.flush();
}

// ISO 8601 in UTC with milliseconds; "" for the epoch (a partition never used).
std::string iso_utc(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  if (ms <= 0) return "";
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

std::string worker_text(const cache_entry& e) {
  if (e.worker < 0) return "-";
  auto id = std::to_string(e.worker);
  return e.worker_name.empty() ? id : id + " (" + e.worker_name + ")";
}

nlohmann::ordered_json entry_json(const cache_entry& e) {
  auto used = iso_utc(e.last_use);
  return {
      {"key", e.key},
      {"worker", e.worker},
      {"worker_name", e.worker_name},
      {"tier", e.lost ? nullptr : nlohmann::ordered_json(std::string(to_string(e.tier)))},
      {"bytes", e.bytes},
      {"rows", e.rows},
      {"pins", e.pins},
      {"pinned", e.pins > 0},
      {"last_use", used.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(used)},
      {"lost", e.lost},
      {"lost_reason", e.lost_reason}};
}

[[noreturn]] void no_entry(const std::string& key) {
  throw invalid_input("no cache entry '" + key + "'");
}

int cache_ls(const cache_commands::state& s) {
  auto c = s.cluster.make_client({});
  auto entries = s.all ? c.residency() : c.cache().entries();
  if (s.json) {
    auto out = nlohmann::ordered_json::array();
    for (const auto& e : entries) out.push_back(entry_json(e));
    print_json(out);
    return 0;
  }
  if (entries.empty()) {
    std::cout << (s.all ? "no partitions in the residency catalog\n" : "no cache entries\n");
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : entries) {
    auto used = iso_utc(e.last_use);
    if (e.lost) {
      // Where it was and how big is gone with the worker; the reason names the worker.
      rows.push_back({e.key, worker_text(e), "-", "-", "-", "-", used.empty() ? "-" : used,
                      "lost: " + e.lost_reason});
      continue;
    }
    rows.push_back({e.key, worker_text(e), std::string(to_string(e.tier)),
                    human_bytes(e.bytes > 0 ? static_cast<std::uint64_t>(e.bytes) : 0),
                    std::to_string(e.rows), e.pins > 0 ? "pinned" : "-", used.empty() ? "-" : used,
                    "ok"});
  }
  print_cells(
      {s.all ? "partition" : "key", "worker", "tier", "bytes", "rows", "pins", "last use", "state"},
      rows, std::cout);
  return 0;
}

int cache_put(const cache_commands::state& s) {
  EMBER_EXPECTS(!s.key.empty(), invalid_input, "a cache key may not be empty");
  // A malformed file throws here, before anything reaches the cluster.
  table rows = read_csv(std::filesystem::path(s.file));
  auto view = rows.view();
  auto bytes = table_bytes(view);
  if (s.cluster.scheduler.empty())
    std::cerr << "ember: note: no --scheduler: the entry lives in this command's embedded "
                 "cluster and is gone when it exits\n";
  auto c = s.cluster.make_client({});
  int worker = c.cache().put(s.key, view);
  if (s.json) {
    print_json({{"key", s.key}, {"worker", worker}, {"rows", view.num_rows()}, {"bytes", bytes}});
    return 0;
  }
  std::cout << "cached " << s.key << ": " << view.num_rows() << " rows, "
            << human_bytes(static_cast<std::uint64_t>(bytes)) << " on worker " << worker << "\n";
  return 0;
}

int cache_get(const cache_commands::state& s) {
  bool to_file = !s.output.empty() && s.output != "-";
  bool csv_to_stdout = s.output == "-";
  EMBER_EXPECTS(!(s.json && csv_to_stdout), invalid_input,
                "--json with --output -: the CSV goes to stdout");
  EMBER_EXPECTS(s.max_rows >= 0, invalid_input,
                "-n: negative (" + std::to_string(s.max_rows) + ")");
  auto c = s.cluster.make_client({});
  // An entry lost with its worker throws ember::data_lost here (exit status 1).
  auto rows = c.cache().get(s.key);
  if (!rows) no_entry(s.key);
  auto view = rows->view();
  if (csv_to_stdout) {
    write_csv(view, std::cout);
    std::cout.flush();
    return 0;
  }
  if (to_file) {
    write_csv_file(view, s.output);
    if (s.json)
      print_json({{"key", s.key}, {"rows", view.num_rows()}, {"output", s.output}});
    else
      std::cout << "wrote " << view.num_rows() << " rows of " << s.key << " to " << s.output
                << "\n";
    return 0;
  }
  if (s.json) {
    auto names = view.names();
    auto out = nlohmann::ordered_json::array();
    for (size_type r = 0; r < view.num_rows(); ++r) {
      auto object = nlohmann::ordered_json::object();
      for (size_type col = 0; col < view.num_columns(); ++col)
        object[names[static_cast<std::size_t>(col)]] = scalar_json(get_scalar(view.column(col), r));
      out.push_back(std::move(object));
    }
    print_json(out);
    return 0;
  }
  print_table(view, std::cout, s.max_rows);
  return 0;
}

int cache_rm(const cache_commands::state& s) {
  auto c = s.cluster.make_client({});
  if (!c.cache().erase(s.key)) no_entry(s.key);
  if (s.json)
    print_json({{"key", s.key}, {"removed", true}});
  else
    std::cout << "removed cache entry " << s.key << "\n";
  return 0;
}

}  // namespace

// ---- the command tree ---------------------------------------------------------------------------

cache_commands::cache_commands(CLI::App& app) : _state(std::make_unique<state>()) {
  auto& s = *_state;
  auto* cache = app.add_subcommand("cache", "The cluster's named cache and residency catalog");
  cache->require_subcommand(1);
  auto leaf = [&](const char* name, const char* help) {
    auto* cmd = cache->add_subcommand(name, help);
    s.cluster.add_to(*cmd);
    cmd->add_flag("--json", s.json, "Print JSON on stdout");
    return cmd;
  };

  s.ls = leaf("ls", "Cache entries: worker, tier, bytes, rows, pins, last use, lost ones");
  s.ls->add_flag("--all", s.all,
                 "Every partition of the residency catalog (shuffle blocks too), not only the "
                 "cache's entries");

  s.put = leaf("put", "Store a CSV file's rows under KEY (replacing what was there)");
  s.put->add_option("key", s.key, "The cache key")->required();
  s.put->add_option("file", s.file, "The CSV file (with a header row)")->required();

  s.get = leaf("get", "Print an entry's rows, or write them as CSV with --output");
  s.get->add_option("key", s.key, "The cache key")->required();
  s.get->add_option("--output", s.output, "Write the rows as CSV here (-: stdout)");
  s.get->add_option("-n,--rows", s.max_rows, "Rows to print in the table")->capture_default_str();

  s.rm = leaf("rm", "Remove an entry (a lost one is forgotten)");
  s.rm->add_option("key", s.key, "The cache key")->required();
}

cache_commands::~cache_commands() = default;

std::optional<int> cache_commands::run() {
  auto& s = *_state;
  if (*s.ls) return cache_ls(s);
  if (*s.put) return cache_put(s);
  if (*s.get) return cache_get(s);
  if (*s.rm) return cache_rm(s);
  return std::nullopt;
}

}  // namespace ember::cli
