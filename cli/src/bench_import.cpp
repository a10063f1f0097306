#include "bench_import.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <ember/host/csv.hpp>
#include <ember/host/dataset_store.hpp>
#include <ember/host/error.hpp>
#include <ember/host/partition_file.hpp>

#include "bench_stats.hpp"
#include "machine_info.hpp"
#include "peer_process.hpp"
#include "progress.hpp"
#include "bench_data.hpp"
#include "bench_env.hpp"
#include "bench_report.hpp"
#include "size_parser.hpp"
#include "table_printer.hpp"

namespace ember::cli {

CLI::App* bench_import_options::add_to(CLI::App& bench) {
  auto& cmd = *bench.add_subcommand(
      "import", "CSV import and native scan throughput, beside DuckDB on the same file");
  cmd.add_option("--size", size, "Bytes of the generated CSV file (default 1GB)");
  cmd.add_option("--threads", threads, "Threads for ember and the peer (default 2)");
  cmd.add_option("--rounds", rounds, "Timed rounds (default 3)");
  cmd.add_option("--json", json_path, "Write the JSON report here");
  cmd.add_option("--compare", compare, "Run a peer on the same file: duckdb");
  cmd.add_option("--python", python, "Python with duckdb installed (for --compare)");
  cmd.add_option("--keep", keep_dir, "Write the CSV, dataset and DuckDB file here and keep them");
  return &cmd;
}

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

constexpr std::uint64_t seed = 20260601;
constexpr std::string_view dataset_name = "events";
// `ember data import`'s defaults: partitions of 1M rows, uncompressed.
constexpr size_type partition_rows = 1'000'000;
// The columns ember's reader must infer from the generated file.
const csv_schema expected_schema = {{"id", type_id::int64},       {"user", type_id::int64},
                                    {"amount", type_id::float64}, {"ts", type_id::timestamp_ns},
                                    {"country", type_id::string}, {"device", type_id::string}};
const std::vector<std::string> narrow_columns = {"amount", "country"};

// ---- answers --------------------------------------------------------------------------------

/// What a scan computes. The narrow scan fills rows, sum_amount and count_country; the full one
/// every field. Integer sums are exact (they fit int64 at any size this bench generates).
struct scan_answer {
  std::int64_t rows = 0;
  std::int64_t sum_id = 0;
  std::int64_t sum_user = 0;
  double sum_amount = 0;
  std::int64_t count_country = 0;
  std::int64_t max_ts_ms = std::numeric_limits<std::int64_t>::min();
  std::int64_t device_bytes = 0;

  void add(const scan_answer& o) {
    rows += o.rows;
    sum_id += o.sum_id;
    sum_user += o.sum_user;
    sum_amount += o.sum_amount;
    count_country += o.count_country;
    max_ts_ms = std::max(max_ts_ms, o.max_ts_ms);
    device_bytes += o.device_bytes;
  }
};

nlohmann::json to_json(const scan_answer& a, bool full) {
  nlohmann::json j{
      {"rows", a.rows}, {"sum_amount", a.sum_amount}, {"count_country", a.count_country}};
  if (full) {
    j["sum_id"] = a.sum_id;
    j["sum_user"] = a.sum_user;
    j["max_ts_ms"] = a.max_ts_ms;
    j["device_bytes"] = a.device_bytes;
  }
  return j;
}

scan_answer answer_from_json(const nlohmann::json& j, bool full) {
  scan_answer a;
  a.rows = j.at("rows").get<std::int64_t>();
  // sum() of no rows is NULL in SQL.
  a.sum_amount = j.at("sum_amount").is_null() ? 0.0 : j.at("sum_amount").get<double>();
  a.count_country = j.at("count_country").get<std::int64_t>();
  if (full) {
    a.sum_id = j.at("sum_id").get<std::int64_t>();
    a.sum_user = j.at("sum_user").get<std::int64_t>();
    a.max_ts_ms = j.at("max_ts_ms").get<std::int64_t>();
    a.device_bytes = j.at("device_bytes").get<std::int64_t>();
  }
  return a;
}

/// The differences between `got` and the generator's answer (empty when they agree): integers
/// exactly, sum(amount) within 1e-9 relative.
std::vector<std::string> differences(const scan_answer& got, const scan_answer& want, bool full) {
  std::vector<std::string> out;
  auto check = [&](const char* name, std::int64_t g, std::int64_t w) {
    if (g != w)
      out.push_back(std::string(name) + " " + std::to_string(g) + ", expected " +
                    std::to_string(w));
  };
  check("rows", got.rows, want.rows);
  check("count(country)", got.count_country, want.count_country);
  double tolerance = 1e-9 * std::max(1.0, std::abs(want.sum_amount));
  if (!(std::abs(got.sum_amount - want.sum_amount) <= tolerance))
    out.push_back("sum(amount) " + format("%.6f", got.sum_amount) + ", expected " +
                  format("%.6f", want.sum_amount));
  if (full) {
    check("sum(id)", got.sum_id, want.sum_id);
    check("sum(user)", got.sum_user, want.sum_user);
    check("max(ts) ms", got.max_ts_ms, want.max_ts_ms);
    check("sum(length(device))", got.device_bytes, want.device_bytes);
  }
  return out;
}

// ---- the CSV file -----------------------------------------------------------------------------

constexpr std::string_view countries[] = {"US", "DE", "FR", "GB", "JP", "BR", "IN", "CN",
                                          "CA", "AU", "ES", "IT", "NL", "SE", "MX", "KR"};
// One name holds a comma, so it is written quoted: the readers' quoting path is exercised.
constexpr std::string_view devices[] = {
    "iPhone 15",   "Pixel 8",     "Galaxy S24",           "iPad Air",
    "MacBook Pro", "ThinkPad X1", "Surface Pro, 9th gen", "Kindle",
    "Chromebook",  "Fire TV"};
// 2025-01-01T00:00:00Z; rows are about 2 seconds apart, with jitter.
constexpr std::int64_t first_second = 1'735'689'600;

/// Appends `v` in decimal.
void put_int(std::string& out, std::int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void put_two(std::string& out, int v) {
  out.push_back(static_cast<char>('0' + v / 10));
  out.push_back(static_cast<char>('0' + v % 10));
}

struct generated_file {
  scan_answer answer;  ///< what every scan must give
  size_type bytes = 0;
};

/// Writes the CSV file (rows until it holds at least `target` bytes, at least one row) and
/// returns the answers every scan must give and the file's size.
generated_file generate_csv(const fs::path& path, size_type target, progress& bar) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  EMBER_EXPECTS(f, invalid_input, path.string() + ": cannot create");
  std::string buf = "id,user,amount,ts,country,device\n";
  buf.reserve(std::size_t{8} << 20);
  size_type written = 0;
  scan_answer a;
  std::int64_t cents_total = 0;
  splitmix64 g{seed};
  std::int64_t day = -1;
  std::string date;
  auto flush = [&] {
    f.write(buf.data(), static_cast<std::streamsize>(buf.size()));
    written += static_cast<size_type>(buf.size());
    buf.clear();
  };
  for (std::int64_t id = 0; written + static_cast<size_type>(buf.size()) < target || id == 0;
       ++id) {
    auto r1 = g.next(), r2 = g.next();
    auto user = static_cast<std::int64_t>(r1 % 1'000'000);
    auto cents = static_cast<std::int64_t>((r1 >> 20) % 100'000);
    bool user_null = (r2 >> 16) % 200 == 0;
    bool amount_null = (r2 >> 24) % 200 == 0;
    bool country_null = (r2 >> 32) % 50 == 0;
    bool device_null = (r2 >> 40) % 100 == 0;
    auto country = countries[r2 % std::size(countries)];
    auto device = devices[(r2 >> 8) % std::size(devices)];
    std::int64_t ts = first_second + id * 2 + static_cast<std::int64_t>((r2 >> 48) % 5);

    put_int(buf, id);
    buf.push_back(',');
    if (!user_null) put_int(buf, user);
    buf.push_back(',');
    if (!amount_null) {
      put_int(buf, cents / 100);
      buf.push_back('.');
      put_two(buf, static_cast<int>(cents % 100));
    }
    buf.push_back(',');
    if (ts / 86400 != day) {
      day = ts / 86400;
      date = civil_date(day);
    }
    auto sec = ts % 86400;
    buf += date;
    buf.push_back(' ');
    put_two(buf, static_cast<int>(sec / 3600));
    buf.push_back(':');
    put_two(buf, static_cast<int>(sec / 60 % 60));
    buf.push_back(':');
    put_two(buf, static_cast<int>(sec % 60));
    buf.push_back(',');
    if (!country_null) buf += country;
    buf.push_back(',');
    if (!device_null) {
      bool quote = device.find(',') != std::string_view::npos;
      if (quote) buf.push_back('"');
      buf += device;
      if (quote) buf.push_back('"');
    }
    buf.push_back('\n');

    a.rows += 1;
    a.sum_id += id;
    if (!user_null) a.sum_user += user;
    if (!amount_null) cents_total += cents;
    if (!country_null) a.count_country += 1;
    if (!device_null) a.device_bytes += static_cast<std::int64_t>(device.size());
    a.max_ts_ms = std::max(a.max_ts_ms, ts * 1000);
    if (buf.size() >= (std::size_t{8} << 20)) {
      flush();
      bar.update("generating CSV", written, target);
    }
  }
  flush();
  f.close();
  EMBER_EXPECTS(f, invalid_input, path.string() + ": cannot write");
  bar.finish();
  a.sum_amount = static_cast<double>(cents_total) / 100.0;
  return {a, written};
}

// ---- ember: import and scan ---------------------------------------------------------------------

struct import_timing {
  double seconds = 0;        ///< reading the CSV to the commit
  double parse_seconds = 0;  ///< read_csv
  double write_seconds = 0;  ///< partitions written and committed (synced)
};

/// What `ember data import` does with this file: read_csv (with `threads` threads), then
/// partitions of 1M rows staged without sync and committed (which syncs them all).
import_timing ember_import(const fs::path& csv, const fs::path& root, int threads) {
  std::error_code ec;
  fs::remove_all(root, ec);
  import_timing t;
  auto t0 = clock_type::now();
  csv_options options;
  options.threads = threads;
  table input = read_csv(csv, options);
  t.parse_seconds = seconds_since(t0);
  auto t1 = clock_type::now();
  dataset_store store(root);
  auto writer = store.begin_write(dataset_name);
  partition_write_options write_options;
  write_options.sync = false;  // commit syncs every staged file at once
  auto view = input.view();
  size_type rows = view.num_rows();
  for (size_type begin = 0; begin < rows || begin == 0; begin += partition_rows)
    (void)writer.write_partition(view.slice(begin, std::min(rows, begin + partition_rows)),
                                 write_options);
  (void)writer.commit();
  t.write_seconds = seconds_since(t1);
  t.seconds = seconds_since(t0);
  return t;
}

bool valid(const column_view& c, size_type i) {
  if (!c.nullable()) return true;
  auto bit = c.mask_offset() + i;
  return (c.null_mask()[bit / 32] >> (bit % 32)) & 1U;
}

/// The answer over one partition: the narrow columns (amount, country) or every column.
scan_answer answer_of(const table_view& t, bool full) {
  scan_answer a;
  a.rows = t.num_rows();
  const auto& amount = t.column("amount");
  const auto* amounts = amount.data<double>();
  for (size_type i = 0; i < a.rows; ++i)
    if (valid(amount, i)) a.sum_amount += amounts[i];
  const auto& country = t.column("country");
  if (!country.nullable()) {
    a.count_country = a.rows;
  } else {
    for (size_type i = 0; i < a.rows; ++i) a.count_country += valid(country, i) ? 1 : 0;
  }
  if (!full) return a;
  const auto& id = t.column("id");
  const auto& user = t.column("user");
  const auto& ts = t.column("ts");
  const auto& device = t.column("device");
  const auto* ids = id.data<std::int64_t>();
  const auto* users = user.data<std::int64_t>();
  const auto* stamps = ts.data<std::int64_t>();
  const auto* offsets = device.offsets();
  for (size_type i = 0; i < a.rows; ++i) {
    if (valid(id, i)) a.sum_id += ids[i];
    if (valid(user, i)) a.sum_user += users[i];
    if (valid(ts, i)) a.max_ts_ms = std::max(a.max_ts_ms, stamps[i] / 1'000'000);
    if (valid(device, i)) a.device_bytes += offsets[i + 1] - offsets[i];
  }
  return a;
}

/// Runs f(0) .. f(n - 1) on `threads` threads (this one among them), each taking the next
/// index in turn. The first exception stops the others from taking more and is rethrown here.
template <class F>
void parallel_for(std::size_t n, int threads, F f) {
  std::atomic<std::size_t> next{0};
  std::mutex mutex;  // guards first
  std::exception_ptr first;
  auto work = [&] {
    try {
      for (std::size_t i; (i = next.fetch_add(1)) < n;) f(i);
    } catch (...) {
      std::lock_guard lock(mutex);
      if (!first) first = std::current_exception();
      next.store(n);
    }
  };
  std::vector<std::thread> helpers;
  auto count =
      std::min<std::size_t>(static_cast<std::size_t>(threads), std::max<std::size_t>(1, n));
  for (std::size_t k = 1; k < count; ++k) helpers.emplace_back(work);
  work();
  for (auto& h : helpers) h.join();
  if (first) std::rethrow_exception(first);
}

struct scan_run {
  double seconds = 0;
  scan_answer answer;
};

/// Reads the current version of the dataset back: the manifest, then `columns` (every one when
/// empty) of every partition, checked against the manifest and their checksums, with
/// `threads` threads; the answer summed in partition order.
scan_run ember_scan(const fs::path& root, const std::vector<std::string>& columns, int threads) {
  bool full = columns.empty();
  auto t0 = clock_type::now();
  dataset_store store(root);
  auto manifest = store.read_manifest(dataset_name);
  std::vector<scan_answer> parts(manifest.partitions.size());
  parallel_for(parts.size(), threads, [&](std::size_t i) {
    // Into the host pool, as a CPU worker's scan reads into its tier over that pool.
    auto t = store.read_partition(manifest, i, columns, default_host_pool());
    parts[i] = answer_of(t.view(), full);
  });
  scan_run r;
  for (const auto& p : parts) r.answer.add(p);
  r.seconds = seconds_since(t0);
  return r;
}

/// The dataset's sizes: partitions, file bytes, and raw bytes of the narrow and of all columns
/// (what the scans decode: the chunks' raw sizes, nulls bitmaps and string offsets included).
struct dataset_sizes {
  std::size_t partitions = 0;
  size_type rows = 0;
  size_type file_bytes = 0;
  size_type raw_bytes = 0;
  size_type narrow_raw_bytes = 0;
  std::vector<partition_column> schema;
};

dataset_sizes sizes_of(const fs::path& root) {
  dataset_store store(root);
  auto m = store.read_manifest(dataset_name);
  dataset_sizes s;
  s.partitions = m.partitions.size();
  s.rows = m.rows;
  s.file_bytes = m.bytes;
  s.schema = m.schema;
  for (std::size_t p = 0; p < m.partitions.size(); ++p) {
    auto info = read_partition_info(store.partition_path(m, p));
    s.raw_bytes += info.raw_bytes();
    for (const auto& name : narrow_columns) {
      auto c = static_cast<std::size_t>(info.index_of(name));
      for (const auto& g : info.row_groups) s.narrow_raw_bytes += g.chunks[c].raw_bytes;
    }
  }
  return s;
}

void check_schema(const dataset_sizes& s) {
  std::string got, want;
  for (const auto& c : s.schema)
    got += (got.empty() ? "" : ", ") + c.name + ":" + std::string(to_string(c.type));
  for (const auto& [name, type] : expected_schema)
    want += (want.empty() ? "" : ", ") + name + ":" + std::string(to_string(type));
  if (got != want)
    throw error("the imported dataset has columns " + got + "; the generated CSV should read as " +
                want);
}

// ---- the peer -----------------------------------------------------------------------------------

nlohmann::json ask(peer_process& peer, const std::string& command) {
  peer.send_line(command);
  auto answer = nlohmann::json::parse(peer.read_line(std::chrono::seconds(1800)));
  if (answer.contains("error"))
    throw error("duckdb failed on '" + command + "': " + answer["error"].get<std::string>());
  return answer;
}

// A folder of this bench's own (unless kept), removed with everything in it when it goes away.
struct work_dir {
  fs::path path;
  bool keep = false;
  work_dir(fs::path p, bool keep_it) : path(std::move(p)), keep(keep_it) {
    std::error_code ec;
    if (!keep) fs::remove_all(path, ec);
    fs::create_directories(path, ec);
    EMBER_EXPECTS(!ec, invalid_input, path.string() + ": cannot create (" + ec.message() + ")");
  }
  ~work_dir() {
    std::error_code ec;
    if (!keep) fs::remove_all(path, ec);
  }
  work_dir(const work_dir&) = delete;
  work_dir& operator=(const work_dir&) = delete;
};

/// One measure (ember's or the peer's) over the rounds.
// Seconds to read the whole file with read() in 8 MiB pieces (the import's ceiling: the CSV
// bytes come from the page cache for both).
double read_file_seconds(const fs::path& path) {
  auto t0 = std::chrono::steady_clock::now();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EMBER_EXPECTS(fd >= 0, error, "cannot open " + path.string());
  std::vector<char> buf(std::size_t{8} << 20);
  while (true) {
    auto n = ::read(fd, buf.data(), buf.size());
    if (n <= 0) break;
  }
  ::close(fd);
  return seconds_since(t0);
}

struct series {
  std::vector<double> seconds;
  std::vector<std::string> failures;  ///< answers that differed, with the round
};

nlohmann::json measure_json(const series& s, double rows, double bytes, const char* unit) {
  auto med = summarize(s.seconds).median;
  return {{"seconds", spread(s.seconds)},
          {"rows_per_second", med > 0 ? rows / med : 0.0},
          {std::string(unit), med > 0 ? bytes / med : 0.0},
          {"answers_match", s.failures.empty()},
          {"failures", s.failures}};
}

}  // namespace

int run_bench_import(const bench_import_options& options) {
  const auto started = std::chrono::steady_clock::now();
  auto bytes = parse_size(options.size, "--size");
  EMBER_EXPECTS(bytes > 0, invalid_input, "--size: must be more than 0 bytes");
  EMBER_EXPECTS(options.threads >= 1, invalid_input,
                "--threads: must be 1 or more (" + std::to_string(options.threads) + ")");
  EMBER_EXPECTS(options.rounds >= 1, invalid_input,
                "--rounds: must be 1 or more (" + std::to_string(options.rounds) + ")");
  EMBER_EXPECTS(options.compare.empty() || options.compare == "duckdb", invalid_input,
                "--compare: unknown peer '" + options.compare + "' (expected duckdb)");

  bool keep = !options.keep_dir.empty();
  work_dir dir(
      keep ? fs::path(options.keep_dir)
           : fs::temp_directory_path() / ("ember-bench-import-" + std::to_string(::getpid())),
      keep);
  auto csv_path = dir.path / "bench_import.csv";
  auto root = dir.path / "ember_root";
  progress bar;

  auto generated = generate_csv(csv_path, bytes, bar);
  const auto& want = generated.answer;
  const double rows = static_cast<double>(want.rows);
  const double csv_bytes = static_cast<double>(generated.bytes);

  std::unique_ptr<peer_process> peer;
  nlohmann::json peer_info;
  if (options.compare == "duckdb") {
    auto script = peer_script("duckdb_import.py");
    peer = std::make_unique<peer_process>(std::vector<std::string>{
        options.python, script.string(), "--csv", csv_path.string(), "--dir", dir.path.string(),
        "--threads", std::to_string(options.threads)});
    peer_info = nlohmann::json::parse(peer->read_line(std::chrono::seconds(600)));
    if (peer_info.contains("error"))
      throw error("duckdb peer failed to start: " + peer_info["error"].get<std::string>());
  }

  series e_import, e_narrow, e_full, d_import, d_narrow, d_full;
  std::vector<double> e_parse, e_write, d_narrow_query, d_full_query, csv_read;
  nlohmann::json rounds = nlohmann::json::array();
  nlohmann::json peer_types, peer_file_bytes;
  scan_answer e_narrow_answer, e_full_answer, d_narrow_answer, d_full_answer;
  dataset_sizes sizes;

  auto record = [](series& s, int round, std::vector<std::string> diffs, const char* what,
                   const char* who) {
    for (auto& d : diffs)
      s.failures.push_back(std::string(who) + " " + what +
                           (round < 0 ? " (warm-up)" : " (round " + std::to_string(round) + ")") +
                           ": " + d);
  };

  int steps = (options.rounds + 1) * (peer ? 6 : 3);
  int step = 0;
  // Round -1 is the warm-up: everything runs and is checked once, nothing is timed.
  for (int round = -1; round < options.rounds; ++round) {
    bool timed = round >= 0;
    nlohmann::json r{{"round", round}};

    bar.update("import", step, steps);
    auto t = ember_import(csv_path, root, options.threads);
    ++step;
    if (round == -1) {
      sizes = sizes_of(root);
      check_schema(sizes);
    }
    if (auto imported = dataset_store(root).read_manifest(dataset_name).rows; imported != want.rows)
      record(e_import, round,
             {"rows " + std::to_string(imported) + ", expected " + std::to_string(want.rows)},
             "import", "ember");
    r["ember_import_seconds"] = t.seconds;
    r["ember_parse_seconds"] = t.parse_seconds;
    r["ember_write_commit_seconds"] = t.write_seconds;
    if (timed) {
      csv_read.push_back(read_file_seconds(csv_path));
      e_import.seconds.push_back(t.seconds);
      e_parse.push_back(t.parse_seconds);
      e_write.push_back(t.write_seconds);
    }
    if (peer) {
      bar.update("import", step++, steps);
      auto a = ask(*peer, "import");
      if (a["rows"].get<std::int64_t>() != want.rows)
        record(d_import, round,
               {"rows " + a["rows"].dump() + ", expected " + std::to_string(want.rows)}, "import",
               "duckdb");
      peer_types = a["types"];
      peer_file_bytes = a["file_bytes"];
      r["duckdb_import_seconds"] = a["seconds"];
      if (timed) d_import.seconds.push_back(a["seconds"].get<double>());
    }

    for (bool full : {false, true}) {
      const char* what = full ? "full scan" : "narrow scan";
      bar.update(what, step++, steps);
      auto s =
          ember_scan(root, full ? std::vector<std::string>{} : narrow_columns, options.threads);
      auto& es = full ? e_full : e_narrow;
      record(es, round, differences(s.answer, want, full), what, "ember");
      (full ? e_full_answer : e_narrow_answer) = s.answer;
      r[full ? "ember_full_seconds" : "ember_narrow_seconds"] = s.seconds;
      if (timed) es.seconds.push_back(s.seconds);
      if (peer) {
        bar.update(what, step++, steps);
        auto a = ask(*peer, full ? "full" : "narrow");
        auto theirs = answer_from_json(a["result"], full);
        auto& ds = full ? d_full : d_narrow;
        record(ds, round, differences(theirs, want, full), what, "duckdb");
        (full ? d_full_answer : d_narrow_answer) = theirs;
        r[full ? "duckdb_full_seconds" : "duckdb_narrow_seconds"] = a["seconds"];
        r[full ? "duckdb_full_query_seconds" : "duckdb_narrow_query_seconds"] = a["query_seconds"];
        if (timed) {
          ds.seconds.push_back(a["seconds"].get<double>());
          (full ? d_full_query : d_narrow_query).push_back(a["query_seconds"].get<double>());
        }
      }
    }
    if (timed) rounds.push_back(r);
  }
  bar.update("done", steps, steps);
  bar.finish();
  const bool compared = peer != nullptr;
  if (peer) {
    peer->send_line("quit");
    peer.reset();
  }

  // ---- the report -------------------------------------------------------------------------------
  const double narrow_bytes = static_cast<double>(sizes.narrow_raw_bytes);
  const double full_bytes = static_cast<double>(sizes.raw_bytes);
  bench_report common("import",
                      {{"size_bytes", bytes},
                       {"threads", options.threads},
                       {"rounds", options.rounds},
                       {"compare", options.compare},
                       {"seed", seed},
                       {"partition_rows", partition_rows},
                       {"compression", "none"},
                       {"kept_in", options.keep_dir}},
                      started);
  {
    // The machine as ember's CPU backend sees it with this run's threads.
    context_options co;
    co.backend = backend_choice::cpu;
    co.cpu_threads = options.threads;
    common.set_machine(machine_info(*context::create(co)));
  }
  common.not_measured("tiers", "import and scans run in this process, outside the tiers");
  common.not_measured("shuffle", "no shuffle: one process");
  common.not_measured("residency", "scans read the files (no partition store)");
  common.not_measured("latency", "measured as throughput");
  auto& report = common.details();
  if (peer_info.is_object()) report["peer"] = peer_info;
  nlohmann::json schema = nlohmann::json::array();
  for (const auto& c : sizes.schema)
    schema.push_back(
        {{"name", c.name}, {"type", std::string(to_string(c.type))}, {"nullable", c.nullable}});
  report["input"] = {
      {"csv_bytes", generated.bytes}, {"rows", want.rows}, {"expected", to_json(want, true)}};
  report["phases"] = {
      {"import",
       "ember: read_csv with --threads threads, 1M-row partitions written uncompressed "
       "and committed (synced); duckdb: connect, CREATE TABLE t AS SELECT * FROM "
       "read_csv(...), CHECKPOINT; both from the CSV in the page cache"},
      {"narrow",
       "sum(amount), count(country): ember reads those 2 columns of every partition "
       "from the manifest on; duckdb opens its file read-only and runs the query"},
      {"full",
       "an aggregate over every column: ember reads every column of every partition; "
       "duckdb: count(*), sum(id), sum(user), sum(amount), count(country), max(ts), "
       "sum(strlen(device))"}};
  nlohmann::json ember_side{
      {"dataset",
       {{"partitions", sizes.partitions},
        {"rows", sizes.rows},
        {"file_bytes", sizes.file_bytes},
        {"raw_bytes", sizes.raw_bytes},
        {"narrow_raw_bytes", sizes.narrow_raw_bytes},
        {"schema", schema}}},
      {"import", measure_json(e_import, rows, csv_bytes, "csv_bytes_per_second")},
      {"narrow", measure_json(e_narrow, rows, narrow_bytes, "raw_bytes_per_second")},
      {"full", measure_json(e_full, rows, full_bytes, "raw_bytes_per_second")},
      {"answers",
       {{"narrow", to_json(e_narrow_answer, false)}, {"full", to_json(e_full_answer, true)}}}};
  ember_side["import"]["parse_seconds"] = spread(e_parse);
  ember_side["import"]["write_commit_seconds"] = spread(e_write);
  report["ember"] = ember_side;
  auto median = [](const series& s) { return summarize(s.seconds).median; };
  if (compared) {
    nlohmann::json d{
        {"file_bytes", peer_file_bytes},
        {"types", peer_types},
        {"import", measure_json(d_import, rows, csv_bytes, "csv_bytes_per_second")},
        {"narrow", measure_json(d_narrow, rows, narrow_bytes, "raw_bytes_per_second")},
        {"full", measure_json(d_full, rows, full_bytes, "raw_bytes_per_second")},
        {"answers",
         {{"narrow", to_json(d_narrow_answer, false)}, {"full", to_json(d_full_answer, true)}}}};
    d["narrow"]["query_seconds"] = spread(d_narrow_query);
    d["full"]["query_seconds"] = spread(d_full_query);
    report["duckdb"] = d;
    // ember's speed over DuckDB's: the ratio of median times, DuckDB's over ember's (above 1:
    // ember is faster).
    report["speed_ratio_ember_over_duckdb"] = {{"import", median(d_import) / median(e_import)},
                                               {"narrow", median(d_narrow) / median(e_narrow)},
                                               {"full", median(d_full) / median(e_full)}};
  }
  report["rounds"] = rounds;
  std::vector<std::string> failures;
  for (const auto* s : {&e_import, &e_narrow, &e_full, &d_import, &d_narrow, &d_full})
    failures.insert(failures.end(), s->failures.begin(), s->failures.end());
  report["answers_match"] = failures.empty();
  const auto csv = static_cast<std::int64_t>(csv_bytes);
  const std::int64_t row_count = want.rows;
  common.add_stage({"import CSV -> dataset", e_import.seconds, row_count, csv,
                    "read_csv, partitions written and committed (synced); bytes: CSV bytes"});
  common.add_stage({"scan sum(amount), count(country)", e_narrow.seconds, row_count,
                    static_cast<std::int64_t>(narrow_bytes), "bytes: raw bytes of the 2 columns"});
  common.add_stage({"scan every column", e_full.seconds, row_count,
                    static_cast<std::int64_t>(full_bytes), "bytes: raw bytes of every column"});
  common.add_comparison({"import CSV -> dataset", "read() of the CSV file (page cache)", "ceiling",
                         "seconds", median(e_import), summarize(csv_read).median});
  if (compared) {
    auto version = "duckdb " + peer_info.value("version", std::string());
    common.add_comparison(
        {"import CSV -> dataset", version, "peer", "seconds", median(e_import), median(d_import)});
    common.add_comparison({"scan sum(amount), count(country)", version, "peer", "seconds",
                           median(e_narrow), median(d_narrow)});
    common.add_comparison(
        {"scan every column", version, "peer", "seconds", median(e_full), median(d_full)});
  } else {
    common.not_measured("duckdb", "not asked for (--compare duckdb)");
  }

  // ---- the summary ------------------------------------------------------------------------------
  std::cout << "ember bench import: " << format("%.1f", csv_bytes / 1e6) << " MB of CSV, "
            << want.rows << " rows, " << options.threads << " thread(s), " << options.rounds
            << " round(s), median times" << (compared ? " (ember and DuckDB alternating)" : "")
            << "\n";
  std::vector<std::string> header{"phase", "ember s", "ember rate", "Mrows/s"};
  if (compared) {
    header.insert(header.end(), {"duckdb s", "duckdb rate", "ember speed / duckdb"});
  }
  header.push_back("check");
  std::vector<std::vector<std::string>> cells;
  auto row = [&](const char* name, const series& e, const series* d, double unit_bytes,
                 double scale, const char* unit) {
    double em = median(e);
    std::vector<std::string> c{name, format("%.3f", em),
                               format("%.2f ", unit_bytes / em / scale) + unit,
                               format("%.1f", rows / em / 1e6)};
    bool ok = e.failures.empty();
    if (d != nullptr) {
      double dm = median(*d);
      c.push_back(format("%.3f", dm));
      c.push_back(format("%.2f ", unit_bytes / dm / scale) + unit);
      c.push_back(format("%.2fx", dm / em));
      ok = ok && d->failures.empty();
    }
    c.push_back(ok ? "same answer" : "DIFFERENT ANSWER");
    cells.push_back(std::move(c));
  };
  row("import CSV -> own format", e_import, compared ? &d_import : nullptr, csv_bytes, 1e6, "MB/s");
  row("scan sum(amount), count(country)", e_narrow, compared ? &d_narrow : nullptr, narrow_bytes,
      1e9, "GB/s");
  row("scan every column", e_full, compared ? &d_full : nullptr, full_bytes, 1e9, "GB/s");
  print_cells(header, cells, std::cout);
  std::cout << "ember import: read_csv " << format("%.3f", summarize(e_parse).median)
            << " s + write and commit " << format("%.3f", summarize(e_write).median)
            << " s; dataset " << sizes.partitions << " partition(s), " << sizes.file_bytes
            << " bytes (" << sizes.raw_bytes << " raw, " << sizes.narrow_raw_bytes
            << " in amount and country)";
  if (compared) std::cout << "; DuckDB file " << peer_file_bytes.dump() << " bytes";
  std::cout << "\nscan rates are raw bytes of the columns read (the same count for both) per "
               "second\n";
  for (const auto& f : failures) std::cout << "DIFFERENT ANSWER: " << f << "\n";
  common.print_summary(std::cout);
  common.write(options.json_path, std::cout);
  return failures.empty() ? 0 : 3;
}

}  // namespace ember::cli
