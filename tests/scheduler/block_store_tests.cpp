#include <gtest/gtest.h>

#include <ember/host/error.hpp>
#include <ember/scheduler/block_store.hpp>
#include <thread>

#include "common/tables.hpp"
#include "scheduler/helpers.hpp"

namespace ember::test {
namespace {

block make_block(std::int64_t value, std::int64_t bytes = 8) {
  auto t = std::make_shared<const table>(
      table_of("v", make_column<std::int64_t>(type_id::int64, std::vector<std::int64_t>{value})));
  return block{t, t->view(), -1, bytes};
}

std::int64_t value_of(const block& b) { return copy_values<std::int64_t>(b.rows.column(0)).at(0); }

TEST(block_store, reduce_input_returns_a_stage_blocks_in_map_order) {
  block_store store;
  // Written out of order, as tasks finish.
  store.put({1, 2, 0}, make_block(120));
  store.put({1, 0, 0}, make_block(100));
  store.put({1, 0, 1}, make_block(101));
  store.put({1, 1, 0}, make_block(110));
  store.put({2, 0, 0}, make_block(200));
  auto blocks = store.reduce_input(1, 0);
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(value_of(blocks[0]), 100);
  EXPECT_EQ(value_of(blocks[1]), 110);
  EXPECT_EQ(value_of(blocks[2]), 120);
  EXPECT_EQ(store.reduce_input(1, 1).size(), 1u);
  EXPECT_TRUE(store.reduce_input(3, 0).empty());
  EXPECT_EQ(store.size(), 5u);
  EXPECT_EQ(store.bytes(), 40);
  ASSERT_TRUE(store.get({2, 0, 0}).has_value());
  EXPECT_FALSE(store.get({2, 0, 1}).has_value());
}

TEST(block_store, erasing_a_stage_keeps_blocks_that_readers_hold) {
  block_store store;
  store.put({0, 0, 0}, make_block(1));
  store.put({1, 0, 0}, make_block(2));
  auto held = store.get({0, 0, 0});
  store.erase_stage(0);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.bytes(), 8);
  EXPECT_EQ(value_of(*held), 1);  // the owner keeps the memory alive
  store.clear();
  EXPECT_EQ(store.size(), 0u);
  EXPECT_EQ(store.bytes(), 0);
}

TEST(block_store, a_block_written_twice_is_a_logic_error) {
  block_store store;
  store.put({0, 1, 2}, make_block(1));
  EXPECT_THROW(store.put({0, 1, 2}, make_block(1)), logic_error);
}

TEST(block_store, concurrent_writers_and_readers) {
  block_store store;
  std::vector<std::thread> threads;
  for (int m = 0; m < 4; ++m) {
    threads.emplace_back([&store, m] {
      for (int r = 0; r < 200; ++r) {
        store.put({0, m, r}, make_block(m * 1000 + r));
        (void)store.reduce_input(0, r);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store.size(), 800u);
  for (int r = 0; r < 200; ++r) {
    auto blocks = store.reduce_input(0, r);
    ASSERT_EQ(blocks.size(), 4u);
    for (int m = 0; m < 4; ++m) EXPECT_EQ(value_of(blocks[m]), m * 1000 + r);
  }
}

}  // namespace
}  // namespace ember::test
