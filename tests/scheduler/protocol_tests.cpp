// The scheduler's wire messages (scheduler/src/protocol.cpp) encoded and decoded again: every
// field comes back, and a body cut short anywhere, or one promising more entries than it holds,
// is an ember::invalid_input that names the message and the peer. The messages are internal to
// the scheduler component, so the test reads its detail header directly.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <ember/host/error.hpp>
#include <ember/scheduler/executor.hpp>
#include <vector>

#include "../../scheduler/src/detail/protocol.hpp"

namespace ember {
namespace {

using ::testing::HasSubstr;

detail::task_done_msg task_done_with_sources() {
  detail::task_done_msg m;
  m.job = 7;
  m.stage = 1;
  m.partition = 4;
  m.attempt = 2;
  m.rows = 1000;
  m.bytes = 8000;
  m.fetched_bytes = 300 + 500;
  m.fetch_start = 1.25;
  m.fetch_end = 1.75;
  m.labels = {{"clean", 10, 80}};
  m.block_bytes = {11, 12, 13};
  m.fetch_sources = {{0, 300, 1.25, 1.5}, {2, 500, 1.25, 1.75}};
  return m;
}

detail::job_result_msg job_result_with_links() {
  detail::job_result_msg m;
  m.request = 3;
  m.retried_tasks = 1;
  stage_metrics map;
  map.name = "map";
  map.tasks = 6;
  map.bytes_out = 4096;
  stage_metrics reduce;
  reduce.name = "reduce";
  reduce.tasks = 6;
  reduce.bytes_fetched = 100 + 200 + 300;
  reduce.fetch_seconds = 0.5;
  reduce.links = {{0, 1, 100, 0.25}, {0, 2, 200, 0.5}, {1, 0, 300, 0.125}};
  m.metrics.stages = {map, reduce};
  m.metrics.labels = {{"out", 5, 40}};
  m.metrics.seconds = 2.5;
  return m;
}

// Every proper prefix of `body` is rejected as M with a clear message.
template <class M>
void expect_every_prefix_rejected(detail::msg type, const std::vector<std::uint8_t>& body) {
  for (std::size_t n = 0; n < body.size(); ++n) {
    SCOPED_TRACE(n);
    std::vector<std::uint8_t> cut(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(n));
    try {
      (void)detail::decode<M>(type, cut, "peer-9");
      ADD_FAILURE() << "a body of " << n << " of " << body.size() << " bytes was accepted";
    } catch (const invalid_input& e) {
      EXPECT_THAT(e.what(), HasSubstr("peer-9"));
      EXPECT_THAT(e.what(), HasSubstr(std::string(detail::to_string(type))));
    }
  }
}

TEST(protocol, TaskDoneCarriesItsFetchSources) {
  auto sent = task_done_with_sources();
  auto body = detail::encode(sent);
  auto got = detail::decode<detail::task_done_msg>(detail::msg::task_done, body, "peer");
  EXPECT_EQ(got.job, sent.job);
  EXPECT_EQ(got.partition, sent.partition);
  EXPECT_EQ(got.fetched_bytes, sent.fetched_bytes);
  EXPECT_EQ(got.block_bytes, sent.block_bytes);
  ASSERT_EQ(got.labels.size(), 1u);
  EXPECT_EQ(got.labels[0].label, "clean");
  ASSERT_EQ(got.fetch_sources.size(), sent.fetch_sources.size());
  for (std::size_t i = 0; i < sent.fetch_sources.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(got.fetch_sources[i].worker, sent.fetch_sources[i].worker);
    EXPECT_EQ(got.fetch_sources[i].bytes, sent.fetch_sources[i].bytes);
    EXPECT_EQ(got.fetch_sources[i].start, sent.fetch_sources[i].start);
    EXPECT_EQ(got.fetch_sources[i].end, sent.fetch_sources[i].end);
  }
  // A task that fetched nothing sends no sources.
  detail::task_done_msg local;
  auto empty =
      detail::decode<detail::task_done_msg>(detail::msg::task_done, detail::encode(local), "peer");
  EXPECT_TRUE(empty.fetch_sources.empty());
}

TEST(protocol, ATruncatedTaskDoneIsRejected) {
  auto body = detail::encode(task_done_with_sources());
  expect_every_prefix_rejected<detail::task_done_msg>(detail::msg::task_done, body);
  // The last field is the sources' count: one promising more than the body holds is refused
  // before anything is allocated for them.
  detail::task_done_msg none;
  auto lying = detail::encode(none);
  ASSERT_GE(lying.size(), 4u);
  lying[lying.size() - 4] = 0xff;
  lying[lying.size() - 3] = 0xff;
  try {
    (void)detail::decode<detail::task_done_msg>(detail::msg::task_done, lying, "peer-9");
    FAIL() << "a count past the body was accepted";
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("fetch sources"));
    EXPECT_THAT(e.what(), HasSubstr("peer-9"));
  }
}

TEST(protocol, JobResultCarriesEachStagesLinks) {
  auto sent = job_result_with_links();
  auto body = detail::encode(sent);
  auto got = detail::decode<detail::job_result_msg>(detail::msg::job_result, body, "peer");
  EXPECT_EQ(got.request, sent.request);
  EXPECT_EQ(got.retried_tasks, sent.retried_tasks);
  ASSERT_EQ(got.metrics.stages.size(), 2u);
  EXPECT_TRUE(got.metrics.stages[0].links.empty());
  const auto& want = sent.metrics.stages[1];
  const auto& have = got.metrics.stages[1];
  EXPECT_EQ(have.name, "reduce");
  EXPECT_EQ(have.bytes_fetched, want.bytes_fetched);
  EXPECT_EQ(have.fetch_seconds, want.fetch_seconds);
  ASSERT_EQ(have.links.size(), want.links.size());
  for (std::size_t i = 0; i < want.links.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(have.links[i].from_worker, want.links[i].from_worker);
    EXPECT_EQ(have.links[i].to_worker, want.links[i].to_worker);
    EXPECT_EQ(have.links[i].bytes, want.links[i].bytes);
    EXPECT_EQ(have.links[i].seconds, want.links[i].seconds);
  }
  ASSERT_EQ(got.metrics.labels.size(), 1u);
  EXPECT_EQ(got.metrics.labels[0].label, "out");
  EXPECT_EQ(got.metrics.seconds, sent.metrics.seconds);
}

TEST(protocol, ATruncatedJobResultIsRejected) {
  auto body = detail::encode(job_result_with_links());
  expect_every_prefix_rejected<detail::job_result_msg>(detail::msg::job_result, body);
}

}  // namespace
}  // namespace ember
