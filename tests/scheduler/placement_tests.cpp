// Placement: the input's holder wins unless it is much busier; sources spread evenly; full
// workers are skipped.
#include <gtest/gtest.h>

#include <ember/scheduler/placement.hpp>
#include <map>
#include <vector>

namespace ember {
namespace {

TEST(placement, the_worker_holding_most_input_bytes_wins) {
  std::vector<worker_load> w = {{0, 1, 0}, {1, 1, 0}, {2, 1, 0}};
  EXPECT_EQ(choose_worker({{0, 100}, {2, 900}, {1, 50}}, w), 2);
}

TEST(placement, the_input_on_a_gpu_beats_as_much_in_host_memory_which_beats_disk) {
  std::vector<worker_load> w = {{0, 1, 0}, {1, 1, 0}, {2, 1, 0}};
  // Worker 2 holds the same bytes in its device tier as 0 in host memory and 1 on disk.
  std::map<int, input_residency> where = {{0, {0, 500, 0}}, {1, {0, 0, 500}}, {2, {500, 0, 0}}};
  EXPECT_EQ(choose_worker(tier_weighted_bytes(where), w), 2);
  where.erase(2);
  EXPECT_EQ(choose_worker(tier_weighted_bytes(where), w), 0);
  where.erase(0);
  EXPECT_EQ(choose_worker(tier_weighted_bytes(where), w), 1);
  // Much more on disk still outweighs a little in device memory: bytes moved count too.
  where = {{0, {100, 0, 0}}, {1, {0, 0, 1000}}};
  EXPECT_EQ(choose_worker(tier_weighted_bytes(where), w), 1);
  EXPECT_EQ(tier_weighted_bytes({{3, {1, 10, 100}}}).at(3), 4 + 20 + 100);
}

TEST(placement, equal_holders_go_to_the_less_loaded) {
  std::vector<worker_load> w = {{0, 1, 3}, {1, 1, 1}, {2, 1, 2}};
  EXPECT_EQ(choose_worker({{0, 10}, {1, 10}, {2, 10}}, w), 1);
  // Equal loads: the lower id.
  w[0].assigned = 1;
  EXPECT_EQ(choose_worker({{0, 10}, {1, 10}, {2, 10}}, w), 0);
}

TEST(placement, a_much_busier_holder_gives_way_to_the_least_loaded) {
  std::vector<worker_load> w = {{0, 1, 3}, {1, 1, 0}};
  placement_policy p;
  p.max_imbalance_per_slot = 2;
  EXPECT_EQ(choose_worker({{0, 1000}}, w, p), 1);  // 3 tasks ahead: more than 2 per slot
  w[0].assigned = 2;
  EXPECT_EQ(choose_worker({{0, 1000}}, w, p), 0);  // 2 ahead: locality still wins
  // Load counts per slot: four slots carry eight tasks as lightly as one slot carries two.
  std::vector<worker_load> wide = {{0, 4, 8}, {1, 1, 0}};
  EXPECT_EQ(choose_worker({{0, 1000}}, wide, p), 0);
}

TEST(placement, sources_spread_evenly_over_the_workers) {
  std::vector<worker_load> w = {{0, 1, 0}, {1, 2, 0}, {2, 1, 0}};
  std::vector<int> given(3, 0);
  for (int task = 0; task < 40; ++task) {
    auto choice = choose_worker({}, w);
    ASSERT_TRUE(choice.has_value());
    ++w[static_cast<std::size_t>(*choice)].assigned;
    ++given[static_cast<std::size_t>(*choice)];
  }
  // The two-slot worker gets twice the others' share.
  EXPECT_EQ(given, (std::vector<int>{10, 20, 10}));
}

TEST(placement, full_workers_are_skipped_and_none_with_room_means_wait) {
  placement_policy p;
  p.queue_depth_per_slot = 1;  // room for 2 tasks per slot
  std::vector<worker_load> w = {{0, 1, 2}, {1, 1, 1}};
  EXPECT_EQ(choose_worker({{0, 1000}}, w, p), 1);
  w[1].assigned = 2;
  EXPECT_FALSE(choose_worker({{0, 1000}}, w, p).has_value());
  EXPECT_FALSE(choose_worker({}, {}, p).has_value());
}

TEST(placement, bytes_held_by_workers_that_are_gone_do_not_count) {
  std::vector<worker_load> w = {{1, 1, 4}, {2, 1, 0}};
  EXPECT_EQ(choose_worker({{0, 1'000'000}, {1, 10}}, w), 2);
  EXPECT_EQ(
      choose_worker({{0, 1'000'000}, {1, 10}}, std::vector<worker_load>{{1, 1, 0}, {2, 1, 0}}), 1);
}

}  // namespace
}  // namespace ember
