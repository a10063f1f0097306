// The dataset store: partitions written and committed read back as one table (projected, per
// partition, per version); readers see exactly the current version; a writer process killed at
// every step of the commit leaves exactly the old or the new version and leftovers that clean_up
// removes; racing writers with one expected parent: one commits, the other is told why; stale
// fencing tokens are refused; damaged manifests, CURRENT files and partition files are reported
// naming the file; remove is all or nothing; retention keeps the newest versions.
#include <gtest/gtest.h>

#include <barrier>
#include <chrono>
#include <cmath>
#include <ember/host/column_factories.hpp>
#include <ember/host/dataset_store.hpp>
#include <ember/host/error.hpp>
#include <ember/host/partition_file.hpp>
#include <ember/host/process.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.hpp"
#include "common/tables.hpp"
#include "common/temp_dir.hpp"

namespace ember::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path writer_program() {
  const char* p = std::getenv("EMBER_TEST_DATASET_WRITER");
  return p != nullptr ? fs::path(p) : fs::path(EMBER_TEST_DATASET_WRITER);
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

// A table of the named columns (make_table's pairs cannot come from a braced list: columns move).
template <class... Cols>
table table_of(const std::vector<std::string>& names, Cols&&... cols) {
  std::vector<column> c;
  (c.push_back(std::forward<Cols>(cols)), ...);
  return table(std::move(c), names);
}

// A partition of `rows` rows whose values depend on `seed`.
table sample(std::uint64_t seed, std::size_t rows) {
  return table_of({"id", "score", "name"}, random_int64(rows, -1000, 1000, 0.0, seed),
                  random_float64(rows, 0, 1, 0.2, seed + 1),
                  random_strings(rows, 30, 0.1, seed + 2));
}

// Several partitions of one version.
std::vector<table> samples(std::uint64_t seed, std::vector<std::size_t> sizes) {
  std::vector<table> out;
  for (std::size_t i = 0; i < sizes.size(); ++i) out.push_back(sample(seed * 100 + i, sizes[i]));
  return out;
}

// Tables are move-only: no initializer lists of them.
template <class... T>
std::vector<table> tables(T&&... t) {
  std::vector<table> out;
  (out.push_back(std::forward<T>(t)), ...);
  return out;
}

std::vector<row> rows_of_all(const std::vector<table>& parts) {
  std::vector<row> out;
  for (const auto& t : parts) {
    auto r = rows_of(t.view());
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

std::uint64_t commit(dataset_store& store, const std::string& name, const std::vector<table>& parts,
                     const commit_options& options = {}) {
  auto w = store.begin_write(name);
  for (const auto& t : parts) (void)w.write_partition(t.view());
  return w.commit(options);
}

// The names in a folder (empty when it is missing).
std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    out.insert(it->path().filename().string());
  return out;
}

std::string digits(std::uint64_t v) {
  char text[32];
  std::snprintf(text, sizeof text, "%020llu", static_cast<unsigned long long>(v));
  return text;
}

// The names of a version's manifest and folder (built by appending: GCC 12 warns falsely about
// "literal" + std::string&&).
std::string manifest_file(std::uint64_t v) {
  std::string out = "manifest-";
  out += digits(v);
  out += ".json";
  return out;
}
std::string version_dir(std::uint64_t v) {
  std::string out = "v";
  out += digits(v);
  return out;
}

// What a committed dataset's folder holds once clean_up has run with versions `kept`.
std::set<std::string> clean_layout(const std::vector<std::uint64_t>& kept) {
  std::set<std::string> out = {"CURRENT", ".lock", "_staging"};
  for (auto v : kept) {
    out.insert(manifest_file(v));
    out.insert(version_dir(v));
  }
  return out;
}

// The input partition files a writer process reads.
std::vector<std::string> input_files(const temp_dir& dir, const std::string& prefix,
                                     const std::vector<table>& parts) {
  std::vector<std::string> out;
  partition_write_options o;
  o.sync = false;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    auto p = dir.path() / (prefix + "-" + std::to_string(i) + ".emb");
    (void)write_partition_file(p, parts[i].view(), o);
    out.push_back(p.string());
  }
  return out;
}

// Statistics that cannot be a file's: one column's null count off by one.
std::vector<column_stats> sample_stats_mismatch(const table& t) {
  auto info_stats = std::vector<column_stats>(static_cast<std::size_t>(t.num_columns()));
  info_stats[0].null_count = 12345;
  return info_stats;
}

struct writer_run {
  int exit_code = -1;
  std::string out;
};

writer_run run_writer(const temp_dir& dir, const fs::path& root, const std::string& name,
                      std::vector<std::string> args, const std::vector<std::string>& env) {
  static int runs = 0;
  std::vector<std::string> argv = {writer_program().string(), root.string(), name};
  argv.insert(argv.end(), args.begin(), args.end());
  child_process p(argv, dir.path() / ("writer" + std::to_string(runs++)), env);
  auto code = p.wait_exit(60s);
  EXPECT_TRUE(code.has_value()) << "the writer did not exit: " << p.err();
  return {code.value_or(-1), p.out() + p.err()};
}

// ---- round trips
// ----------------------------------------------------------------------------------

TEST(dataset_store, partitions_round_trip_as_one_table_with_projection) {
  temp_dir dir;
  dataset_store store(dir.path() / "store");
  auto parts = samples(1, {1000, 1, 0, 2500});
  auto w = store.begin_write("events");
  EXPECT_EQ(w.base_version(), 0u);
  EXPECT_EQ(w.dataset(), "events");
  EXPECT_TRUE(fs::is_directory(w.staging_dir()));
  std::vector<dataset_partition> written;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    partition_write_options o;
    o.compression = i % 2 == 0 ? compression_codec::zstd : compression_codec::none;
    o.row_group_rows = 700;
    o.sync = i != 1;  // commit syncs what was written without
    written.push_back(w.write_partition(parts[i].view(), o));
  }
  EXPECT_FALSE(store.current_version("events"));  // nothing is visible before the commit
  EXPECT_EQ(w.commit(), 1u);
  EXPECT_FALSE(fs::exists(w.staging_dir()));

  EXPECT_EQ(store.current_version("events"), 1u);
  EXPECT_EQ(store.list(), std::vector<std::string>{"events"});
  auto all = store.read("events");
  EXPECT_EQ(all.names(), (std::vector<std::string>{"id", "score", "name"}));
  EXPECT_EQ(rows_of(all.view()), rows_of_all(parts));

  auto projected = store.read("events", std::nullopt, {"name", "id"});
  EXPECT_EQ(projected.names(), (std::vector<std::string>{"name", "id"}));
  std::vector<table> expected;
  for (const auto& t : parts) expected.push_back(copy_table(t.view().select({"name", "id"})));
  EXPECT_EQ(rows_of(projected.view()), rows_of_all(expected));

  auto m = store.read_manifest("events");
  EXPECT_EQ(m.dataset, "events");
  EXPECT_EQ(m.version, 1u);
  EXPECT_EQ(m.parent_version, 0u);
  EXPECT_EQ(m.writer, w.id());
  EXPECT_FALSE(m.fence);
  EXPECT_LT(std::chrono::abs(std::chrono::system_clock::now() - m.created), 60s);
  EXPECT_EQ(m.schema, (std::vector<partition_column>{{"id", type_id::int64, false},
                                                     {"score", type_id::float64, true},
                                                     {"name", type_id::string, true}}));
  EXPECT_EQ(m.partitions, written);
  EXPECT_EQ(m.rows, 1000 + 1 + 0 + 2500);
  size_type bytes = 0;
  for (std::size_t i = 0; i < m.partitions.size(); ++i) {
    auto path = store.partition_path(m, i);
    EXPECT_EQ(path.parent_path().filename(), version_dir(1));
    auto info = read_partition_info(path);
    EXPECT_EQ(m.partitions[i].bytes, info.file_bytes);
    EXPECT_EQ(m.partitions[i].footer_checksum, info.footer_checksum);
    EXPECT_EQ(m.partitions[i].stats, info.stats);
    bytes += info.file_bytes;
    EXPECT_EQ(rows_of(store.read_partition(m, i).view()), rows_of(parts[i].view()));
  }
  EXPECT_EQ(m.bytes, bytes);
  auto ids = copy_values<std::int64_t>(parts[0].view().column(0));
  EXPECT_EQ(m.partitions[0].stats[0].min.as_int(), *std::min_element(ids.begin(), ids.end()));
  EXPECT_EQ(m.partitions[0].stats[0].max.as_int(), *std::max_element(ids.begin(), ids.end()));

  expect_rejected(
      [&] {
        (void)store.read("events", std::nullopt, {"id", "nope"});
      },
      {"dataset 'events' has no column 'nope'", "id, score, name"});
  expect_rejected([&] { (void)store.read_partition(m, 4); }, {"has no partition 4", "it has 4"});
}

TEST(dataset_store, a_write_with_no_partitions_and_partitions_of_zero_rows) {
  temp_dir dir;
  dataset_store store(dir.path());
  auto w = store.begin_write("empty");
  EXPECT_EQ(w.commit(), 1u);
  auto m = store.read_manifest("empty");
  EXPECT_TRUE(m.schema.empty());
  EXPECT_TRUE(m.partitions.empty());
  EXPECT_EQ(store.read("empty").num_columns(), 0);

  EXPECT_EQ(commit(store, "zero", tables(sample(3, 0))), 1u);
  auto t = store.read("zero");
  EXPECT_EQ(t.num_rows(), 0);
  EXPECT_EQ(t.names(), (std::vector<std::string>{"id", "score", "name"}));
  EXPECT_EQ(commit(store, "zero", tables(sample(3, 0), sample(4, 0))), 2u);
  EXPECT_EQ(store.read("zero").num_rows(), 0);
}

TEST(dataset_store, every_partition_of_a_write_has_the_same_columns) {
  temp_dir dir;
  dataset_store store(dir.path());
  auto w = store.begin_write("events");
  (void)w.write_partition(sample(1, 10).view());
  auto other = table_of({"id", "x"}, random_int64(5, 0, 9, 0, 1), random_int32(5, 0, 9, 0, 2));
  expect_rejected([&] { (void)w.write_partition(other.view()); },
                  {"dataset 'events': partition 1 has the columns (id int64, x int32)",
                   "(id int64, score float64, name string)"});
  // Nullability may differ: the manifest's column is nullable when any partition's is.
  auto no_nulls = table_of({"id", "score", "name"}, random_int64(5, 0, 9, 0, 1),
                           random_float64(5, 0, 1, 0, 2), random_strings(5, 3, 0, 3));
  (void)w.write_partition(no_nulls.view());
  EXPECT_EQ(w.commit(), 1u);
  EXPECT_TRUE(store.read_manifest("events").schema[1].nullable);
  EXPECT_EQ(store.read("events").num_rows(), 15);
  EXPECT_THROW((void)w.write_partition(no_nulls.view()), logic_error);
  EXPECT_THROW((void)w.commit(), logic_error);
}

TEST(dataset_store, versions_increase_and_readers_see_exactly_the_current_one) {
  temp_dir dir;
  dataset_store store(dir.path());
  std::vector<std::vector<table>> contents;
  for (std::uint64_t v = 1; v <= 3; ++v) {
    contents.push_back(samples(v, {100 * v, 7}));
    EXPECT_EQ(commit(store, "t", contents.back()), v);
    EXPECT_EQ(store.current_version("t"), v);
    EXPECT_EQ(rows_of(store.read("t").view()), rows_of_all(contents.back()));
  }
  EXPECT_EQ(store.versions("t"), (std::vector<std::uint64_t>{3, 2, 1}));
  for (std::uint64_t v = 1; v <= 3; ++v) {
    EXPECT_EQ(rows_of(store.read("t", v).view()), rows_of_all(contents[v - 1]));
    EXPECT_EQ(store.read_manifest("t", v).parent_version, v - 1);
  }
  expect_rejected([&] { (void)store.read("t", 4); },
                  {"dataset 't' has no version 4 (its versions: 3, 2, 1)"});
  expect_rejected([&] { (void)store.read("t", 0); }, {"has no version 0"});

  // A reader holding a version's manifest reads that version while newer ones are committed.
  auto held = store.read_manifest("t");
  auto late = store.begin_write("t");
  EXPECT_EQ(late.base_version(), 3u);
  EXPECT_EQ(commit(store, "t", samples(9, {5})), 4u);
  (void)late.write_partition(sample(10, 3).view());
  EXPECT_EQ(late.commit(), 5u);  // no expected parent: the last commit wins
  EXPECT_EQ(store.read_manifest("t").parent_version, 4u);
  EXPECT_EQ(rows_of(store.read_partition(held, 0).view()), rows_of(contents[2][0].view()));
  EXPECT_EQ(store.read("t").num_rows(), 3);
}

TEST(dataset_store, nothing_of_a_write_is_visible_before_commit_and_abort_leaves_nothing) {
  temp_dir dir;
  dataset_store store(dir.path());
  {
    auto w = store.begin_write("events");
    (void)w.write_partition(sample(1, 50).view());
    EXPECT_FALSE(store.current_version("events"));
    EXPECT_TRUE(store.list().empty());
    EXPECT_TRUE(store.versions("events").empty());
    expect_rejected([&] { (void)store.read("events"); },
                    {"no dataset 'events' (the store at", "is empty)"});
  }  // destroyed: aborted
  EXPECT_TRUE(entries(dir.path() / "events" / "_staging").empty());
  EXPECT_EQ(commit(store, "events", tables(sample(2, 5))), 1u);
  auto w = store.begin_write("events");
  (void)w.write_partition(sample(3, 50).view());
  auto staging = w.staging_dir();
  w.abort();
  EXPECT_FALSE(fs::exists(staging));
  EXPECT_THROW((void)w.commit(), logic_error);
  EXPECT_EQ(store.clean_up().total(), 0u);
  EXPECT_EQ(entries(dir.path() / "events"), clean_layout({1}));
}

TEST(dataset_store, names_are_validated_and_unknown_datasets_named) {
  temp_dir dir;
  dataset_store store(dir.path());
  for (std::string bad : {"", "a/b", "..", ".", ".hidden", "a b", "caf\xc3\xa9", "x:y"})
    expect_rejected([&] { (void)store.begin_write(bad); }, {"invalid dataset name '" + bad + "'"});
  expect_rejected([&] { (void)store.current_version(std::string(201, 'a')); },
                  {"201 characters, more than 200"});
  (void)store.current_version(std::string(200, 'a'));
  EXPECT_EQ(commit(store, "b.v2_x-1", tables(sample(1, 3))), 1u);
  EXPECT_EQ(commit(store, "a", tables(sample(1, 3))), 1u);
  EXPECT_EQ(store.list(), (std::vector<std::string>{"a", "b.v2_x-1"}));
  expect_rejected([&] { (void)store.read_manifest("c"); },
                  {"no dataset 'c' (the store has: a, b.v2_x-1)"});
  expect_rejected([&] { store.remove("c"); }, {"no dataset 'c' (the store has: a, b.v2_x-1)"});
}

// ---- crashes
// --------------------------------------------------------------------------------------

const std::vector<std::string> crash_steps = {"after_stage",        "after_version_dir",
                                              "after_manifest_tmp", "after_manifest",
                                              "after_current_tmp",  "after_current"};

TEST(dataset_store, a_writer_killed_at_each_commit_step_leaves_the_old_or_the_new_version) {
  for (const auto& step : crash_steps) {
    SCOPED_TRACE(step);
    temp_dir dir;
    auto root = dir.path() / "store";
    dataset_store store(root);
    auto old_parts = samples(1, {300, 20});
    auto new_parts = samples(2, {50, 400, 1});
    EXPECT_EQ(commit(store, "events", old_parts), 1u);
    auto run = run_writer(dir, root, "events", input_files(dir, "new", new_parts),
                          {"EMBER_DATASET_CRASH_AT=" + step});
    ASSERT_EQ(run.exit_code, 42) << run.out;

    bool committed = step == "after_current";
    std::uint64_t visible = committed ? 2 : 1;
    const auto& content = committed ? new_parts : old_parts;
    EXPECT_EQ(store.current_version("events"), visible);
    EXPECT_EQ(store.list(), std::vector<std::string>{"events"});
    EXPECT_EQ(rows_of(store.read("events").view()), rows_of_all(content));
    EXPECT_EQ(store.read_manifest("events").partitions.size(), content.size());
    if (committed) {
      EXPECT_EQ(store.versions("events"), (std::vector<std::uint64_t>{2, 1}));
    } else {
      EXPECT_EQ(store.versions("events"), (std::vector<std::uint64_t>{1}));
      expect_rejected([&] { (void)store.read("events", 2); },
                      {"dataset 'events' has no version 2 (its versions: 1)"});
    }
    EXPECT_EQ(rows_of(store.read("events", 1).view()), rows_of_all(old_parts));

    auto report = store.clean_up();
    EXPECT_EQ(report.expired, 0u);
    EXPECT_EQ(report.total() == 0, committed)
        << "staging " << report.staging << ", uncommitted " << report.uncommitted << ", temporary "
        << report.temporary;
    EXPECT_EQ(entries(root / "events"), clean_layout(committed ? std::vector<std::uint64_t>{2, 1}
                                                               : std::vector<std::uint64_t>{1}));
    EXPECT_TRUE(entries(root / "events" / "_staging").empty());

    auto next_parts = samples(3, {9});
    EXPECT_EQ(commit(store, "events", next_parts, {visible, {}}), visible + 1);
    EXPECT_EQ(rows_of(store.read("events").view()), rows_of_all(next_parts));
    EXPECT_EQ(store.clean_up(3).total(), 0u);
  }
}

TEST(dataset_store, a_first_commit_killed_before_the_switch_leaves_no_dataset) {
  for (const auto& step : crash_steps) {
    if (step == "after_current") continue;
    SCOPED_TRACE(step);
    temp_dir dir;
    auto root = dir.path() / "store";
    dataset_store store(root);
    auto run = run_writer(dir, root, "fresh", input_files(dir, "in", samples(4, {30})),
                          {"EMBER_DATASET_CRASH_AT=" + step});
    ASSERT_EQ(run.exit_code, 42) << run.out;
    EXPECT_FALSE(store.current_version("fresh"));
    EXPECT_TRUE(store.list().empty());
    expect_rejected([&] { (void)store.read("fresh"); }, {"no dataset 'fresh'"});
    EXPECT_GE(store.clean_up().total(), 1u);
    EXPECT_EQ(entries(root / "fresh"), (std::set<std::string>{".lock", "_staging"}));
    EXPECT_EQ(commit(store, "fresh", samples(5, {3}), {0, {}}), 1u);
  }
}

TEST(dataset_store, a_commit_after_a_crash_skips_the_leftover_which_stays_invisible) {
  temp_dir dir;
  auto root = dir.path() / "store";
  dataset_store store(root);
  EXPECT_EQ(commit(store, "t", samples(1, {10})), 1u);
  auto run = run_writer(dir, root, "t", input_files(dir, "in", samples(2, {20})),
                        {"EMBER_DATASET_CRASH_AT=after_manifest"});
  ASSERT_EQ(run.exit_code, 42) << run.out;
  // Version 2 exists on disk but was never committed: the next commit makes version 3 on
  // version 1, and version 2 is not one of the dataset's.
  EXPECT_EQ(commit(store, "t", samples(3, {30})), 3u);
  EXPECT_EQ(store.read_manifest("t").parent_version, 1u);
  EXPECT_EQ(store.versions("t"), (std::vector<std::uint64_t>{3, 1}));
  expect_rejected([&] { (void)store.read_manifest("t", 2); }, {"has no version 2"});
  auto report = store.clean_up(5);
  EXPECT_EQ(report.uncommitted, 1u);
  EXPECT_EQ(report.total(), 2u);  // and the crashed writer's staging lock file
  EXPECT_EQ(entries(root / "t"), clean_layout({3, 1}));
}

// ---- concurrency
// ----------------------------------------------------------------------------------

TEST(dataset_store, two_writer_processes_racing_from_one_version_one_commits) {
  temp_dir dir;
  auto root = dir.path() / "store";
  dataset_store store(root);
  EXPECT_EQ(commit(store, "events", samples(1, {10})), 1u);
  std::vector<std::vector<table>> inputs;
  inputs.push_back(samples(2, {100, 5}));
  inputs.push_back(samples(3, {7}));
  auto go = dir.path() / "go";
  std::vector<std::unique_ptr<child_process>> writers;
  for (std::size_t i = 0; i < 2; ++i) {
    std::vector<std::string> argv = {writer_program().string(),
                                     root.string(),
                                     "events",
                                     "--expect-parent",
                                     "1",
                                     "--wait-for",
                                     go.string()};
    for (const auto& f : input_files(dir, "w" + std::to_string(i), inputs[i])) argv.push_back(f);
    writers.push_back(
        std::make_unique<child_process>(argv, dir.path() / ("racer" + std::to_string(i))));
  }
  for (auto& w : writers) (void)w->wait_for_output("(staged)", 30s);
  write_bytes(go, "");
  std::vector<int> codes;
  for (auto& w : writers) codes.push_back(w->wait_exit(60s).value_or(-1));
  std::size_t winner = codes[0] == 0 ? 0 : 1;
  auto loser = 1 - winner;
  ASSERT_EQ(codes[winner], 0) << writers[winner]->out() << writers[winner]->err();
  EXPECT_EQ(codes[loser], 3) << writers[loser]->out() << writers[loser]->err();
  EXPECT_NE(writers[winner]->out().find("committed 2"), std::string::npos);
  EXPECT_NE(writers[loser]->out().find(
                "error: dataset 'events': version 2 was committed since this write began at "
                "version 1"),
            std::string::npos)
      << writers[loser]->out();
  EXPECT_EQ(store.current_version("events"), 2u);
  EXPECT_EQ(rows_of(store.read("events").view()), rows_of_all(inputs[winner]));
  EXPECT_EQ(store.clean_up().total(), 0u);  // the loser removed its staging folder
  EXPECT_EQ(entries(root / "events"), clean_layout({2, 1}));
}

TEST(dataset_store, writer_threads_racing_from_one_version_one_commits_each_round) {
  temp_dir dir;
  dataset_store store(dir.path());
  EXPECT_EQ(commit(store, "t", samples(1, {3})), 1u);
  constexpr int threads = 4;
  for (int round = 0; round < 5; ++round) {
    std::barrier sync(threads);
    std::vector<std::string> outcome(threads);
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
      pool.emplace_back([&, i] {
        try {
          auto w = store.begin_write("t");
          (void)w.write_partition(sample(static_cast<std::uint64_t>(i), 10).view());
          sync.arrive_and_wait();  // every writer began from the same version
          outcome[static_cast<std::size_t>(i)] =
              "committed " + std::to_string(w.commit({w.base_version(), {}}));
        } catch (const invalid_input& e) {
          outcome[static_cast<std::size_t>(i)] = e.what();
        }
      });
    }
    for (auto& t : pool) t.join();
    auto version = std::to_string(round + 2);
    int won = 0;
    for (const auto& o : outcome) {
      if (o == "committed " + version) {
        ++won;
      } else {
        EXPECT_EQ(o, "dataset 't': version " + version +
                         " was committed since this write began at version " +
                         std::to_string(round + 1));
      }
    }
    EXPECT_EQ(won, 1);
    EXPECT_EQ(store.current_version("t"), static_cast<std::uint64_t>(round + 2));
  }
  EXPECT_EQ(store.clean_up(10).total(), 0u);
}

TEST(dataset_store, threads_write_partitions_of_one_write_in_parallel) {
  temp_dir dir;
  dataset_store store(dir.path());
  auto w = store.begin_write("t");
  std::vector<std::thread> pool;
  for (int i = 0; i < 4; ++i) {
    pool.emplace_back([&, i] {
      for (int k = 0; k < 5; ++k)
        (void)w.write_partition(
            sample(static_cast<std::uint64_t>(i) * 10 + static_cast<std::uint64_t>(k), 100).view());
    });
  }
  for (auto& t : pool) t.join();
  EXPECT_EQ(w.commit(), 1u);
  auto m = store.read_manifest("t");
  ASSERT_EQ(m.partitions.size(), 20u);
  for (std::size_t i = 0; i < m.partitions.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "part-%05zu.emb", i);
    EXPECT_EQ(m.partitions[i].file, name);
  }
  auto rows = store.read("t").num_rows();
  EXPECT_EQ(rows, 2000);
}

TEST(dataset_store, remove_waits_for_a_commit_and_a_commit_waiting_on_a_removal_fails_clearly) {
  temp_dir dir;
  dataset_store store(dir.path());
  EXPECT_EQ(commit(store, "t", samples(1, {10})), 1u);
  auto first = store.begin_write("t");
  auto second = store.begin_write("t");
  (void)first.write_partition(sample(2, 5).view());
  (void)second.write_partition(sample(3, 5).view());
  std::thread remover, committer;
  std::string second_outcome;
  commit_options hold;
  hold.before_publish = [&](std::uint64_t) {
    // This commit holds the dataset's lock: the removal and the other commit wait for it.
    remover = std::thread([&] { store.remove("t"); });
    committer = std::thread([&] {
      try {
        second_outcome = "committed " + std::to_string(second.commit());
      } catch (const invalid_input& e) {
        second_outcome = e.what();
      }
    });
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(fs::exists(dir.path() / "t" / "CURRENT"));
  };
  EXPECT_EQ(first.commit(hold), 2u);
  remover.join();
  committer.join();
  // Whichever took the lock next: the other commit made version 3 before the removal, or it
  // found the dataset gone.
  EXPECT_TRUE(second_outcome == "committed 3" ||
              second_outcome == "dataset 't' was removed while this write was in progress")
      << second_outcome;
  EXPECT_FALSE(fs::exists(dir.path() / "t"));
  EXPECT_TRUE(store.list().empty());
  EXPECT_EQ(store.clean_up().total(), 0u);
}

TEST(dataset_store, an_expected_parent_that_is_not_current_is_refused) {
  temp_dir dir;
  dataset_store store(dir.path());
  expect_rejected(
      [&] {
        (void)commit(store, "t", samples(1, {3}), {4, {}});
      },
      {"dataset 't' is at version 0, not at version 4 as this write expected"});
  EXPECT_EQ(commit(store, "t", samples(1, {3}), {0, {}}), 1u);
  expect_rejected(
      [&] {
        (void)commit(store, "t", samples(1, {3}), {0, {}});
      },
      {"dataset 't': version 1 was committed since this write began at version 0"});
  EXPECT_EQ(store.clean_up().total(), 0u);
}

TEST(dataset_store, a_stale_fencing_token_is_refused) {
  temp_dir dir;
  dataset_store store(dir.path());
  auto write_with = [&](std::optional<fence_token> fence) {
    auto w = store.begin_write("t", std::move(fence));
    (void)w.write_partition(sample(1, 4).view());
    return w.commit();
  };
  EXPECT_EQ(write_with(fence_token{"jobs/t", 5}), 1u);
  EXPECT_EQ(store.read_manifest("t").fence, (fence_token{"jobs/t", 5}));
  expect_rejected(
      [&] {
        (void)write_with(fence_token{"jobs/t", 4});
      },
      {"dataset 't': fencing token 4 of lock 'jobs/t' is stale: version 1 was "
       "committed with token 5"});
  EXPECT_EQ(store.current_version("t"), 1u);
  EXPECT_EQ(write_with(fence_token{"jobs/t", 5}), 2u);  // the same holder again
  EXPECT_EQ(write_with(fence_token{"jobs/t", 9}), 3u);
  EXPECT_EQ(write_with(fence_token{"other", 1}), 4u);  // another lock's tokens do not compare
  EXPECT_EQ(write_with(std::nullopt), 5u);
  EXPECT_FALSE(store.read_manifest("t").fence);

  // The same across processes.
  auto run = run_writer(dir, dir.path(), "t", {"--fence", "jobs/t:7"}, {});
  EXPECT_EQ(run.exit_code, 0) << run.out;
  EXPECT_EQ(write_with(fence_token{"jobs/t", 8}), 7u);
  run = run_writer(dir, dir.path(), "t", {"--fence", "jobs/t:7"}, {});
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_NE(run.out.find("fencing token 7 of lock 'jobs/t' is stale: version 7 was committed "
                         "with token 8"),
            std::string::npos)
      << run.out;
  EXPECT_EQ(store.clean_up(10).total(), 0u);
}

TEST(dataset_store, before_publish_can_refuse_and_the_writer_can_try_again) {
  temp_dir dir;
  dataset_store store(dir.path());
  EXPECT_EQ(commit(store, "t", samples(1, {10})), 1u);
  auto w = store.begin_write("t", fence_token{"jobs/t", 3});
  auto parts = samples(2, {20, 30});
  for (const auto& t : parts) (void)w.write_partition(t.view());
  std::uint64_t asked = 0;
  commit_options refuse;
  refuse.before_publish = [&](std::uint64_t v) {
    asked = v;
    // Everything but the switch is in place.
    EXPECT_TRUE(fs::exists(dir.path() / "t" / manifest_file(v)));
    EXPECT_EQ(store.current_version("t"), 1u);
    throw invalid_input("lock 'jobs/t' has passed to token 4");
  };
  expect_rejected([&] { (void)w.commit(refuse); }, {"lock 'jobs/t' has passed to token 4"});
  EXPECT_EQ(asked, 2u);
  EXPECT_EQ(store.current_version("t"), 1u);
  EXPECT_EQ(entries(dir.path() / "t"), clean_layout({1}));
  EXPECT_TRUE(fs::exists(w.staging_dir()));

  commit_options accept;
  accept.before_publish = [&](std::uint64_t v) { asked = v; };
  EXPECT_EQ(w.commit(accept), 2u);
  EXPECT_EQ(asked, 2u);
  EXPECT_EQ(rows_of(store.read("t").view()), rows_of_all(parts));
  EXPECT_EQ(store.clean_up().total(), 0u);
}

// ---- damage
// ---------------------------------------------------------------------------------------

TEST(dataset_store, a_damaged_manifest_is_reported_naming_the_file) {
  temp_dir dir;
  dataset_store store(dir.path());
  EXPECT_EQ(commit(store, "t", samples(1, {10, 20})), 1u);
  auto path = dir.path() / "t" / manifest_file(1);
  auto good = read_bytes(path);
  auto damage = [&](const std::string& from, const std::string& to) {
    auto text = good;
    auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    write_bytes(path, text);
  };
  // A changed value that is still consistent: only the checksum can tell.
  auto m = store.read_manifest("t");
  damage("\"writer\": \"" + m.writer, "\"writer\": \"X" + m.writer.substr(1));
  expect_rejected([&] { (void)store.read("t"); }, {path.string(), "checksum mismatch"});
  damage("\"rows\": 30", "\"rows\": 31");
  expect_rejected([&] { (void)store.read_manifest("t"); },
                  {path.string(), "rows is 31 but the partitions hold 30"});
  damage("\"format_version\": 1", "\"format_version\": 2");
  expect_rejected([&] { (void)store.read_manifest("t"); },
                  {path.string(), "format version 2 is not supported"});
  damage("\"writer\"", "\"author\"");
  expect_rejected([&] { (void)store.read_manifest("t"); },
                  {path.string(), "unknown field 'author' in the manifest"});
  damage("\"file\": \"part-00000.emb\"", "\"file\": \"../../etc/passwd\"");
  expect_rejected([&] { (void)store.read_manifest("t"); },
                  {path.string(), "'../../etc/passwd' is not a name like part-00000.emb"});
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, good.size() / 2, good.size() - 3}) {
    write_bytes(path, good.substr(0, cut));
    expect_rejected([&] { (void)store.read_manifest("t"); }, {path.string(), "not valid JSON"});
  }
  write_bytes(path, good);
  EXPECT_EQ(store.read("t").num_rows(), 30);

  // A manifest copied to another version's name says whose it is.
  EXPECT_EQ(commit(store, "t", samples(2, {5})), 2u);
  auto second = dir.path() / "t" / manifest_file(2);
  write_bytes(second, good);
  expect_rejected([&] { (void)store.read_manifest("t"); },
                  {second.string(), "describes version 1 of dataset 't', not version 2"});
}

TEST(dataset_store, a_current_file_naming_a_missing_version_or_damaged_is_reported) {
  temp_dir dir;
  dataset_store store(dir.path());
  EXPECT_EQ(commit(store, "t", samples(1, {10})), 1u);
  auto current = dir.path() / "t" / "CURRENT";
  EXPECT_EQ(read_bytes(current), digits(1) + "\n");
  write_bytes(current, digits(9) + "\n");
  expect_rejected([&] { (void)store.read("t"); },
                  {"dataset 't': the manifest of version 9",
                   (dir.path() / "t" / manifest_file(9)).string(), "is missing"});
  // clean_up leaves a dataset whose current manifest is missing alone.
  EXPECT_EQ(store.clean_up().total(), 0u);
  EXPECT_TRUE(fs::exists(dir.path() / "t" / version_dir(1)));
  for (const std::string& bad : {std::string("1\n"), std::string("abc"), std::string(),
                                 digits(0) + "\n", std::string(100, '7')}) {
    write_bytes(current, bad);
    expect_rejected([&] { (void)store.current_version("t"); },
                    {"dataset 't'", current.string(), "damaged"});
  }
}

TEST(dataset_store, a_missing_truncated_or_replaced_partition_file_is_reported) {
  temp_dir dir;
  dataset_store store(dir.path());
  EXPECT_EQ(commit(store, "t", samples(1, {500, 600})), 1u);
  auto m = store.read_manifest("t");
  auto path = store.partition_path(m, 1);
  auto good = read_bytes(path);
  write_bytes(path, good.substr(0, good.size() - 100));
  expect_rejected([&] { (void)store.read("t"); }, {path.string(), "truncated"});
  // A whole partition file, but not the one the manifest names.
  (void)write_partition_file(path, sample(7, 600).view());
  expect_rejected(
      [&] { (void)store.read("t"); },
      {"dataset 't' version 1: partition file " + path.string(), "does not match the manifest"});
  fs::remove(path);
  expect_rejected([&] { (void)store.read("t"); }, {path.string(), "is missing"});
  // The other partition still reads.
  EXPECT_EQ(rows_of(store.read_partition(m, 0).view()), rows_of(samples(1, {500})[0].view()));
  // A flipped byte inside a chunk is caught by the chunk's checksum.
  write_bytes(path, good);
  auto flipped = good;
  flipped[40] = static_cast<char>(flipped[40] ^ 0x10);
  write_bytes(path, flipped);
  expect_rejected([&] { (void)store.read("t"); }, {path.string()});
}

// ---- adopting partition files written by other processes
// ------------------------------------------------------------------------------------------

// What another process (a job's task) does: writes a partition file into the staging folder
// under its own name and reports its entry.
dataset_partition write_outside(const fs::path& staging, const std::string& file, const table& t) {
  auto info = write_partition_file(staging / file, t.view());
  return {file, info.rows, info.file_bytes, info.footer_checksum, {}};
}

TEST(dataset_store, files_written_into_the_staging_folder_are_adopted_in_order) {
  temp_dir dir;
  dataset_store store(dir.path());
  auto parts = samples(3, {400, 0, 700});
  auto w = store.begin_write("t");
  // Written out of order (tasks finish in any order), adopted in partition order.
  auto e2 = write_outside(w.staging_dir(), "task-2-x.emb", parts[2]);
  auto e0 = write_outside(w.staging_dir(), "task-0-x.emb", parts[0]);
  auto e1 = write_outside(w.staging_dir(), "task-1-x.emb", parts[1]);
  // A retried task's first attempt, never adopted: the commit drops it.
  (void)write_outside(w.staging_dir(), "task-1-y.emb", parts[1]);
  auto a0 = w.adopt_partition(e0);
  EXPECT_EQ(a0.file, "part-00000.emb");
  EXPECT_EQ(a0.rows, 400);
  EXPECT_EQ(a0.footer_checksum, e0.footer_checksum);
  EXPECT_EQ(a0.stats.size(), 3u);
  EXPECT_EQ(w.adopt_partition(e1).file, "part-00001.emb");
  // Adopting the same file twice: it was renamed, so the second time it is missing.
  expect_rejected([&] { (void)w.adopt_partition(e1); }, {"task-1-x.emb", "no such file"});
  EXPECT_EQ(w.adopt_partition(e2).file, "part-00002.emb");
  EXPECT_EQ(w.commit(), 1u);
  auto m = store.read_manifest("t");
  ASSERT_EQ(m.partitions.size(), 3u);
  EXPECT_EQ(m.rows, 1100);
  EXPECT_EQ(rows_of(store.read("t").view()), rows_of_all(parts));
  EXPECT_EQ(entries(dir.path() / "t" / version_dir(1)),
            (std::set<std::string>{"part-00000.emb", "part-00001.emb", "part-00002.emb"}));
}

TEST(dataset_store, adopted_and_written_partitions_mix_and_schemas_must_agree) {
  temp_dir dir;
  dataset_store store(dir.path());
  auto w = store.begin_write("t");
  (void)w.write_partition(sample(1, 10).view());
  auto other =
      table_of({"id", "score"}, random_int64(5, 0, 9, 0.0, 1), random_float64(5, 0, 1, 0.0, 2));
  auto e = write_outside(w.staging_dir(), "task-1.emb", other);
  expect_rejected([&] { (void)w.adopt_partition(e); },
                  {"dataset 't'", "task-1.emb", "id int64", "score float64", "name string"});
  auto good = write_outside(w.staging_dir(), "task-2.emb", sample(2, 20));
  EXPECT_EQ(w.adopt_partition(good).file, "part-00001.emb");
  EXPECT_EQ(w.commit(), 1u);
  EXPECT_EQ(store.read_manifest("t").rows, 30);
  // The refused file was not committed.
  EXPECT_EQ(entries(dir.path() / "t" / version_dir(1)),
            (std::set<std::string>{"part-00000.emb", "part-00001.emb"}));
}

TEST(dataset_store, a_missing_damaged_or_misreported_file_is_not_adopted) {
  temp_dir dir;
  dataset_store store(dir.path());
  EXPECT_EQ(commit(store, "t", samples(1, {50})), 1u);
  auto w = store.begin_write("t");
  auto staging = w.staging_dir();
  auto t = sample(5, 300);
  // Names that are not a file of the staging folder, or are the writer's own.
  for (const std::string bad : {"", ".hidden.emb", "../x.emb", "a/b.emb", "part-00000.emb"})
    expect_rejected([&] { (void)w.adopt_partition({bad, 0, 0, 0, {}}); }, {"cannot adopt"});
  expect_rejected(
      [&] {
        (void)w.adopt_partition({"gone.emb", 1, 1, 1, {}});
      },
      {"gone.emb", "no such file"});
  // Truncated.
  auto e = write_outside(staging, "cut.emb", t);
  auto bytes = read_bytes(staging / "cut.emb");
  write_bytes(staging / "cut.emb", bytes.substr(0, bytes.size() - 10));
  expect_rejected([&] { (void)w.adopt_partition(e); }, {"cut.emb"});
  // A flipped byte in the footer.
  e = write_outside(staging, "flip.emb", t);
  auto flipped = bytes;
  flipped[flipped.size() - 40] = static_cast<char>(flipped[flipped.size() - 40] ^ 0x01);
  write_bytes(staging / "flip.emb", flipped);
  expect_rejected([&] { (void)w.adopt_partition(e); }, {"flip.emb"});
  // A whole file, but not the one its writer reported.
  e = write_outside(staging, "other.emb", t);
  auto reported = e;
  reported.footer_checksum ^= 1;
  expect_rejected([&] { (void)w.adopt_partition(reported); },
                  {"other.emb", "footer checksum", "as its writer reported"});
  reported = e;
  reported.rows += 1;
  expect_rejected([&] { (void)w.adopt_partition(reported); }, {"other.emb", "row count"});
  reported = e;
  reported.stats = sample_stats_mismatch(t);
  expect_rejected([&] { (void)w.adopt_partition(reported); }, {"other.emb", "statistics"});
  // Nothing was adopted; abort leaves version 1 as it was.
  w.abort();
  EXPECT_EQ(store.current_version("t"), 1u);
  EXPECT_EQ(store.read_manifest("t").rows, 50);
  EXPECT_FALSE(fs::exists(staging));
}

// ---- remove and retention
// -------------------------------------------------------------------------

TEST(dataset_store, remove_takes_the_whole_dataset_at_once) {
  temp_dir dir;
  dataset_store store(dir.path());
  EXPECT_EQ(commit(store, "keep", samples(1, {4})), 1u);
  EXPECT_EQ(commit(store, "t", samples(1, {10})), 1u);
  EXPECT_EQ(commit(store, "t", samples(2, {10})), 2u);
  auto pending = store.begin_write("t");
  (void)pending.write_partition(sample(3, 5).view());
  store.remove("t");
  EXPECT_FALSE(fs::exists(dir.path() / "t"));
  EXPECT_EQ(store.list(), std::vector<std::string>{"keep"});
  EXPECT_FALSE(store.current_version("t"));
  EXPECT_TRUE(entries(dir.path() / ".trash").empty());
  expect_rejected([&] { (void)store.read("t"); }, {"no dataset 't' (the store has: keep)"});
  expect_rejected([&] { (void)pending.commit(); },
                  {"dataset 't' was removed while this write was in progress"});
  pending.abort();
  // A dataset of the same name starts again at version 1.
  EXPECT_EQ(commit(store, "t", samples(4, {6})), 1u);
  EXPECT_EQ(rows_of(store.read("t").view()), rows_of_all(samples(4, {6})));
  EXPECT_EQ(rows_of(store.read("keep").view()), rows_of_all(samples(1, {4})));
  // What a remove interrupted by a crash leaves in .trash goes at the next clean_up.
  fs::create_directories(dir.path() / ".trash" / "old.x" / "v1");
  write_bytes(dir.path() / ".trash" / "old.x" / "v1" / "part-00000.emb", "x");
  EXPECT_EQ(store.clean_up().temporary, 1u);
  EXPECT_TRUE(entries(dir.path() / ".trash").empty());
}

TEST(dataset_store, clean_up_keeps_the_newest_versions_and_live_writers) {
  temp_dir dir;
  dataset_store store(dir.path());
  for (std::uint64_t v = 1; v <= 5; ++v) EXPECT_EQ(commit(store, "t", samples(v, {v})), v);
  auto live = store.begin_write("t");
  (void)live.write_partition(sample(9, 9).view());
  expect_rejected([&] { (void)store.clean_up(0); }, {"keep at least 1 version"});
  auto report = store.clean_up();
  EXPECT_EQ(report.expired, 3u);
  EXPECT_EQ(report.total(), 3u);
  EXPECT_EQ(store.versions("t"), (std::vector<std::uint64_t>{5, 4}));
  auto layout = clean_layout({5, 4});
  EXPECT_EQ(entries(dir.path() / "t"), layout);
  EXPECT_TRUE(fs::exists(live.staging_dir()));  // its writer is alive
  expect_rejected([&] { (void)store.read("t", 3); },
                  {"dataset 't' has no version 3 (its versions: 5, 4)"});
  EXPECT_EQ(rows_of(store.read("t", 4).view()), rows_of_all(samples(4, {4})));
  EXPECT_EQ(live.commit(), 6u);
  EXPECT_EQ(store.clean_up("t", 1).expired, 2u);
  EXPECT_EQ(store.versions("t"), (std::vector<std::uint64_t>{6}));
  EXPECT_EQ(rows_of(store.read("t").view()), rows_of(sample(9, 9).view()));
  EXPECT_EQ(store.clean_up(1).total(), 0u);
}

TEST(dataset_store, clean_up_leaves_versions_below_a_damaged_manifest_alone) {
  temp_dir dir;
  dataset_store store(dir.path());
  for (std::uint64_t v = 1; v <= 4; ++v) EXPECT_EQ(commit(store, "t", samples(v, {3})), v);
  write_bytes(dir.path() / "t" / manifest_file(3), "{}");
  auto report = store.clean_up(1);
  EXPECT_EQ(report.total(), 1u);  // version 3 is beyond the one kept; below it, nothing moves
  EXPECT_EQ(entries(dir.path() / "t"), clean_layout({4, 2, 1}));
}

// ---- the manifest format
// --------------------------------------------------------------------------

TEST(dataset_store, manifests_round_trip_every_type_and_bound) {
  temp_dir dir;
  std::vector<std::optional<std::string>> strings = {
      std::string(70, 'a'), std::string("z\"\\\n\t\x01 caf\xc3\xa9"), std::nullopt};
  auto t = table_of(
      {"i32", "i64", "f32", "f64", "b", "ts", "s", "s_high", "s_null"},
      random_int32(3, -5, 5, 0.3, 1),
      random_int64(3, std::numeric_limits<std::int64_t>::min(), -1, 0, 2),
      make_column<float>(type_id::float32, std::vector<float>{0.1f, -0.0f, 3.5f}),
      make_column<double>(
          type_id::float64,
          std::vector<double>{-std::numeric_limits<double>::infinity(), 1e300, std::nan("")}),
      make_column<std::uint8_t>(type_id::bool8, std::vector<std::uint8_t>{0, 1, 1}),
      make_column<std::int64_t>(type_id::timestamp_ns, std::vector<std::int64_t>{1, 2, 3}),
      make_string_column(strings),
      make_string_column(std::vector<std::string>{std::string(80, '\xff'), "\xfe\x80", "\xc3"}),
      make_string_column(std::vector<std::optional<std::string>>(3)));
  dataset_store store(dir.path());
  EXPECT_EQ(commit(store, "types", tables(copy_table(t.view()))), 1u);
  auto m = store.read_manifest("types");
  auto json = to_json(m);
  auto again = parse_dataset_manifest(json, "test");
  EXPECT_EQ(again, m);
  EXPECT_EQ(to_json(again), json);
  EXPECT_EQ(m.partitions[0].stats, read_partition_info(store.partition_path(m, 0)).stats);
  EXPECT_TRUE(m.partitions[0].stats[7].max_unbounded);
  EXPECT_TRUE(m.partitions[0].stats[6].min_truncated);  // 70 a's
  // NaN is not equal to itself: f64 is compared on its own.
  auto back = store.read("types");
  auto others = t.names();
  others.erase(others.begin() + 3);
  EXPECT_EQ(rows_of(back.view().select(others)), rows_of(t.view().select(others)));
  auto f64 = copy_values<double>(back.view().column("f64"));
  EXPECT_EQ(f64[0], -std::numeric_limits<double>::infinity());
  EXPECT_EQ(f64[1], 1e300);
  EXPECT_TRUE(std::isnan(f64[2]));
  EXPECT_EQ(m.partitions[0].stats[3].nan_count, 1);
  EXPECT_NE(json.find("\"hex\""), std::string::npos);   // bounds that are not UTF-8
  EXPECT_NE(json.find("\"-inf\""), std::string::npos);  // JSON has no infinity
  EXPECT_NE(json.find("caf\xc3\xa9"), std::string::npos);

  auto edited = [&](const std::string& from, const std::string& to) {
    auto text = json;
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  expect_rejected([&] { (void)parse_dataset_manifest(edited("\"rows\": 3,", ""), "m.json"); },
                  {"dataset manifest m.json", "field 'rows' is missing in the manifest"});
  expect_rejected(
      [&] {
        (void)parse_dataset_manifest(edited("\"rows\": 3,", "\"rows\": 3, \"rows\": 3,"), "m");
      },
      {"field 'rows' repeats in the manifest"});
  expect_rejected(
      [&] {
        (void)parse_dataset_manifest(edited("\"type\": \"int32\"", "\"type\": \"int7\""), "m");
      },
      {"schema column 0 ('i32')", "int7"});
  expect_rejected([&] { (void)parse_dataset_manifest(std::string(100, '['), "m"); },
                  {"nested too deeply"});
  expect_rejected([&] { (void)parse_dataset_manifest("[]", "m"); },
                  {"the manifest is not an object"});
}

}  // namespace
}  // namespace ember::test
