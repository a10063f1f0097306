// Writing a job's rows as a dataset version (dataset::write_dataset): each task of the last
// stage writes its partition into the staging folder of a write the client began, the client
// adopts the files in partition order and commits. Read back, the version holds exactly what
// collect() of the same plan returns, locally and through a real cluster; a failing task or a
// refused commit (stale fencing token, another version committed meanwhile) leaves the previous
// version current and no new one; enrich writes its enriched table.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <ember/host/dataset_store.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/dataset.hpp>
#include <ember/scheduler/generators.hpp>
#include <ember/scheduler/jobs.hpp>
#include <ember/scheduler/plan_codec.hpp>
#include <ember/scheduler/planner.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "common/processes.hpp"
#include "common/temp_dir.hpp"
#include "scheduler/helpers.hpp"

namespace ember::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

client cpu_client() {
  client_options o;
  o.backend = backend_choice::cpu;
  o.workers = 2;
  return client::local(o);
}

// Generated rows through a filter and computed columns: 4 partitions of different sizes.
dataset sample_job(const client& c, std::uint64_t seed = 7) {
  return c.generate("keyed", 4000, seed, 0, 4)
      .filter(col("v") % lit(std::int64_t{3}) != lit(std::int64_t{0}))
      .with_columns({{"twice", col("x") * lit(2.0)}, {"big", col("v") > lit(std::int64_t{50})}});
}

// The entries of a folder (empty when it is missing).
std::size_t entry_count(const fs::path& dir) {
  std::error_code ec;
  std::size_t n = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) ++n;
  return n;
}

// Flips a byte inside the first chunk of partition `index`: its reader fails on the checksum.
void damage_partition(const fs::path& root, const std::string& name, std::size_t index) {
  dataset_store store(root);
  auto path = store.partition_path(store.read_manifest(name), index);
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  bytes[40] = static_cast<char>(bytes[40] ^ 0x20);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

void expect_written_as_collected(const client& c, const fs::path& root, const dataset& job) {
  auto want = job.collect();
  auto w = job.write_dataset(root, "out");
  EXPECT_EQ(w.version, 1u);
  EXPECT_EQ(w.rows, want.num_rows());
  dataset_store store(root);
  auto m = store.read_manifest("out");
  // One partition per task of the plan's last stage, in partition order.
  EXPECT_EQ(m.partitions.size(), 4u);
  EXPECT_EQ(w.partitions, 4u);
  EXPECT_EQ(m.rows, want.num_rows());
  EXPECT_EQ(m.bytes, w.bytes);
  EXPECT_EQ(m.names(), want.names());
  expect_same_table(c.read_dataset(root, "out").collect().view(), want.view(), true, 0.0);
  // Nothing is left in the staging area.
  EXPECT_EQ(entry_count(root / "out" / "_staging"), 0u);
  // A second write is the next version, on top of the first.
  auto again = job.limit(10).write_dataset(root, "out");
  EXPECT_EQ(again.version, 2u);
  EXPECT_EQ(store.read_manifest("out").parent_version, 1u);
  EXPECT_EQ(store.read("out").num_rows(), 10);
}

TEST(dataset_write, a_job_writes_what_collect_returns) {
  temp_dir dir;
  auto c = cpu_client();
  expect_written_as_collected(c, dir.path(), sample_job(c));
}

TEST(dataset_write, the_sink_is_planned_into_the_last_stage_and_encoded) {
  temp_dir dir;
  auto c = cpu_client();
  auto job = sample_job(c).group_by({"key"}, {{aggregation_kind::sum, "v", "v"}});
  dataset_sink sink;
  sink.input = job.logical_plan().root;
  sink.staging_dir = (dir.path() / "staging").string();
  auto p = job.logical_plan();
  p.add(sink);
  auto stages = c.explain(p);
  // The aggregate's final stage writes: one task per hash partition, results to the client.
  const auto& last = stages.stages.back();
  EXPECT_THAT(last.name, HasSubstr("write_dataset"));
  EXPECT_EQ(last.output.mode, exchange_mode::result);
  EXPECT_EQ(stages.result, dataset_sink::sink_columns());
  EXPECT_EQ(decode_plan(encode_plan(p)).to_string(), p.to_string());
}

TEST(dataset_write, zstd_files_and_empty_partitions_are_written) {
  temp_dir dir;
  auto c = cpu_client();
  // Every row filtered out: four empty partitions, with the columns.
  auto job = c.generate("keyed", 400, 3, 0, 4).filter(col("v") > lit(std::int64_t{1'000'000}));
  dataset_write_options o;
  o.files.compression = compression_codec::zstd;
  auto w = job.write_dataset(dir.path(), "empty", o);
  EXPECT_EQ(w.rows, 0);
  auto m = dataset_store(dir.path()).read_manifest("empty");
  EXPECT_EQ(m.partitions.size(), 4u);
  EXPECT_EQ(m.names(), job.columns().names);
  EXPECT_EQ(c.read_dataset(dir.path(), "empty").collect().num_rows(), 0);
}

TEST(dataset_write, a_failing_task_leaves_the_previous_version_and_no_new_one) {
  temp_dir dir;
  auto c = cpu_client();
  dataset_store store(dir.path());
  (void)sample_job(c).write_dataset(dir.path(), "src");
  (void)sample_job(c, 8).write_dataset(dir.path(), "out");
  auto before = store.read("out");
  damage_partition(dir.path(), "src", 2);
  auto fresh = cpu_client();  // nothing kept from an earlier scan
  EXPECT_THROW((void)fresh.read_dataset(dir.path(), "src").write_dataset(dir.path(), "out"),
               invalid_input);
  EXPECT_EQ(store.current_version("out"), 1u);
  EXPECT_EQ(store.versions("out"), std::vector<std::uint64_t>{1});
  expect_same_table(store.read("out").view(), before.view(), true, 0.0);
  EXPECT_EQ(entry_count(dir.path() / "out" / "_staging"), 0u);
  // A bad dataset name is refused before anything runs.
  EXPECT_THROW((void)sample_job(c).write_dataset(dir.path(), "../x"), invalid_input);
}

TEST(dataset_write, a_stale_fence_or_a_moved_parent_commits_nothing) {
  temp_dir dir;
  auto c = cpu_client();
  dataset_store store(dir.path());
  dataset_write_options o;
  o.fence = fence_token{"out-lock", 5};
  EXPECT_EQ(sample_job(c).write_dataset(dir.path(), "out", o).version, 1u);
  o.fence = fence_token{"out-lock", 3};
  try {
    (void)sample_job(c, 9).write_dataset(dir.path(), "out", o);
    ADD_FAILURE() << "a stale token was accepted";
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("fencing token 3 of lock 'out-lock' is stale"));
  }
  EXPECT_EQ(store.versions("out"), std::vector<std::uint64_t>{1});
  EXPECT_EQ(store.read_manifest("out").fence, (fence_token{"out-lock", 5}));
  // A newer token commits; an expected parent that moved is refused.
  o.fence = fence_token{"out-lock", 6};
  EXPECT_EQ(sample_job(c, 9).write_dataset(dir.path(), "out", o).version, 2u);
  dataset_write_options stale;
  stale.expected_parent = 1;
  try {
    (void)sample_job(c).write_dataset(dir.path(), "out", stale);
    ADD_FAILURE() << "a moved parent was accepted";
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("version 2 was committed since this write began"));
  }
  EXPECT_EQ(store.current_version("out"), 2u);
  EXPECT_EQ(entry_count(dir.path() / "out" / "_staging"), 0u);
}

TEST(dataset_write, enrich_writes_its_enriched_rows_and_prints_the_same_summary) {
  temp_dir dir;
  auto c = cpu_client();
  job_options plain;
  plain.rows = 20'000;
  auto without = run_job(c, "enrich", plain);
  EXPECT_TRUE(without.written.empty());

  auto o = plain;
  o.output_root = dir.path() / "out";
  auto with = run_job(c, "enrich", o);
  ASSERT_EQ(with.written.size(), 1u);
  EXPECT_EQ(with.written[0].name, "enriched");
  EXPECT_EQ(with.input_rows, without.input_rows);
  EXPECT_EQ(with.input_bytes, without.input_bytes);
  expect_same_table(with.result.view(), without.result.view(), true, 1e-6);

  // The written rows are the enriched rows: the job's pipeline, collected.
  auto rows = plain.rows;
  auto events = c.generate("events", rows, plain.seed, items_for(rows));
  auto items = c.generate("items", items_for(rows), plain.seed + 1);
  constexpr std::int64_t day_ns = 86'400'000'000'000LL;
  auto want =
      events.join(items, {"item_id"}, join_kind::inner, join_strategy::broadcast)
          .with_columns(
              {{"revenue", col("amount") * col("price")},
               {"day", cast(cast(col("ts"), type_id::int64) / lit(day_ns) * lit(day_ns),
                            type_id::timestamp_ns)},
               {"bucket", cast(hash({col("user_id")}) % lit(std::int64_t{64}), type_id::int32)},
               {"is_mobile", col("device") == lit("mobile")},
               {"is_big_order", col("amount") > lit(100.0)}})
          .collect();
  auto got = c.read_dataset(o.output_root, "enriched").collect();
  expect_same_table(got.view(), want.view(), true, 0.0);
  EXPECT_EQ(with.written[0].rows, want.num_rows());

  // From input datasets: generated and committed by the first run, read by the next.
  auto in = plain;
  in.input_root = dir.path() / "in";
  in.output_root = dir.path() / "out";
  auto first = run_job(c, "enrich", in);
  ASSERT_EQ(first.written.size(), 3u);
  EXPECT_EQ(first.written[0].name, "events");
  EXPECT_EQ(first.written[1].name, "events-items");
  EXPECT_EQ(first.written[2].version, 2u);
  expect_same_table(first.result.view(), without.result.view(), true, 1e-6);
  auto second = run_job(c, "enrich", in);
  ASSERT_EQ(second.written.size(), 1u);
  EXPECT_EQ(second.input_rows, without.input_rows);
  expect_same_table(second.result.view(), without.result.view(), true, 1e-6);
  expect_same_table(c.read_dataset(o.output_root, "enriched").collect().view(), want.view(), true,
                    0.0);
  // One input dataset without the other is refused, naming both.
  dataset_store(in.input_root).remove("events-items");
  try {
    (void)run_job(c, "enrich", in);
    ADD_FAILURE() << "enrich ran without its items";
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("'events-items'"));
  }
}

TEST(dataset_write, a_cluster_writes_what_collect_returns) {
  // Keep UCX on lo, in this process and in the cluster's.
  ::setenv("UCX_NET_DEVICES", "lo", 1);
  ::setenv("UCX_SOCKADDR_TLS_PRIORITY", "tcp", 1);
  temp_dir dir;
  cluster_spec spec;
  spec.workers = 2;
  spec.env = {"UCX_NET_DEVICES=lo", "UCX_SOCKADDR_TLS_PRIORITY=tcp"};
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  expect_written_as_collected(c, dir.path(), sample_job(c));
  // A task failing on a worker (a damaged input file) leaves version 2 current.
  (void)sample_job(c, 8).write_dataset(dir.path(), "src");
  damage_partition(dir.path(), "src", 1);
  EXPECT_ANY_THROW((void)c.read_dataset(dir.path(), "src").write_dataset(dir.path(), "out"));
  dataset_store store(dir.path());
  EXPECT_EQ(store.versions("out"), (std::vector<std::uint64_t>{2, 1}));
  // The job's error may reach the client while another task is still writing its file: the
  // client's abort leaves that one to clean_up, which removes it once the task is done.
  for (int i = 0; i < 50 && entry_count(dir.path() / "out" / "_staging") != 0; ++i) {
    (void)store.clean_up("out");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(entry_count(dir.path() / "out" / "_staging"), 0u);
  EXPECT_EQ(store.versions("out"), (std::vector<std::uint64_t>{2, 1}));
}

}  // namespace
}  // namespace ember::test
