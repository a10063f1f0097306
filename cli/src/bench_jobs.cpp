#include "bench_jobs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <ember/host/dataset_store.hpp>
#include <ember/host/error.hpp>
#include <ember/host/io.hpp>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/jobs.hpp>

#include "bench_data.hpp"
#include "bench_env.hpp"
#include "bench_report.hpp"
#include "bench_stats.hpp"
#include "peer_process.hpp"
#include "progress.hpp"
#include "size_parser.hpp"

namespace ember::cli {

CLI::App* bench_jobs_options::add_to(CLI::App& bench, bench_job which) {
  job = which;
  CLI::App* cmd = nullptr;
  if (which == bench_job::wordcount) {
    cmd = bench.add_subcommand(
        "wordcount",
        "The wordcount job on generated text files, beside DuckDB and a read() ceiling");
    cmd->add_option("--size", size, "Bytes of generated text (default 256MB)");
    cmd->add_option("--files", files, "Input files (default: 2 per worker)");
  } else {
    cmd = bench.add_subcommand("enrich",
                               "The enrich job (read, join, compute, write), beside DuckDB and "
                               "file read/write ceilings");
    cmd->add_option("--scale", size, "Bytes of generated events (default 1GB)");
    cmd->add_option("--write-compression", write_compression,
                    "Files of the enriched dataset: none or zstd (default none)");
  }
  cmd->add_option("--rounds", rounds, "Timed rounds (default 3)");
  cmd->add_option("--json", json_path, "Write the JSON report here");
  cmd->add_option("--compare", compare, "Run a peer on the same input: duckdb");
  cmd->add_option("--python", python, "Python with duckdb installed (for --compare)");
  cluster.add_to(*cmd);
  return cmd;
}

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

constexpr std::uint64_t seed = 20260714;
constexpr std::int64_t ns_per_day = 86'400'000'000'000LL;

std::string round_name(int round) {
  return round < 0 ? "warm-up" : "round " + std::to_string(round + 1);
}

// ---- plain file I/O: the ceilings -------------------------------------------------------------

/// Runs work(i) for every i in [0, count) on `threads` threads (i taken round-robin); returns
/// the seconds until all are done. Rethrows the first exception a thread threw.
template <typename F>
double on_threads(std::size_t count, int threads, F work) {
  auto n = static_cast<std::size_t>(std::max(1, threads));
  std::vector<std::exception_ptr> errors(n);
  auto t0 = clock_type::now();
  {
    std::vector<std::jthread> pool;
    for (std::size_t t = 0; t < n; ++t) {
      pool.emplace_back([&, t] {
        try {
          for (auto i = t; i < count; i += n) work(t, i);
        } catch (...) {
          errors[t] = std::current_exception();
        }
      });
    }
  }
  double s = seconds_since(t0);
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return s;
}

/// read()s every file whole through a 1 MiB buffer per thread, `threads` threads taking the
/// files in turn (as many as the workers that read them in the job); returns the seconds.
/// Throws ember::error naming a file that cannot be read, or when the bytes are not as expected.
double read_files(const std::vector<fs::path>& paths, std::int64_t expected_bytes, int threads) {
  std::vector<std::vector<char>> bufs(static_cast<std::size_t>(std::max(1, threads)),
                                      std::vector<char>(std::size_t{1} << 20));
  std::atomic<std::int64_t> total{0};
  double s = on_threads(paths.size(), threads, [&](std::size_t t, std::size_t i) {
    const auto& p = paths[i];
    auto& buf = bufs[t];
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    EMBER_EXPECTS(fd >= 0, error, p.string() + ": cannot open: " + std::strerror(errno));
    for (;;) {
      auto r = ::read(fd, buf.data(), buf.size());
      if (r == 0) break;
      if (r < 0) {
        auto e = errno;
        ::close(fd);
        throw error(p.string() + ": read failed: " + std::strerror(e));
      }
      total += r;
    }
    ::close(fd);
  });
  EMBER_EXPECTS(total == expected_bytes, error,
                "read " + std::to_string(total.load()) + " bytes of the input files, expected " +
                    std::to_string(expected_bytes));
  return s;
}

/// write()s `sizes.size()` files of those sizes into `dir` from one 1 MiB buffer of
/// pseudo-random bytes, fsync()ing each, `threads` threads taking the files in turn (as many as
/// the workers that write them in the job), then removes them; returns the seconds of the writes.
double write_files(const fs::path& dir, const std::vector<std::int64_t>& sizes, int threads) {
  std::vector<char> buf(std::size_t{1} << 20);
  splitmix64 g{seed};
  for (std::size_t i = 0; i < buf.size(); i += 8) {
    auto v = g.next();
    std::memcpy(buf.data() + i, &v, 8);
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  auto path_of = [&](std::size_t f) { return dir / ("ceiling-" + std::to_string(f)); };
  double s = on_threads(sizes.size(), threads, [&](std::size_t, std::size_t f) {
    auto path = path_of(f);
    int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    EMBER_EXPECTS(fd >= 0, error, path.string() + ": cannot create: " + std::strerror(errno));
    std::int64_t left = sizes[f];
    while (left > 0) {
      auto n = static_cast<std::size_t>(std::min<std::int64_t>(left, std::ssize(buf)));
      auto w = ::write(fd, buf.data(), n);
      if (w <= 0) {
        auto e = errno;
        ::close(fd);
        throw error(path.string() + ": write failed: " + std::strerror(e));
      }
      left -= w;
    }
    if (::fsync(fd) != 0) {
      auto e = errno;
      ::close(fd);
      throw error(path.string() + ": fsync failed: " + std::strerror(e));
    }
    ::close(fd);
  });
  for (std::size_t f = 0; f < sizes.size(); ++f) fs::remove(path_of(f), ec);
  return s;
}

// ---- the peer ---------------------------------------------------------------------------------

std::unique_ptr<peer_process> start_peer(const std::string& python, const std::string& script_name,
                                         std::vector<std::string> args, nlohmann::json& info) {
  auto script = peer_script(script_name);
  args.insert(args.begin(), {python, script.string()});
  auto peer = std::make_unique<peer_process>(args);
  info = nlohmann::json::parse(peer->read_line(std::chrono::seconds(1800)));
  if (info.contains("error"))
    throw error("duckdb peer failed to start: " + info["error"].get<std::string>());
  return peer;
}

nlohmann::json ask(peer_process& peer, const std::string& command) {
  peer.send_line(command);
  auto answer = nlohmann::json::parse(peer.read_line(std::chrono::seconds(3600)));
  if (answer.contains("error"))
    throw error("duckdb failed on '" + command + "': " + answer["error"].get<std::string>());
  return answer;
}

std::string peer_name(const nlohmann::json& info) {
  return "duckdb " + info.value("version", std::string("?"));
}

// ---- what every workload shares ---------------------------------------------------------------

/// The common set-up: options checked, the report started, the cluster up.
struct bench_run {
  const bench_jobs_options& options;
  std::string workload;
  bench_report report;
  progress bar;
  std::string step;  ///< the label the job progress callback shows
  std::unique_ptr<bench_cluster_target> target;
  std::optional<client> c;
  std::vector<std::string> failures;

  bench_run(const bench_jobs_options& o, std::string name, nlohmann::json parameters)
      : options(o), workload(name), report(std::move(name), std::move(parameters)) {}

  void connect() {
    target = std::make_unique<bench_cluster_target>(options.cluster);
    client_options co;
    co.progress = [this](const std::string& stage, size_type done, size_type total) {
      bar.update(step + ": " + stage, done, total);
    };
    c.emplace(target->connect(co));
    report.set_cluster(target->describe(*c));
  }

  [[nodiscard]] bool measures_cluster() const { return target->has_worker_processes(); }

  [[nodiscard]] cluster_counters counters() const {
    return measures_cluster() ? settled_counters(*c) : cluster_counters{};
  }

  /// Tiers, residency and shuffle from what the workers reported, or why not.
  void cluster_sections(const cluster_counters& moved, const job_metrics* median_round) {
    if (!measures_cluster()) {
      const std::string why =
          "--embedded: the in-process cluster's workers report no partition-store counters and "
          "no per-link shuffle bytes (run without --embedded for worker processes)";
      report.not_measured("tiers", why);
      report.not_measured("residency", why);
      report.not_measured("shuffle", why);
      return;
    }
    report.set_tiers(moved.tiers);
    report.set_residency(moved.residency);
    if (median_round != nullptr) report.set_shuffle(shuffle_of(*median_round, c->status()));
  }

  void fail(int round, const std::string& who, const std::string& what) {
    failures.push_back(who + " (" + round_name(round) + "): " + what);
  }

  int finish() {
    bar.finish();
    report.details()["answers_match"] = failures.empty();
    report.details()["failures"] = failures;
    report.not_measured("latency",
                        "a whole-job benchmark: seconds per stage and per job, not per-operation "
                        "latency");
    report.print_summary(std::cout);
    for (const auto& f : failures) std::cout << "DIFFERENT ANSWER: " << f << "\n";
    report.write(options.json_path, std::cout);
    return failures.empty() ? 0 : 3;
  }
};

void check_common(const bench_jobs_options& o) {
  EMBER_EXPECTS(o.rounds >= 1, invalid_input,
                "--rounds: must be 1 or more (" + std::to_string(o.rounds) + ")");
  EMBER_EXPECTS(o.compare.empty() || o.compare == "duckdb", invalid_input,
                "--compare: unknown peer '" + o.compare + "' (the peers are: duckdb)");
}

/// Index of the median of `v` as summarize() picks it.
std::size_t median_index(const std::vector<double>& v) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return v[a] < v[b]; });
  return order[order.size() / 2];
}

/// The job's stages, by position, over the rounds.
struct job_stages {
  std::vector<std::string> names;
  std::vector<std::vector<double>> seconds;
  std::vector<size_type> rows, bytes;

  void add(const job_metrics& m) {
    if (names.empty()) {
      for (const auto& s : m.stages) {
        names.push_back(s.name);
        rows.push_back(s.rows_out);
        bytes.push_back(s.bytes_out);
      }
      seconds.resize(names.size());
    }
    for (std::size_t i = 0; i < m.stages.size() && i < names.size(); ++i)
      seconds[i].push_back(m.stages[i].seconds);
  }
};

nlohmann::json stage_seconds_json(const job_metrics& m) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& s : m.stages)
    j.push_back({{"name", s.name},
                 {"seconds", s.seconds},
                 {"rows_out", s.rows_out},
                 {"bytes_out", s.bytes_out},
                 {"bytes_fetched", s.bytes_fetched}});
  return j;
}

// ---- wordcount --------------------------------------------------------------------------------

constexpr int vocabulary_size = 100'000;
constexpr int top_words = 20;

/// Pseudo-words (consonant-vowel syllables, rank r is r + 1 in bijective base 105, so every rank
/// has its own word) and a sampling table in which rank r holds slots in proportion to
/// 1 / (r + 1): frequent words are short and counts are skewed like a natural text's.
struct vocabulary {
  std::vector<std::string> words;
  std::vector<std::uint32_t> slots;

  vocabulary() {
    constexpr std::string_view consonants = "bcdfghjklmnpqrstvwxyz";
    constexpr std::string_view vowels = "aeiou";
    const auto syllables = static_cast<int>(consonants.size() * vowels.size());
    words.reserve(vocabulary_size);
    for (int r = 0; r < vocabulary_size; ++r) {
      std::string w;
      for (int n = r + 1; n > 0; n = (n - 1) / syllables) {
        int s = (n - 1) % syllables;
        w.insert(w.begin(), {consonants[static_cast<std::size_t>(s) / vowels.size()],
                             vowels[static_cast<std::size_t>(s) % vowels.size()]});
      }
      words.push_back(std::move(w));
    }
    double harmonic = 0;
    for (int r = 0; r < vocabulary_size; ++r) harmonic += 1.0 / (r + 1);
    constexpr double table_slots = 1 << 22;
    for (int r = 0; r < vocabulary_size; ++r) {
      auto n = std::max<std::int64_t>(1, std::llround(table_slots / (r + 1) / harmonic));
      slots.insert(slots.end(), static_cast<std::size_t>(n), static_cast<std::uint32_t>(r));
    }
  }
};

struct text_input {
  std::vector<fs::path> files;
  std::int64_t bytes = 0, lines = 0, words = 0;
  std::vector<std::int64_t> counts;  ///< per vocabulary rank
  std::int64_t distinct = 0;
  std::vector<std::pair<std::string, std::int64_t>> top;  ///< (count desc, word asc)
};

/// Writes `files` files of together at least `target` bytes of lines of 5 to 15 words and
/// counts what it wrote.
text_input generate_text(const vocabulary& v, const fs::path& dir, std::int64_t target, int files,
                         progress& bar) {
  text_input in;
  in.counts.assign(v.words.size(), 0);
  splitmix64 g{seed};
  const auto slots = static_cast<std::uint64_t>(v.slots.size());
  const std::int64_t per_file = (target + files - 1) / files;
  std::string buf;
  buf.reserve(std::size_t{9} << 20);
  for (int f = 0; f < files; ++f) {
    auto path = dir / ("words-" + std::to_string(f) + ".txt");
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    EMBER_EXPECTS(out, invalid_input, path.string() + ": cannot create");
    std::int64_t written = 0;
    auto flush = [&] {
      out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      written += std::ssize(buf);
      in.bytes += std::ssize(buf);
      buf.clear();
      bar.update("generating text", in.bytes, target);
    };
    while (written + std::ssize(buf) < per_file) {
      auto r = g.next();
      int n = 5 + static_cast<int>(r % 11);
      for (int i = 0; i < n; i += 2) {
        auto x = g.next();
        for (int k = 0; k < 2 && i + k < n; ++k) {
          auto rank = v.slots[((x >> (32 * k)) & 0xffffffffULL) % slots];
          if (i + k > 0) buf.push_back(' ');
          buf += v.words[rank];
          ++in.counts[rank];
        }
      }
      buf.push_back('\n');
      in.lines += 1;
      in.words += n;
      if (buf.size() >= (std::size_t{8} << 20)) flush();
    }
    flush();
    out.close();
    EMBER_EXPECTS(out, invalid_input, path.string() + ": cannot write");
    in.files.push_back(path);
  }
  bar.finish();
  std::vector<int> ranks;
  for (int r = 0; r < vocabulary_size; ++r)
    if (in.counts[static_cast<std::size_t>(r)] > 0) ranks.push_back(r);
  in.distinct = std::ssize(ranks);
  auto before = [&](int a, int b) {
    auto ca = in.counts[static_cast<std::size_t>(a)], cb = in.counts[static_cast<std::size_t>(b)];
    return ca != cb ? ca > cb
                    : v.words[static_cast<std::size_t>(a)] < v.words[static_cast<std::size_t>(b)];
  };
  auto k = std::min<std::size_t>(top_words, ranks.size());
  std::partial_sort(ranks.begin(), ranks.begin() + static_cast<std::ptrdiff_t>(k), ranks.end(),
                    before);
  for (std::size_t i = 0; i < k; ++i)
    in.top.emplace_back(v.words[static_cast<std::size_t>(ranks[i])],
                        in.counts[static_cast<std::size_t>(ranks[i])]);
  return in;
}

nlohmann::json top_json(const std::vector<std::pair<std::string, std::int64_t>>& top) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& [w, n] : top) j.push_back({w, n});
  return j;
}

/// What is wrong with ember's result (word, count; sorted) against the generator's counts.
std::vector<std::string> check_word_counts(const table_view& t, const text_input& in,
                                           const std::unordered_map<std::string_view, int>& rank) {
  std::vector<std::string> out;
  if (!t.has_column("word") || !t.has_column("count")) return {"the result has no word, count"};
  const auto& w = t.column("word");
  const auto& n = t.column("count");
  const auto* counts = n.data<std::int64_t>();
  if (t.num_rows() != in.distinct)
    out.push_back(std::to_string(t.num_rows()) + " distinct words, expected " +
                  std::to_string(in.distinct));
  std::int64_t total = 0;
  int wrong = 0;
  for (size_type i = 0; i < t.num_rows(); ++i) {
    std::string_view word(w.chars() + w.offsets()[i],
                          static_cast<std::size_t>(w.offsets()[i + 1] - w.offsets()[i]));
    total += counts[i];
    auto it = rank.find(word);
    auto want = it == rank.end() ? 0 : in.counts[static_cast<std::size_t>(it->second)];
    if (counts[i] != want && ++wrong <= 3)
      out.push_back("'" + std::string(word) + "' counted " + std::to_string(counts[i]) +
                    " times, written " + std::to_string(want));
    if (i < std::ssize(in.top) && (word != in.top[static_cast<std::size_t>(i)].first ||
                                   counts[i] != in.top[static_cast<std::size_t>(i)].second))
      out.push_back("word " + std::to_string(i + 1) + " of the top is '" + std::string(word) +
                    "' (" + std::to_string(counts[i]) + "), expected '" +
                    in.top[static_cast<std::size_t>(i)].first + "' (" +
                    std::to_string(in.top[static_cast<std::size_t>(i)].second) + ")");
  }
  if (wrong > 3) out.push_back(std::to_string(wrong) + " words counted wrong in all");
  if (total != in.words)
    out.push_back(std::to_string(total) + " words in all, expected " + std::to_string(in.words));
  return out;
}

int run_wordcount(const bench_jobs_options& o) {
  auto target = parse_size(o.size.empty() ? "256MB" : o.size, "--size");
  EMBER_EXPECTS(target > 0, invalid_input, "--size: must be more than 0 bytes");
  EMBER_EXPECTS(
      o.files >= 0, invalid_input,
      "--files: must be 1 or more, or 0 for two per worker (" + std::to_string(o.files) + ")");
  nlohmann::json parameters = o.cluster.parameters();
  parameters.update({{"size_bytes", target},
                     {"files", o.files},
                     {"rounds", o.rounds},
                     {"compare", o.compare},
                     {"seed", seed},
                     {"vocabulary", vocabulary_size}});
  bench_run run(o, "wordcount", parameters);
  run.connect();
  auto& c = *run.c;
  const int files = o.files > 0 ? o.files : 2 * std::max(1, c.num_workers());
  const int threads = std::max(1, c.num_workers());  // one thread per worker

  private_dir dir(fs::temp_directory_path() /
                  ("ember-bench-wordcount-" + std::to_string(::getpid())));
  vocabulary vocab;
  auto in = generate_text(vocab, dir.path, target, files, run.bar);
  std::unordered_map<std::string_view, int> rank;
  for (int r = 0; r < vocabulary_size; ++r)
    rank.emplace(vocab.words[static_cast<std::size_t>(r)], r);

  std::unique_ptr<peer_process> peer;
  nlohmann::json peer_info;
  if (o.compare == "duckdb") {
    std::vector<std::string> args{"--threads", std::to_string(threads), "--files"};
    for (const auto& f : in.files) args.push_back(f.string());
    peer = start_peer(o.python, "duckdb_wordcount.py", args, peer_info);
  }

  job_options jo;
  jo.inputs = in.files;
  std::vector<double> ember_s, peer_s, ceiling_s;
  std::vector<job_metrics> metrics;
  job_stages stages;
  nlohmann::json rounds = nlohmann::json::array();
  cluster_counters before;
  for (int round = -1; round < o.rounds; ++round) {
    const bool timed = round >= 0;
    if (round == 0) before = run.counters();
    nlohmann::json r{{"round", round_name(round)}};
    run.step = "wordcount " + round_name(round);
    auto t0 = clock_type::now();
    auto rep = run_job(c, "wordcount", jo);
    double s = seconds_since(t0);
    for (auto& d : check_word_counts(rep.result.view(), in, rank)) run.fail(round, "ember", d);
    r["ember_seconds"] = s;
    r["ember_stages"] = stage_seconds_json(rep.metrics);
    if (peer) {
      run.bar.update(run.step + ": duckdb", 0, 1);
      auto a = ask(*peer, "run");
      run.bar.update(run.step + ": duckdb", 1, 1);
      if (a["distinct"].get<std::int64_t>() != in.distinct)
        run.fail(round, "duckdb",
                 a["distinct"].dump() + " distinct words, expected " + std::to_string(in.distinct));
      if (a["total"].get<std::int64_t>() != in.words)
        run.fail(round, "duckdb",
                 a["total"].dump() + " words in all, expected " + std::to_string(in.words));
      if (a["top"] != top_json(in.top))
        run.fail(round, "duckdb",
                 "top words " + a["top"].dump() + ", expected " + top_json(in.top).dump());
      r["duckdb_seconds"] = a["seconds"];
      if (timed) peer_s.push_back(a["seconds"].get<double>());
    }
    double cs = read_files(in.files, in.bytes, threads);
    r["read_ceiling_seconds"] = cs;
    if (!timed) continue;
    ember_s.push_back(s);
    ceiling_s.push_back(cs);
    stages.add(rep.metrics);
    metrics.push_back(std::move(rep.metrics));
    rounds.push_back(r);
  }
  run.bar.finish();
  auto moved = counters_between(before, run.counters());
  if (peer) {
    peer->send_line("quit");
    peer.reset();
  }

  auto& report = run.report;
  const std::string stage_note =
      "a stage of the job's physical plan: first task start to last task end; rows and bytes are "
      "what its tasks produced (before any exchange)";
  for (std::size_t i = 0; i < stages.names.size(); ++i)
    report.add_stage({"wordcount: " + stages.names[i], stages.seconds[i], stages.rows[i],
                      stages.bytes[i], stage_note});
  const std::string job_stage = "wordcount: job";
  report.add_stage({job_stage, ember_s, in.lines, in.bytes,
                    "run_job(\"wordcount\") on the client, from submitting the plan to the sorted "
                    "(word, count) table in the client's memory; rows: input lines, bytes: input "
                    "file bytes (page cache warm)"});
  const double job_median = summarize(ember_s).median;
  const double bytes = static_cast<double>(in.bytes);
  report.add_comparison(
      {job_stage, "read() of the input files, a thread per worker, page cache warm", "ceiling",
       "bytes_per_second", bytes / job_median, bytes / summarize(ceiling_s).median});
  if (!peer_s.empty())
    report.add_comparison(
        {job_stage, peer_name(peer_info), "peer", "seconds", job_median, summarize(peer_s).median});
  else
    report.not_measured("duckdb", "not asked for: --compare duckdb");
  run.cluster_sections(moved, metrics.empty() ? nullptr : &metrics[median_index(ember_s)]);

  auto& d = report.details();
  d["peer_threads"] = threads;
  d["input"] = {{"files", in.files.size()},
                {"bytes", in.bytes},
                {"lines", in.lines},
                {"words", in.words},
                {"distinct_words", in.distinct},
                {"top", top_json(in.top)},
                {"what",
                 "lines of 5 to 15 words drawn from 100k pseudo-words with probability "
                 "proportional to 1 / rank, fixed seed; written once to a private temporary "
                 "folder the workers read by path"}};
  d["timed"] =
      "ember: run_job(\"wordcount\") from the files (read_text, tokenize, partial and final "
      "group-by over a shuffle, sort, gathered to the client); duckdb: CREATE TEMP TABLE AS "
      "SELECT word, count(*) FROM read_csv(lines) with string_split + unnest, GROUP BY word, "
      "ORDER BY count DESC, word, in one connection with SET threads = the workers; both from the "
      "files in the page cache, alternating rounds after one warm-up";
  d["checked"] =
      "every round, warm-up included: ember's every (word, count), the distinct and total words "
      "and the first 20 against the generator's counts; duckdb's distinct, total and first 20";
  d["rounds"] = rounds;
  d["ember_seconds"] = spread(ember_s);
  d["read_ceiling_seconds"] = spread(ceiling_s);
  if (!peer_s.empty()) {
    d["duckdb_seconds"] = spread(peer_s);
    d["peer"] = peer_info;
  }
  d["ember_input_bytes_per_second"] = bytes / job_median;
  return run.finish();
}

// ---- enrich -----------------------------------------------------------------------------------

aggregation agg(aggregation_kind kind, std::string column, std::string output) {
  return aggregation{kind, std::move(column), std::move(output)};
}

struct summary_row {
  std::string category;
  std::int64_t day = 0;  ///< days since 1970-01-01
  std::int64_t orders = 0;
  double revenue = 0;
};

std::vector<summary_row> summary_of(const table_view& t) {
  std::vector<summary_row> out;
  const auto& cat = t.column("category");
  const auto* day = t.column("day").data<std::int64_t>();
  const auto* orders = t.column("orders").data<std::int64_t>();
  const auto* revenue = t.column("revenue").data<double>();
  for (size_type i = 0; i < t.num_rows(); ++i) {
    auto ns = day[i];
    out.push_back({std::string(cat.chars() + cat.offsets()[i],
                               static_cast<std::size_t>(cat.offsets()[i + 1] - cat.offsets()[i])),
                   ns >= 0 ? ns / ns_per_day : -((-ns + ns_per_day - 1) / ns_per_day), orders[i],
                   revenue[i]});
  }
  return out;
}

/// The first difference between two summaries (empty when they agree): keys and orders exactly,
/// revenue within 1e-9 relative.
std::string summary_difference(const std::vector<summary_row>& a,
                               const std::vector<summary_row>& b) {
  if (a.size() != b.size())
    return std::to_string(a.size()) + " summary rows, expected " + std::to_string(b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto &x = a[i], &y = b[i];
    auto key = "(" + x.category + ", " + civil_date(x.day) + ")";
    if (x.category != y.category || x.day != y.day || x.orders != y.orders)
      return "row " + std::to_string(i + 1) + " is " + key + " with " + std::to_string(x.orders) +
             " orders, expected (" + y.category + ", " + civil_date(y.day) + ") with " +
             std::to_string(y.orders);
    if (!(std::abs(x.revenue - y.revenue) <= 1e-9 * std::max(1.0, std::abs(y.revenue))))
      return "revenue of " + key + " is " + format("%.6f", x.revenue) + ", expected " +
             format("%.6f", y.revenue);
  }
  return {};
}

/// The stage of `m` that reads the events (the fused pipeline), by the label in its name.
const stage_metrics* events_stage(const job_metrics& m, std::string_view also = {}) {
  for (const auto& s : m.stages)
    if (s.name.find("'events'") != std::string::npos &&
        (also.empty() || s.name.find(also) != std::string::npos))
      return &s;
  return nullptr;
}

const label_metrics* label_of(const job_metrics& m, std::string_view label) {
  for (const auto& l : m.labels)
    if (l.label == label) return &l;
  return nullptr;
}

std::int64_t count_of(const table& t) { return t.view().column("rows").data<std::int64_t>()[0]; }

int run_enrich(const bench_jobs_options& o) {
  auto scale = parse_size(o.size.empty() ? "1GB" : o.size, "--scale");
  EMBER_EXPECTS(scale > 0, invalid_input, "--scale: must be more than 0 bytes");
  EMBER_EXPECTS(o.write_compression == "none" || o.write_compression == "zstd", invalid_input,
                "--write-compression: unknown codec '" + o.write_compression +
                    "' (the codecs are: none, zstd)");
  nlohmann::json parameters = o.cluster.parameters();
  parameters.update({{"scale_bytes", scale},
                     {"rounds", o.rounds},
                     {"compare", o.compare},
                     {"write_compression", o.write_compression},
                     {"seed", seed}});
  bench_run run(o, "enrich", parameters);
  run.connect();
  auto& c = *run.c;
  const int threads = std::max(1, c.num_workers());  // one thread per worker

  private_dir dir(fs::temp_directory_path() / ("ember-bench-enrich-" + std::to_string(::getpid())));
  const auto root = dir.path / "store";
  const std::string items_name = "events-items";
  job_options jo;
  jo.scale_bytes = scale;
  jo.seed = seed;
  jo.input_root = root;
  jo.input_dataset = "events";
  jo.output_root = root;
  jo.output_compression =
      o.write_compression == "zstd" ? compression_codec::zstd : compression_codec::none;

  // The warm-up generates and commits the input first (events, events-items).
  run.step = "enrich warm-up (generating the input)";
  jo.output_dataset = "enriched-warm-up";
  auto warm = run_job(c, "enrich", jo);
  dataset_store store(root);
  const auto events = store.read_manifest("events");
  const auto items = store.read_manifest(items_name);
  std::vector<fs::path> event_files;
  for (std::size_t i = 0; i < events.partitions.size(); ++i)
    event_files.push_back(store.partition_path(events, i));
  const auto reference = summary_of(warm.result.view());

  auto check = [&](int round, const job_report& rep) {
    std::int64_t orders = 0;
    for (const auto& s : summary_of(rep.result.view())) orders += s.orders;
    if (orders != events.rows)
      run.fail(round, "ember",
               "the summary counts " + std::to_string(orders) + " orders, the events hold " +
                   std::to_string(events.rows));
    const auto& w = rep.written.back();
    if (w.rows != events.rows)
      run.fail(round, "ember",
               "the enriched dataset holds " + std::to_string(w.rows) + " rows, expected " +
                   std::to_string(events.rows));
    if (auto d = summary_difference(summary_of(rep.result.view()), reference); !d.empty())
      run.fail(round, "ember", "the summary differs from the warm-up's: " + d);
  };
  check(-1, warm);
  store.remove("enriched-warm-up");

  // The phases, as jobs of their own over the same input, each ending in a one-row aggregate.
  auto events_ds = [&] { return c.read_dataset(root, "events").label("events"); };
  auto joined = [&] {
    return events_ds()
        .join(c.read_dataset(root, items_name), {"item_id"}, join_kind::inner,
              join_strategy::broadcast)
        .label("joined");
  };
  auto read_job = [&] {
    return events_ds().aggregate({agg(aggregation_kind::count_all, "", "rows"),
                                  agg(aggregation_kind::sum, "amount", "amount")});
  };
  auto join_job = [&] {
    return joined().aggregate({agg(aggregation_kind::count_all, "", "rows"),
                               agg(aggregation_kind::sum, "price", "price")});
  };
  auto compute_job = [&] {
    return joined()
        .with_columns(enrich_computed_columns())
        .label("enriched")
        .aggregate({agg(aggregation_kind::count_all, "", "rows"),
                    agg(aggregation_kind::sum, "revenue", "revenue")});
  };
  struct phase_job {
    const char* name;
    std::function<dataset()> build;
  };
  const std::vector<phase_job> phase_jobs = {
      {"read", read_job}, {"read + join", join_job}, {"read + join + compute", compute_job}};

  std::unique_ptr<peer_process> peer;
  nlohmann::json peer_info;
  std::vector<summary_row> peer_summary;
  if (o.compare == "duckdb") {
    // DuckDB starts from its own format too: the input exported once as CSV and loaded into its
    // database file (not timed), as bench/peers/duckdb_enrich.py does it.
    auto csv = dir.path / "duckdb-input";
    fs::create_directories(csv);
    for (std::size_t i = 0; i < events.partitions.size(); ++i) {
      run.bar.update("exporting the input for duckdb", static_cast<long long>(i),
                     std::ssize(events.partitions));
      write_csv_file(store.read_partition(events, i).view(),
                     csv / ("events-" + std::to_string(i) + ".csv"));
    }
    write_csv_file(store.read(items_name, items.version).view(), csv / "items.csv");
    run.bar.finish();
    run.bar.update("loading the input into duckdb", 0, 1);
    peer = start_peer(o.python, "duckdb_enrich.py",
                      {"--peer", "--events-csv", (csv / "events-*.csv").string(), "--items-csv",
                       (csv / "items.csv").string(), "--db", (dir.path / "duck.db").string(),
                       "--threads", std::to_string(threads)},
                      peer_info);
    run.bar.update("loading the input into duckdb", 1, 1);
    run.bar.finish();
    fs::remove_all(csv);
  }

  std::vector<double> job_s, fused_s, items_s, summary_s, peer_s, read_ceiling_s, write_ceiling_s;
  std::vector<std::vector<double>> phase_s(phase_jobs.size());
  std::vector<job_metrics> metrics;
  nlohmann::json rounds = nlohmann::json::array();
  cluster_counters moved;
  std::int64_t written_rows = 0, written_bytes = 0, enriched_rows = 0, enriched_bytes = 0,
               joined_rows = 0, joined_bytes = 0, events_table_bytes = 0;
  std::vector<std::int64_t> written_sizes;
  std::size_t written_partitions = 0;
  for (int round = -1; round < o.rounds; ++round) {
    const bool timed = round >= 0;
    nlohmann::json r{{"round", round_name(round)}};
    run.step = "enrich " + round_name(round);
    std::optional<job_report> rep;
    if (timed) {
      // The warm-up already ran the whole job: this round's full run, between settled counters.
      auto before = run.counters();
      jo.output_dataset = "enriched-" + std::to_string(round + 1);
      auto t0 = clock_type::now();
      rep = run_job(c, "enrich", jo);
      double s = seconds_since(t0);
      auto delta = counters_between(before, run.counters());
      auto& t = moved.tiers;
      t.spilled_to_host_bytes += delta.tiers.spilled_to_host_bytes;
      t.spilled_to_disk_bytes += delta.tiers.spilled_to_disk_bytes;
      t.unspilled_bytes += delta.tiers.unspilled_bytes;
      t.spills += delta.tiers.spills;
      t.unspills += delta.tiers.unspills;
      t.spill_seconds += delta.tiers.spill_seconds;
      t.unspill_seconds += delta.tiers.unspill_seconds;
      t.device_peak_bytes = delta.tiers.device_peak_bytes;
      t.device_limit_bytes = delta.tiers.device_limit_bytes;
      moved.residency.hits += delta.residency.hits;
      moved.residency.misses += delta.residency.misses;
      check(round, *rep);
      const auto& m = rep->metrics;
      const auto* fused = events_stage(m, "write_dataset");
      EMBER_EXPECTS(fused != nullptr, error,
                    "enrich: no stage of the job reads 'events' and writes the dataset");
      double items_stage = 0, summary = 0;
      bool after = false;
      for (const auto& st : m.stages) {
        if (&st == fused) {
          after = true;
        } else if (after) {
          summary += st.seconds;
        } else {
          items_stage += st.seconds;
        }
      }
      const auto& w = rep->written.back();
      written_rows = w.rows;
      written_bytes = w.bytes;
      written_partitions = w.partitions;
      auto manifest = store.read_manifest(w.name, w.version);
      written_sizes.clear();
      for (const auto& p : manifest.partitions) written_sizes.push_back(p.bytes);
      if (const auto* l = label_of(m, "enriched")) {
        enriched_rows = l->rows;
        enriched_bytes = l->bytes;
      }
      if (const auto* l = label_of(m, "events")) events_table_bytes = l->bytes;
      r["ember_seconds"] = s;
      r["ember_stages"] = stage_seconds_json(m);
      job_s.push_back(s);
      fused_s.push_back(fused->seconds);
      items_s.push_back(items_stage);
      summary_s.push_back(summary);
      store.remove(w.name);
    }
    nlohmann::json phases;
    for (std::size_t p = 0; p < phase_jobs.size(); ++p) {
      run.step = "enrich " + round_name(round) + " (" + phase_jobs[p].name + ")";
      auto res = phase_jobs[p].build().run();
      if (auto n = count_of(res.result); n != events.rows)
        run.fail(round, "ember",
                 std::string("the ") + phase_jobs[p].name + " job saw " + std::to_string(n) +
                     " rows, the events hold " + std::to_string(events.rows));
      const auto* st = events_stage(res.metrics);
      EMBER_EXPECTS(st != nullptr, error, "enrich: no stage of the phase job reads 'events'");
      phases[phase_jobs[p].name] = st->seconds;
      if (const auto* l = label_of(res.metrics, "joined")) {
        joined_rows = l->rows;
        joined_bytes = l->bytes;
      }
      if (timed) phase_s[p].push_back(st->seconds);
    }
    r["ember_phase_job_seconds"] = phases;
    if (peer) {
      run.bar.update(run.step = "enrich " + round_name(round) + " (duckdb)", 0, 1);
      auto a = ask(*peer, "run");
      run.bar.update(run.step, 1, 1);
      std::vector<summary_row> theirs;
      for (const auto& row : a["summary"]) {
        // "YYYY-MM-DD" back to days since the epoch: the summary's days are whole dates.
        auto text = row[1].get<std::string>();
        int y = std::stoi(text.substr(0, 4)), mo = std::stoi(text.substr(5, 2)),
            dd = std::stoi(text.substr(8, 2));
        y -= mo <= 2 ? 1 : 0;
        int era = (y >= 0 ? y : y - 399) / 400;
        int yoe = y - era * 400;
        int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + dd - 1;
        int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        theirs.push_back({row[0].get<std::string>(), std::int64_t{era} * 146097 + doe - 719468,
                          row[2].get<std::int64_t>(),
                          row[3].is_null() ? 0.0 : row[3].get<double>()});
      }
      if (auto d = summary_difference(theirs, reference); !d.empty())
        run.fail(round, "duckdb", "its summary differs from ember's: " + d);
      if (a["enriched_rows"].get<std::int64_t>() != events.rows)
        run.fail(round, "duckdb",
                 "its enriched table holds " + a["enriched_rows"].dump() + " rows, expected " +
                     std::to_string(events.rows));
      peer_info["file_bytes"] = a["file_bytes"];
      r["duckdb_seconds"] = a["seconds"];
      if (timed) peer_s.push_back(a["seconds"].get<double>());
    }
    if (!timed) continue;
    double rs = read_files(event_files, events.bytes, threads);
    double ws = write_files(dir.path / "ceiling", written_sizes, threads);
    r["read_ceiling_seconds"] = rs;
    r["write_ceiling_seconds"] = ws;
    read_ceiling_s.push_back(rs);
    write_ceiling_s.push_back(ws);
    metrics.push_back(std::move(rep->metrics));
    rounds.push_back(r);
  }
  run.bar.finish();
  if (peer) {
    peer->send_line("quit");
    peer.reset();
  }

  // Per round: read = the read job's stage; join and compute = what each longer job's stage
  // added; write = the full job's fused stage minus the read + join + compute job's. Noise can
  // make a difference negative on tiny inputs: it is reported as 0.
  auto difference = [](const std::vector<double>& a, const std::vector<double>& b) {
    std::vector<double> out;
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
      out.push_back(std::max(0.0, a[i] - b[i]));
    return out;
  };
  auto& report = run.report;
  const std::string phase_note =
      " The job runs read, join, computed columns and write fused in one pipelined stage, so "
      "this phase is measured with jobs of its own over the same input in the same round, each "
      "ending in a one-row count/sum (stage seconds: first task start to last task end); a "
      "difference below 0 (noise) counts as 0.";
  report.add_stage({"enrich: read", phase_s[0], events.rows, events.bytes,
                    "read_dataset of the events (all columns, from the files or from the workers' "
                    "partition stores when still resident), plus a partial count/sum; bytes: the "
                    "events' partition files." +
                        phase_note});
  report.add_stage({"enrich: join", difference(phase_s[1], phase_s[0]), joined_rows, joined_bytes,
                    "the broadcast join with the items: the read + join job's stage minus the read "
                    "job's; rows and bytes: the joined table (table bytes)." +
                        phase_note});
  report.add_stage({"enrich: compute", difference(phase_s[2], phase_s[1]), enriched_rows,
                    enriched_bytes,
                    "the computed columns (revenue, day, bucket, is_mobile, is_big_order): the "
                    "read + join + compute job's stage minus the read + join job's; rows and "
                    "bytes: the enriched table (table bytes)." +
                        phase_note});
  report.add_stage({"enrich: write", difference(fused_s, phase_s[2]), written_rows, written_bytes,
                    "writing the enriched dataset (partition files synced, then one commit): the "
                    "full job's fused stage minus the read + join + compute job's; bytes: the "
                    "written files (" +
                        o.write_compression + ")." + phase_note});
  report.add_stage({"enrich: read + join + compute + write", fused_s, events.rows, written_bytes,
                    "the full job's fused stage as measured (read_dataset 'events' -> broadcast "
                    "join -> computed columns -> write_dataset); rows: events in, bytes: files "
                    "written"});
  report.add_stage({"enrich: items (broadcast side)", items_s, items.rows, items.bytes,
                    "the stage that reads the items for the broadcast join; bytes: their files"});
  report.add_stage({"enrich: summary", summary_s, events.rows, written_bytes,
                    "the daily revenue summary read back from the written version: its stages "
                    "(read_dataset of category, day, revenue -> partial aggregate, shuffle -> "
                    "final aggregate, gather -> sort) summed"});
  const std::string job_stage = "enrich: job";
  report.add_stage(
      {job_stage, job_s, events.rows, events.bytes,
       "run_job(\"enrich\") on the client: read, join, compute, write and commit the "
       "enriched dataset, then its summary read back; rows: events, bytes: the events' "
       "partition files"});

  const double read_bytes = static_cast<double>(events.bytes);
  const double write_bytes = static_cast<double>(written_bytes);
  auto med = [](const std::vector<double>& v) { return summarize(v).median; };
  if (med(phase_s[0]) > 0)
    report.add_comparison({"enrich: read",
                           "read() of the events' partition files, a thread per worker, "
                           "page cache warm",
                           "ceiling", "bytes_per_second", read_bytes / med(phase_s[0]),
                           read_bytes / med(read_ceiling_s)});
  // No ceiling beside the write phase alone: its seconds are a difference of two jobs, and the
  // fused stage overlaps one task's write and sync with another's work, so a plain write() +
  // fsync of the same bytes can take longer than that difference. The whole job is compared
  // with its file I/O instead (below), and the write ceiling is in the details.
  report.add_comparison({job_stage,
                         "read() of the events' files + write() + fsync of the enriched bytes, a "
                         "thread per worker (the job's file I/O alone)",
                         "ceiling", "bytes_per_second", read_bytes / med(job_s),
                         read_bytes / (med(read_ceiling_s) + med(write_ceiling_s))});
  if (!peer_s.empty())
    report.add_comparison(
        {job_stage, peer_name(peer_info), "peer", "seconds", med(job_s), med(peer_s)});
  else
    report.not_measured("duckdb", "not asked for: --compare duckdb");
  run.cluster_sections(moved, metrics.empty() ? nullptr : &metrics[median_index(job_s)]);

  auto& d = report.details();
  d["peer_threads"] = threads;
  d["input"] = {{"events_rows", events.rows},
                {"events_file_bytes", events.bytes},
                {"events_table_bytes", events_table_bytes},
                {"events_partitions", events.partitions.size()},
                {"items_rows", items.rows},
                {"items_file_bytes", items.bytes}};
  d["output"] = {{"rows", written_rows},
                 {"file_bytes", written_bytes},
                 {"partitions", written_partitions},
                 {"table_bytes", enriched_bytes},
                 {"compression", o.write_compression},
                 {"summary_rows", reference.size()}};
  d["output_over_input_bytes"] = {
      {"files", read_bytes > 0 ? write_bytes / read_bytes : 0.0},
      {"tables", events_table_bytes > 0
                     ? static_cast<double>(enriched_bytes) / static_cast<double>(events_table_bytes)
                     : 0.0}};
  d["timed"] =
      "ember: run_job(\"enrich\") from committed datasets to a committed, synced enriched dataset "
      "and its summary (the workers may keep the events' partitions resident between rounds); "
      "duckdb: connect, SET threads = the workers, CREATE OR REPLACE TABLE enriched AS (the same "
      "join and columns), CHECKPOINT, the same summary, close, from its own database file "
      "(loaded once from a CSV export of the same datasets)";
  d["checked"] =
      "every round: the summary's orders add up to the events' rows, the enriched dataset holds "
      "every event, the summary equals the warm-up's (orders exactly, revenue within 1e-9 "
      "relative); the phase jobs count every event; duckdb's summary and enriched rows equal "
      "ember's";
  d["counters_what"] =
      "tiers and residency: the workers' counters around each round's full job (settled "
      "heartbeats), summed over the rounds; the phase jobs are not counted";
  d["rounds"] = rounds;
  d["ember_seconds"] = spread(job_s);
  d["read_ceiling_seconds"] = spread(read_ceiling_s);
  d["write_ceiling_seconds"] = spread(write_ceiling_s);
  if (!peer_s.empty()) {
    d["duckdb_seconds"] = spread(peer_s);
    d["peer"] = peer_info;
  }
  std::cout << "enrich: " << events.rows << " events (" << human_bytes(read_bytes)
            << " of files) -> " << written_rows << " enriched rows (" << human_bytes(write_bytes)
            << " of files, " << o.write_compression << "): output / input bytes "
            << format("%.2f", read_bytes > 0 ? write_bytes / read_bytes : 0.0) << "\n";
  return run.finish();
}

}  // namespace

int run_bench_jobs(const bench_jobs_options& options) {
  check_common(options);
  return options.job == bench_job::wordcount ? run_wordcount(options) : run_enrich(options);
}

}  // namespace ember::cli
