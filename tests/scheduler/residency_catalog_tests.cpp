// The residency catalog: full reports replace a worker's entries, batches update them, a dead
// worker's partitions leave and its named-cache entries are remembered as lost.
#include <gtest/gtest.h>

#include <ember/scheduler/residency_catalog.hpp>

namespace ember {
namespace {

residency_record rec(std::string key, memory_tier tier, std::int64_t bytes) {
  residency_record r;
  r.key = std::move(key);
  r.tier = tier;
  r.bytes = bytes;
  r.rows = bytes / 8;
  return r;
}

TEST(residency_catalog, full_reports_replace_and_batches_update_a_workers_entries) {
  residency_catalog c;
  c.replace_worker(0, {rec("block/1/0/0/0", memory_tier::device, 100),
                       rec("cache/users", memory_tier::host, 800)});
  c.replace_worker(1, {rec("block/1/0/1/0", memory_tier::device, 50)});
  EXPECT_EQ(c.size(), 3u);
  ASSERT_TRUE(c.find("cache/users").has_value());
  EXPECT_EQ(c.find("cache/users")->worker, 0);
  EXPECT_EQ(c.find("cache/users")->tier, memory_tier::host);

  // A batch: one partition spilled to disk, one gone.
  c.update(0, {rec("cache/users", memory_tier::disk, 800)}, {"block/1/0/0/0"});
  EXPECT_EQ(c.find("cache/users")->tier, memory_tier::disk);
  EXPECT_FALSE(c.find("block/1/0/0/0").has_value());
  // A worker cannot remove another's partition.
  c.update(0, {}, {"block/1/0/1/0"});
  EXPECT_TRUE(c.find("block/1/0/1/0").has_value());
  // A full report forgets what it does not list.
  c.replace_worker(1, {});
  EXPECT_FALSE(c.find("block/1/0/1/0").has_value());
  EXPECT_EQ(c.with_prefix("cache/").size(), 1u);
}

TEST(residency_catalog, tiers_per_worker_for_placement) {
  residency_catalog c;
  c.replace_worker(0, {rec("a", memory_tier::device, 10), rec("b", memory_tier::disk, 30)});
  c.replace_worker(1, {rec("c", memory_tier::host, 20), rec("d", memory_tier::pinned_host, 5)});
  auto r = c.residency_of({"a", "b", "c", "d", "unknown"});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r.at(0).device, 10);
  EXPECT_EQ(r.at(0).disk, 30);
  EXPECT_EQ(r.at(1).host, 25);
}

TEST(residency_catalog, a_dead_workers_cache_entries_are_lost_until_forgotten_or_put_again) {
  residency_catalog c;
  c.replace_worker(
      0, {rec("cache/a", memory_tier::device, 10), rec("block/2/0/0/0", memory_tier::device, 10)});
  c.replace_worker(1, {rec("cache/b", memory_tier::device, 10)});
  c.worker_lost(0, "worker@10.0.0.1:7000", "no heartbeat for 800 ms");
  EXPECT_FALSE(c.find("cache/a").has_value());
  EXPECT_FALSE(c.find("block/2/0/0/0").has_value());
  auto why = c.lost_reason("cache/a");
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("worker 0 (worker@10.0.0.1:7000)"), std::string::npos) << *why;
  EXPECT_NE(why->find("no heartbeat"), std::string::npos) << *why;
  // Only named-cache entries are remembered.
  EXPECT_FALSE(c.lost_reason("block/2/0/0/0").has_value());
  EXPECT_EQ(c.lost_with_prefix("cache/").size(), 1u);
  EXPECT_TRUE(c.find("cache/b").has_value());
  // Put again on another worker: live, not lost.
  c.update(1, {rec("cache/a", memory_tier::host, 10)}, {});
  EXPECT_FALSE(c.lost_reason("cache/a").has_value());
  EXPECT_EQ(c.find("cache/a")->worker, 1);
  c.worker_lost(1, "w1", "killed");
  EXPECT_EQ(c.lost_with_prefix("cache/").size(), 2u);
  c.forget_lost("cache/a");
  EXPECT_EQ(c.lost_with_prefix("cache/").size(), 1u);
}

}  // namespace
}  // namespace ember
