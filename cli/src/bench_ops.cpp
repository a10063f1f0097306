#include "bench_ops.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <numeric>

#include <nlohmann/json.hpp>

#include <ember/cuda/groupby.hpp>
#include <ember/cuda/join.hpp>
#include <ember/cuda/sort.hpp>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>

#include "bench_stats.hpp"
#include "machine_info.hpp"
#include "peer_process.hpp"
#include "bench_data.hpp"
#include "bench_env.hpp"
#include "bench_report.hpp"
#include "progress.hpp"
#include "table_printer.hpp"

namespace ember::cli {
namespace {

using clock_type = std::chrono::steady_clock;
using checksum = std::vector<std::int64_t>;

std::vector<std::int64_t> uniform(size_type n, std::int64_t bound, std::uint64_t seed) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  splitmix64 g{seed};
  for (auto& x : v)
    x = bound > 0 ? static_cast<std::int64_t>(g.next() % bound)
                  : static_cast<std::int64_t>(g.next());
  return v;
}

struct named_columns {
  std::string table_name;
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> columns;

  [[nodiscard]] table to_table() const {
    std::vector<column> cols;
    std::vector<std::string> names;
    for (const auto& [name, values] : columns) {
      names.push_back(name);
      cols.push_back(make_column<std::int64_t>(type_id::int64, values));
    }
    return table(std::move(cols), names);
  }
  [[nodiscard]] size_type bytes() const {
    size_type b = 0;
    for (const auto& c : columns) b += static_cast<size_type>(c.second.size() * 8);
    return b;
  }
};

struct workload {
  std::string name;
  std::string description;
  std::vector<named_columns> inputs;
  std::function<table(context&, const std::vector<table_view>&)> run;
  std::function<checksum(const table_view&)> check;
  size_type rows = 0;
};

std::uint64_t column_sum(const column_view& c) {
  std::uint64_t s = 0;
  auto* p = c.data<std::int64_t>();
  for (size_type i = 0; i < c.size(); ++i) s += static_cast<std::uint64_t>(p[i]);
  return s;
}

checksum groupby_check(const table_view& r) {
  return {r.num_rows(), static_cast<std::int64_t>(column_sum(r.column("k"))),
          static_cast<std::int64_t>(column_sum(r.column("s")))};
}

std::vector<workload> make_workloads(size_type rows) {
  std::vector<workload> w;
  auto groupby = [&](std::string name, std::int64_t distinct, std::uint64_t seed) {
    workload g;
    g.name = std::move(name);
    g.description = "SELECT k, sum(v) GROUP BY k; " + std::to_string(rows) + " rows, " +
                    std::to_string(distinct) + " distinct int64 keys";
    g.inputs.push_back(
        {"t", {{"k", uniform(rows, distinct, seed)}, {"v", uniform(rows, 1000, seed + 1)}}});
    g.run = [](context& ctx, const std::vector<table_view>& in) {
      return group_by(in[0], {"k"}, {{aggregation_kind::sum, "v", "s"}}, ctx);
    };
    g.check = groupby_check;
    g.rows = rows;
    return g;
  };
  w.push_back(groupby("groupby_sum_1m",
                      std::min<size_type>(1'000'000, std::max<size_type>(1, rows / 20)), 1));
  w.push_back(groupby("groupby_sum_100", 100, 3));

  workload s;
  s.name = "sort_int64";
  s.description = "ORDER BY k; " + std::to_string(rows) + " random int64";
  s.inputs.push_back({"t", {{"k", uniform(rows, 0, 5)}}});
  s.run = [](context& ctx, const std::vector<table_view>& in) { return sort(in[0], {{"k"}}, ctx); };
  s.check = [](const table_view& r) {
    auto* k = r.column("k").data<std::int64_t>();
    size_type n = r.num_rows();
    checksum c{n, static_cast<std::int64_t>(column_sum(r.column("k")))};
    for (size_type i : {size_type{0}, n / 2, n - 1}) c.push_back(n > 0 ? k[i] : 0);
    return c;
  };
  s.rows = rows;
  w.push_back(std::move(s));

  workload j;
  size_type left_rows = rows / 2, right_rows = std::max<size_type>(1, rows / 20);
  j.name = "join_inner";
  j.description = "l JOIN r USING (k); " + std::to_string(left_rows) + " x " +
                  std::to_string(right_rows) + " rows, int64 keys";
  std::vector<std::int64_t> right_keys(static_cast<std::size_t>(right_rows));
  std::iota(right_keys.begin(), right_keys.end(), 0);
  splitmix64 g{7};
  for (std::size_t i = right_keys.size(); i > 1; --i)
    std::swap(right_keys[i - 1], right_keys[g.next() % i]);
  j.inputs.push_back(
      {"l", {{"k", uniform(left_rows, right_rows, 8)}, {"v", uniform(left_rows, 1000, 9)}}});
  j.inputs.push_back({"r", {{"k", std::move(right_keys)}, {"p", uniform(right_rows, 1000, 10)}}});
  j.run = [](context& ctx, const std::vector<table_view>& in) {
    return hash_join(in[0], in[1], {"k"}, {"k"}, join_kind::inner, ctx);
  };
  j.check = [](const table_view& r) {
    return checksum{r.num_rows(), static_cast<std::int64_t>(column_sum(r.column("k"))),
                    static_cast<std::int64_t>(column_sum(r.column("v"))),
                    static_cast<std::int64_t>(column_sum(r.column("p")))};
  };
  j.rows = left_rows + right_rows;
  w.push_back(std::move(j));
  return w;
}

/// The single-threaded memcpy (or device copy) of `bytes`: the ceiling that every figure is
/// quoted against.
double copy_seconds(context& ctx, size_type bytes) {
  buffer src(static_cast<std::size_t>(bytes), ctx.resource(), ctx.stream());
  buffer dst(static_cast<std::size_t>(bytes), ctx.resource(), ctx.stream());
  if (ctx.kind() == backend_kind::cpu) std::memset(src.data(), 1, src.size());
  ctx.copy(dst.data(), src.data(), src.size());  // warm-up, also faults the pages in
  ctx.synchronize();
  std::vector<double> t;
  for (int i = 0; i < 3; ++i) {
    auto t0 = clock_type::now();
    ctx.copy(dst.data(), src.data(), src.size());
    ctx.synchronize();
    t.push_back(seconds_since(t0));
  }
  return summarize(t).median;
}

void write_inputs(const std::filesystem::path& dir, const workload& w) {
  for (const auto& in : w.inputs)
    for (const auto& [name, values] : in.columns) {
      auto path = dir / (w.name + "." + in.table_name + "." + name + ".bin");
      std::ofstream f(path, std::ios::binary);
      f.write(reinterpret_cast<const char*>(values.data()),
              static_cast<std::streamsize>(values.size() * sizeof(std::int64_t)));
      if (!f) throw invalid_input("cannot write benchmark input '" + path.string() + "'");
    }
}

std::string fmt(double v, const char* spec = "%.3f") {
  char buf[64];
  std::snprintf(buf, sizeof(buf), spec, v);
  return buf;
}

}  // namespace

int run_bench_ops(const bench_ops_options& options) {
  EMBER_EXPECTS(options.rows > 0, invalid_input, "--rows must be positive");
  EMBER_EXPECTS(options.rounds > 0, invalid_input, "--rounds must be positive");
  EMBER_EXPECTS(options.compare.empty() || options.compare == "duckdb", invalid_input,
                "--compare: unknown peer '" + options.compare + "' (expected duckdb)");
  context_options co;
  co.backend = options.backend;
  co.cpu_threads = options.threads;
  co.name = "bench";
  auto ctx = context::create(co);
  progress bar;

  auto workloads = make_workloads(options.rows);
  if (!options.only.empty()) {
    std::vector<workload> chosen;
    for (const auto& name : options.only) {
      auto it = std::find_if(workloads.begin(), workloads.end(),
                             [&](const workload& w) { return w.name == name; });
      if (it == workloads.end()) {
        std::string names;
        for (const auto& w : workloads) names += (names.empty() ? "" : ", ") + w.name;
        throw invalid_input("unknown workload '" + name + "' (expected one of: " + names + ")");
      }
      chosen.push_back(std::move(*it));
      workloads.erase(it);
    }
    workloads = std::move(chosen);
  }

  // The peer reads exactly the rows ember processes: the generated columns go to files once.
  std::filesystem::path data_dir;
  std::unique_ptr<peer_process> peer;
  nlohmann::json peer_info;
  if (options.compare == "duckdb") {
    data_dir =
        std::filesystem::temp_directory_path() / ("ember-bench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(data_dir);
    for (const auto& w : workloads) write_inputs(data_dir, w);
    auto script = peer_script("duckdb_ops.py");
    peer = std::make_unique<peer_process>(
        std::vector<std::string>{options.python, script.string(), "--data", data_dir.string(),
                                 "--threads", std::to_string(options.threads)});
    peer_info = nlohmann::json::parse(peer->read_line(std::chrono::seconds(600)));
    if (peer_info.contains("error"))
      throw error("duckdb peer failed to start: " + peer_info["error"].get<std::string>());
  }

  bench_report common("ops", {{"rows", options.rows},
                              {"threads", options.threads},
                              {"rounds", options.rounds},
                              {"compare", options.compare}});
  common.set_machine(machine_info(*ctx));
  common.not_measured("tiers", "operators on one context: nothing is spilled");
  common.not_measured("shuffle", "operators on one context, no cluster");
  common.not_measured("residency", "operators on one context: no partition store");
  common.not_measured("latency", "measured as throughput");
  if (!peer) common.not_measured("duckdb", "not asked for (--compare duckdb)");
  auto& report = common.details();
  if (peer) report["peer"] = peer_info;
  report["results"] = nlohmann::json::array();
  std::vector<std::vector<std::string>> summary;

  for (auto& w : workloads) {
    std::vector<table> device_inputs;
    std::vector<table_view> views;
    size_type input_bytes = 0;
    for (const auto& in : w.inputs) {
      auto host = in.to_table();
      device_inputs.push_back(to_device(host.view(), *ctx));
      input_bytes += in.bytes();
    }
    for (const auto& t : device_inputs) views.push_back(t.view());

    double ceiling = copy_seconds(*ctx, input_bytes);
    // Warm-up once, and check the answer before any time counts.
    ctx->resource().reset_peak();
    auto warm = w.run(*ctx, views);
    ctx->synchronize();
    auto host_result = to_host(warm.view(), *ctx);
    checksum ours = w.check(host_result.view());
    std::size_t peak = ctx->resource().peak();
    warm = table{};

    std::vector<double> ember_times, peer_times;
    std::string verdict = "n/a";
    int steps = options.rounds * (peer ? 2 : 1);
    int step = 0;
    for (int round = 0; round < options.rounds; ++round) {
      bar.update(w.name, step, steps);
      auto t0 = clock_type::now();
      auto r = w.run(*ctx, views);
      ctx->synchronize();
      ember_times.push_back(seconds_since(t0));
      r = table{};
      bar.update(w.name, ++step, steps);
      if (peer) {
        peer->send_line("run " + w.name);
        auto answer = nlohmann::json::parse(peer->read_line(std::chrono::seconds(900)));
        if (answer.contains("error"))
          throw error("duckdb failed on " + w.name + ": " + answer["error"].get<std::string>());
        peer_times.push_back(answer["seconds"].get<double>());
        auto theirs = answer["checksum"].get<checksum>();
        verdict = theirs == ours ? "same answer" : "DIFFERENT ANSWER";
        if (theirs != ours)
          logger().error("{}: ember checksum {} but duckdb {}", w.name, nlohmann::json(ours).dump(),
                         nlohmann::json(theirs).dump());
        bar.update(w.name, ++step, steps);
      }
    }
    bar.finish();
    auto e = summarize(ember_times);
    nlohmann::json result{
        {"name", w.name},
        {"description", w.description},
        {"input_rows", w.rows},
        {"input_bytes", input_bytes},
        {"ember_seconds",
         {{"median", e.median}, {"min", e.min}, {"max", e.max}, {"all", ember_times}}},
        {"rows_per_second", w.rows / e.median},
        {"bytes_per_second", input_bytes / e.median},
        {"copy_ceiling_seconds", ceiling},
        {"fraction_of_copy_bandwidth", ceiling / e.median},
        {"peak_device_tier_bytes", peak},
        {"result_rows", ours.empty() ? 0 : ours[0]},
        {"checksum", ours},
    };
    std::vector<std::string> row{w.name, fmt(e.median), fmt(w.rows / e.median / 1e6, "%.1f"),
                                 fmt(100.0 * ceiling / e.median, "%.1f%%")};
    if (peer) {
      auto p = summarize(peer_times);
      result["peer_seconds"] = {
          {"median", p.median}, {"min", p.min}, {"max", p.max}, {"all", peer_times}};
      result["ratio_peer_over_ember"] = p.median / e.median;
      result["answers_match"] = verdict == "same answer";
      row.push_back(fmt(p.median));
      row.push_back(fmt(p.median / e.median, "%.2fx"));
      row.push_back(verdict);
    }
    report["results"].push_back(result);
    summary.push_back(row);
    common.add_stage(
        {w.name, ember_times, w.rows, static_cast<std::int64_t>(input_bytes), w.description});
    common.add_comparison({w.name, "memcpy of the input bytes (" + ctx->description() + ")",
                           "ceiling", "seconds", e.median, ceiling});
    if (peer) {
      auto version = peer_info.value("version", std::string());
      common.add_comparison(
          {w.name, "duckdb " + version + (verdict == "same answer" ? "" : " (DIFFERENT ANSWER)"),
           "peer", "seconds", e.median, summarize(peer_times).median});
    }
  }

  std::vector<std::string> header{"workload", "ember s (median)", "Mrows/s", "vs memcpy"};
  if (peer) {
    header.push_back("duckdb s (median)");
    header.push_back("duckdb/ember");
    header.push_back("check");
  }
  std::cout << "ember bench ops on " << ctx->description() << ", " << options.rounds
            << " rounds, median times" << (peer ? " (ember and DuckDB alternating)" : "") << "\n";
  print_cells(header, summary, std::cout);
  common.print_summary(std::cout);
  common.write(options.json_path, std::cout);
  if (peer) {
    peer->send_line("quit");
    peer.reset();
  }
  if (!data_dir.empty()) std::filesystem::remove_all(data_dir);
  bool all_match = true;
  for (const auto& r : report["results"])
    if (r.contains("answers_match") && !r["answers_match"].get<bool>()) all_match = false;
  return all_match ? 0 : 3;
}

}  // namespace ember::cli
