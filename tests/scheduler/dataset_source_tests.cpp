// Reading a committed dataset as a plan source: one task per partition file, only the asked
// columns, partitions that the statistics rule out skipped (and counted), the rows filtered the
// same as filtering the whole table, the version fixed when the dataset is made; locally and
// through a real cluster whose workers read the same storage root.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ember/host/column_factories.hpp>
#include <ember/host/dataset_store.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/plan_codec.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/processes.hpp"
#include "common/tables.hpp"
#include "common/temp_dir.hpp"
#include "scheduler/helpers.hpp"

namespace ember::test {
namespace {

using ::testing::HasSubstr;

constexpr int partitions = 8;
constexpr int rows_per_partition = 50;

client cpu_client() {
  client_options o;
  o.backend = backend_choice::cpu;
  o.workers = 2;
  return client::local(o);
}

// Row i of partition k: day 10k + i % 10 (each partition its own range of days), id, a name
// and an amount shifted by `offset` (so that versions differ).
struct event_rows {
  std::vector<std::int64_t> day, id;
  std::vector<std::string> name;
  std::vector<double> amount;

  void add(std::int64_t d, std::int64_t i, double offset) {
    day.push_back(d);
    id.push_back(i);
    std::string n = "n";
    n += std::to_string(i % 7);
    name.push_back(std::move(n));
    amount.push_back(static_cast<double>(i) * 0.5 + offset);
  }
  // The columns named in `names`, in that order.
  table select(const std::vector<std::string>& names) const {
    std::vector<column> cols;
    for (const auto& n : names) {
      if (n == "day") cols.push_back(make_column(type_id::int64, day));
      if (n == "id") cols.push_back(make_column(type_id::int64, id));
      if (n == "name") cols.push_back(make_string_column(name));
      if (n == "amount") cols.push_back(make_column(type_id::float64, amount));
    }
    return table(std::move(cols), names);
  }
};

const std::vector<std::string> all_columns = {"day", "id", "name", "amount"};

// Commits a version of "events" and returns all its rows.
event_rows write_events(const std::filesystem::path& root, double offset = 0) {
  dataset_store store(root);
  auto writer = store.begin_write("events");
  event_rows all;
  for (int k = 0; k < partitions; ++k) {
    event_rows part;
    for (int i = 0; i < rows_per_partition; ++i) {
      auto id = static_cast<std::int64_t>(k * rows_per_partition + i);
      part.add(10 * k + i % 10, id, offset);
      all.add(10 * k + i % 10, id, offset);
    }
    partition_write_options o;
    o.sync = false;
    (void)writer.write_partition(part.select(all_columns).view(), o);
  }
  (void)writer.commit();
  return all;
}

// The rows of `all` whose day is in [lo, hi), columns `names`.
table expected(const event_rows& all, std::int64_t lo, std::int64_t hi,
               const std::vector<std::string>& names) {
  event_rows keep;
  for (std::size_t r = 0; r < all.day.size(); ++r) {
    if (all.day[r] < lo || all.day[r] >= hi) continue;
    keep.day.push_back(all.day[r]);
    keep.id.push_back(all.id[r]);
    keep.name.push_back(all.name[r]);
    keep.amount.push_back(all.amount[r]);
  }
  return keep.select(names);
}

size_type skipped(const job_metrics& m) {
  size_type n = 0;
  for (const auto& s : m.stages) n += s.partitions_skipped;
  return n;
}

std::vector<dataset_filter> days_between(std::int64_t lo, std::int64_t hi) {
  return {{"day", comparison::ge, scalar::int64(lo)}, {"day", comparison::lt, scalar::int64(hi)}};
}

template <class F>
void expect_invalid(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no ember::invalid_input";
  } catch (const invalid_input& e) {
    for (const auto& p : parts) EXPECT_THAT(e.what(), HasSubstr(p));
  }
}

TEST(dataset_source, FilterSkipsPartitionsByStatisticsAndMatchesTheFilteredTable) {
  temp_dir dir;
  auto all = write_events(dir.path());
  auto c = cpu_client();
  // Days 20..39 live in partitions 2 and 3 only: the other 6 are never read. "day" is not
  // projected: the filter reads it and the result drops it.
  auto ds = c.read_dataset(dir.path(), "events", {"id", "amount"}, days_between(20, 40));
  EXPECT_EQ(ds.columns().names, (std::vector<std::string>{"id", "amount"}));
  auto r = ds.run();
  expect_same_table(r.result.view(), expected(all, 20, 40, {"id", "amount"}).view(), false);
  EXPECT_EQ(r.result.num_rows(), 2 * rows_per_partition);
  EXPECT_EQ(skipped(r.metrics), 6);
  EXPECT_EQ(r.metrics.stages.front().tasks, partitions);
}

TEST(dataset_source, FilterThatCutsInsidePartitionsStillFiltersEveryRow) {
  temp_dir dir;
  auto all = write_events(dir.path());
  auto c = cpu_client();
  // Days 25..34: partitions 2 and 3 hold some of them, and rows outside the range too.
  auto r = c.read_dataset(dir.path(), "events", {"day", "name"}, days_between(25, 35)).run();
  expect_same_table(r.result.view(), expected(all, 25, 35, {"day", "name"}).view(), false);
  EXPECT_EQ(skipped(r.metrics), 6);
}

TEST(dataset_source, WithoutFiltersEveryPartitionAndEveryColumnIsRead) {
  temp_dir dir;
  auto all = write_events(dir.path());
  auto c = cpu_client();
  auto r = c.read_dataset(dir.path(), "events").run();
  expect_same_table(r.result.view(), all.select(all_columns).view(), false);
  EXPECT_EQ(skipped(r.metrics), 0);
  // A filter no partition can satisfy: an empty result of the projected schema.
  auto none =
      c.read_dataset(dir.path(), "events", {"name"}, {{"day", comparison::gt, scalar::int64(1000)}})
          .run();
  EXPECT_EQ(none.result.num_rows(), 0);
  EXPECT_EQ(none.result.view().names(), (std::vector<std::string>{"name"}));
  EXPECT_EQ(skipped(none.metrics), partitions);
}

TEST(dataset_source, UnknownDatasetsAndColumnsAreClearErrors) {
  temp_dir dir;
  (void)write_events(dir.path());
  auto c = cpu_client();
  expect_invalid([&] { (void)c.read_dataset(dir.path(), "nope"); }, {"no dataset 'nope'"});
  expect_invalid([&] { (void)c.read_dataset(dir.path(), "events", {"dya"}); },
                 {"events", "unknown column 'dya'", "day int64"});
  expect_invalid(
      [&] {
        (void)c.read_dataset(dir.path(), "events", {"id"},
                             {{"dya", comparison::eq, scalar::int64(1)}});
      },
      {"events", "unknown column 'dya'"});
  expect_invalid(
      [&] {
        (void)c.read_dataset(dir.path(), "events", {},
                             {{"day", comparison::eq, scalar::string("x")}});
      },
      {"events", "'day'"});
}

TEST(dataset_source, TheVersionIsFixedWhenTheDatasetIsMade) {
  temp_dir dir;
  auto first = write_events(dir.path(), 0);
  auto c = cpu_client();
  auto pinned = c.read_dataset(dir.path(), "events", {"id", "amount"});
  auto second = write_events(dir.path(), 1000);
  expect_same_table(pinned.collect().view(), first.select({"id", "amount"}).view(), false);
  auto now = c.read_dataset(dir.path(), "events", {"id", "amount"});
  expect_same_table(now.collect().view(), second.select({"id", "amount"}).view(), false);
}

TEST(dataset_source, ThePlanSurvivesTheCodec) {
  temp_dir dir;
  (void)write_events(dir.path());
  auto c = cpu_client();
  auto ds = c.read_dataset(dir.path(), "events", {"id"}, days_between(20, 40));
  auto decoded = decode_plan(encode_plan(ds.logical_plan()));
  EXPECT_EQ(decoded.to_string(), ds.logical_plan().to_string());
  const auto& source = std::get<dataset_source>(decoded.nodes.front().op);
  EXPECT_EQ(source.filters, days_between(20, 40));
  EXPECT_EQ(source.version, 1u);
  EXPECT_EQ(skipped(c.from_plan(decoded).run().metrics), 6);
}

TEST(dataset_source, ClusterWorkersReadTheSameRootAndReportSkippedPartitions) {
  // Keep UCX on lo, in this process and in the cluster's.
  ::setenv("UCX_NET_DEVICES", "lo", 1);
  ::setenv("UCX_SOCKADDR_TLS_PRIORITY", "tcp", 1);
  temp_dir dir;
  auto all = write_events(dir.path());
  cluster_spec spec;
  spec.workers = 2;
  spec.env = {"UCX_NET_DEVICES=lo", "UCX_SOCKADDR_TLS_PRIORITY=tcp"};
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  auto r = c.read_dataset(dir.path(), "events", {"id", "amount"}, days_between(20, 40)).run();
  expect_same_table(r.result.view(), expected(all, 20, 40, {"id", "amount"}).view(), false);
  EXPECT_EQ(skipped(r.metrics), 6);
}

TEST(dataset_source, ASecondJobFindsTheScannedPartitionsInTheWorkersStores) {
  ::setenv("UCX_NET_DEVICES", "lo", 1);
  ::setenv("UCX_SOCKADDR_TLS_PRIORITY", "tcp", 1);
  temp_dir dir;
  auto all = write_events(dir.path());
  cluster_spec spec;
  spec.workers = 2;
  spec.env = {"UCX_NET_DEVICES=lo", "UCX_SOCKADDR_TLS_PRIORITY=tcp"};
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  auto lookups = [&] {
    std::int64_t hits = 0, misses = 0;
    for (const auto& w : c.status().workers) {
      hits += w.hits;
      misses += w.misses;
    }
    return std::pair{hits, misses};
  };
  auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(400)); };
  auto job = [&] { return c.read_dataset(dir.path(), "events", {"id", "amount"}).run(); };
  auto first = job();
  expect_same_table(first.result.view(), expected(all, 0, 1000, {"id", "amount"}).view(), false);
  settle();
  // The catalog lists every scanned partition, on the worker that read it.
  std::set<std::string> scans;
  for (const auto& e : c.residency())
    if (e.key.starts_with("scan/")) scans.insert(e.key);
  EXPECT_EQ(scans.size(), static_cast<std::size_t>(partitions));
  auto [hits_before, misses_before] = lookups();
  auto second = job();
  expect_same_table(second.result.view(), first.result.view(), false);
  settle();
  auto [hits_after, misses_after] = lookups();
  // Every partition came from a store: placement sent each scan to its holder.
  EXPECT_EQ(hits_after - hits_before, partitions);
  EXPECT_EQ(misses_after - misses_before, 0);
  // Another projection is another scan: read from the files, then kept too.
  auto third = c.read_dataset(dir.path(), "events", {"day"}).run();
  EXPECT_EQ(third.result.num_rows(), partitions * rows_per_partition);
}

}  // namespace
}  // namespace ember::test
