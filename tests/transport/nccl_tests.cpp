#include <ember/transport/nccl.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <numeric>
#include <regex>
#include <string>
#include <vector>

#include <ember/config.hpp>
#include <ember/host/error.hpp>

#include "common/backends.hpp"
#include "common/errors.hpp"
#include "common/tables.hpp"

namespace ember::test {
namespace {

using transport::nccl_communicator;
using transport::nccl_options;

// NCCL reads its environment once, at its first call: keep the bootstrap listener of
// nccl_make_unique_id on loopback (TOOLCHAIN.md) before any test runs. An explicit setting wins.
const bool loopback_only = [] { return ::setenv("NCCL_SOCKET_IFNAME", "lo", 0) == 0; }();

bool contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

TEST(nccl, is_built_exactly_in_cuda_builds) {
  ASSERT_TRUE(loopback_only);
  EXPECT_EQ(transport::nccl_built(), EMBER_WITH_CUDA == 1);
  if (!transport::nccl_built()) {
    EXPECT_EQ(transport::nccl_version(), "");
    return;
  }
  EXPECT_TRUE(std::regex_match(transport::nccl_version(), std::regex(R"(2\.[0-9]+\.[0-9]+)")))
      << transport::nccl_version();
}

TEST(nccl, unique_ids_differ_between_calls) {
  if (!transport::nccl_built()) {
    expect_invalid_input([] { (void)transport::nccl_make_unique_id(); }, "built without CUDA");
    return;
  }
  auto a = transport::nccl_make_unique_id();
  auto b = transport::nccl_make_unique_id();
  EXPECT_NE(a, b);
  EXPECT_NE(a, transport::nccl_unique_id{});
}

TEST(nccl, create_rejects_bad_arguments_before_touching_a_device) {
  transport::nccl_unique_id id{};
  if (!transport::nccl_built()) {
    expect_invalid_input([&] { (void)nccl_communicator::create(id, 1, 0, {}); },
                         "built without CUDA");
    return;
  }
  expect_invalid_input([&] { (void)nccl_communicator::create(id, 0, 0, {}); }, "at least 1");
  expect_invalid_input([&] { (void)nccl_communicator::create(id, 2, 2, {}); },
                       "rank 2 is outside [0, 2)");
  expect_invalid_input([&] { (void)nccl_communicator::create(id, 2, -1, {}); }, "rank -1");
  nccl_options no_time;
  no_time.op_timeout = std::chrono::milliseconds(0);
  expect_invalid_input([&] { (void)nccl_communicator::create(id, 1, 0, no_time); }, "positive");
}

TEST(nccl, create_without_a_gpu_fails_cleanly_and_quickly) {
  if (!transport::nccl_built()) GTEST_SKIP() << "this build has no NCCL";
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is usable here; covered by the GPU tests";
  auto id = transport::nccl_make_unique_id();
  nccl_options options;
  options.init_timeout = std::chrono::milliseconds(5'000);
  auto start = std::chrono::steady_clock::now();
  try {
    (void)nccl_communicator::create(id, 1, 0, options);
    ADD_FAILURE() << "create() succeeded without a usable CUDA device";
  } catch (const invalid_input& e) {
    EXPECT_TRUE(contains(e.what(), "CUDA")) << e.what();
    EXPECT_TRUE(contains(e.what(), "rank 0 of 1")) << e.what();
  } catch (const transport_error& e) {
    EXPECT_TRUE(contains(e.what(), "rank 0 of 1")) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

// ---- on a GPU --------------------------------------------------------------------------------

class nccl_gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) {
      if (gpu_required()) {
        FAIL() << "EMBER_REQUIRE_GPU=1 but CUDA is unavailable: " << cuda_unavailable_reason();
      }
      GTEST_SKIP() << "CUDA unavailable: " << cuda_unavailable_reason();
    }
    context_options o;
    o.backend = backend_choice::cuda;
    _ctx = context::create(o);
    _comm = nccl_communicator::create(transport::nccl_make_unique_id(), 1, 0, {});
  }
  context& ctx() { return *_ctx; }
  nccl_communicator& comm() { return *_comm; }

  /// Exchanges `outgoing` (device tables) on the one-rank communicator; returns the result on
  /// the host.
  table round_trip(const table_view& outgoing) {
    std::vector<type_id> types;
    for (const auto& c : outgoing.columns()) types.push_back(c.type());
    std::vector<table_view> out{outgoing};
    auto received = transport::all_to_all_tables(comm(), out, types, ctx());
    EXPECT_EQ(received.size(), 1u);
    EXPECT_EQ(received.at(0).names(), outgoing.names());
    return to_host(received.at(0).view(), ctx());
  }

 private:
  std::unique_ptr<context> _ctx;
  std::unique_ptr<nccl_communicator> _comm;
};

table sample(std::size_t n, std::uint64_t seed) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("i", random_int64(n, -1000, 1000, 0.2, seed));
  cols.emplace_back("f", random_float64(n, -1, 1, 0.1, seed + 1));
  cols.emplace_back("s", random_strings(n, 50, 0.2, seed + 2));
  cols.emplace_back("plain", random_int64(n, 0, 9, 0.0, seed + 3));
  return make_table(std::move(cols));
}

TEST_F(nccl_gpu, one_rank_communicator_reports_itself) {
  EXPECT_EQ(comm().rank(), 0);
  EXPECT_EQ(comm().size(), 1);
  EXPECT_EQ(comm().device(), 0);
  EXPECT_TRUE(comm().healthy());
}

TEST_F(nccl_gpu, all_to_all_of_raw_bytes_round_trips) {
  // 1 MiB plus an odd tail, so the transfer is not a multiple of anything convenient.
  const std::size_t bytes = (std::size_t{1} << 20) + 13;
  std::vector<std::uint8_t> host(bytes);
  std::iota(host.begin(), host.end(), std::uint8_t{7});
  buffer src(bytes, ctx().resource(), ctx().stream());
  buffer dst(bytes, ctx().resource(), ctx().stream());
  ctx().copy(src.data(), host.data(), bytes);
  std::vector<nccl_communicator::device_bytes> send{{src.data(), bytes}};
  std::vector<nccl_communicator::mutable_device_bytes> recv{{dst.data(), bytes}};
  comm().all_to_all(send, recv, ctx().stream());
  std::vector<std::uint8_t> back(bytes);
  ctx().copy(back.data(), dst.data(), bytes);
  EXPECT_EQ(back, host);

  // All-empty entries are a no-op.
  std::vector<nccl_communicator::device_bytes> none{{nullptr, 0}};
  std::vector<nccl_communicator::mutable_device_bytes> nothing{{nullptr, 0}};
  comm().all_to_all(none, nothing, ctx().stream());
  EXPECT_TRUE(comm().healthy());
}

TEST_F(nccl_gpu, all_to_all_rejects_wrong_entry_counts_and_the_null_stream) {
  std::vector<nccl_communicator::device_bytes> two{{nullptr, 0}, {nullptr, 0}};
  std::vector<nccl_communicator::mutable_device_bytes> one{{nullptr, 0}};
  expect_invalid_input([&] { comm().all_to_all(two, one, ctx().stream()); }, "needs 1 send");
  buffer b(8, ctx().resource(), ctx().stream());
  std::vector<nccl_communicator::device_bytes> send{{b.data(), 8}};
  std::vector<nccl_communicator::mutable_device_bytes> recv{{b.data(), 8}};
  expect_invalid_input([&] { comm().all_to_all(send, recv, stream_view{}); }, "null stream");
  EXPECT_TRUE(comm().healthy());
}

TEST_F(nccl_gpu, all_to_all_tables_round_trips_a_whole_table) {
  auto host = sample(1000, 11);
  auto dev = to_device(host.view(), ctx());
  auto back = round_trip(dev.view());
  EXPECT_EQ(rows_of(back.view()), rows_of(host.view()));
}

TEST_F(nccl_gpu, all_to_all_tables_compacts_sliced_inputs) {
  const size_type n = 1000;
  auto host = sample(static_cast<std::size_t>(n), 12);
  auto dev = to_device(host.view(), ctx());
  // 3..n-2 starts mid-word (mask shifted, string offsets rebased); 32..n-1 starts on a word
  // boundary (mask sent from its word, string offsets still rebased).
  for (auto [begin, end] : {std::pair<size_type, size_type>{3, n - 2}, {32, n - 1}, {5, 5}}) {
    auto back = round_trip(dev.view().slice(begin, end));
    EXPECT_EQ(rows_of(back.view()), rows_of(host.view().slice(begin, end)))
        << "rows [" << begin << ", " << end << ")";
  }
}

TEST_F(nccl_gpu, all_to_all_tables_of_empty_tables) {
  auto host = sample(0, 13);
  auto dev = to_device(host.view(), ctx());
  auto back = round_trip(dev.view());
  EXPECT_EQ(back.num_rows(), 0);
  EXPECT_EQ(back.num_columns(), 4);
  EXPECT_EQ(back.view().column(2).type(), type_id::string);

  auto no_columns = round_trip(table_view{});
  EXPECT_EQ(no_columns.num_columns(), 0);
}

TEST_F(nccl_gpu, all_to_all_tables_rejects_mismatched_inputs) {
  auto dev = to_device(sample(10, 14).view(), ctx());
  std::vector<table_view> out{dev.view()};
  std::vector<type_id> wrong{type_id::int64, type_id::float64, type_id::int64, type_id::int64};
  expect_invalid_input([&] { (void)transport::all_to_all_tables(comm(), out, wrong, ctx()); },
                       "column 's' is string, expected int64");
  std::vector<type_id> short_types{type_id::int64};
  expect_invalid_input([&] { (void)transport::all_to_all_tables(comm(), out, short_types, ctx()); },
                       "1 types were given");
  std::vector<table_view> two{dev.view(), dev.view()};
  std::vector<type_id> types{type_id::int64, type_id::float64, type_id::string, type_id::int64};
  expect_invalid_input([&] { (void)transport::all_to_all_tables(comm(), two, types, ctx()); },
                       "one outgoing table per rank");
  auto host = sample(10, 15);
  std::vector<table_view> on_host{host.view()};
  expect_invalid_input([&] { (void)transport::all_to_all_tables(comm(), on_host, types, ctx()); },
                       "not device memory");
  EXPECT_TRUE(comm().healthy());
}

TEST_F(nccl_gpu, abort_makes_later_calls_throw) {
  comm().abort();
  EXPECT_FALSE(comm().healthy());
  comm().abort();  // idempotent
  buffer b(8, ctx().resource(), ctx().stream());
  std::vector<nccl_communicator::device_bytes> send{{b.data(), 8}};
  std::vector<nccl_communicator::mutable_device_bytes> recv{{b.data(), 8}};
  try {
    comm().all_to_all(send, recv, ctx().stream());
    ADD_FAILURE() << "all_to_all succeeded on an aborted communicator";
  } catch (const transport_error& e) {
    EXPECT_TRUE(contains(e.what(), "aborted")) << e.what();
  }
  auto dev = to_device(sample(4, 16).view(), ctx());
  std::vector<table_view> out{dev.view()};
  std::vector<type_id> types{type_id::int64, type_id::float64, type_id::string, type_id::int64};
  EXPECT_THROW((void)transport::all_to_all_tables(comm(), out, types, ctx()), transport_error);
}

TEST_F(nccl_gpu, create_rejects_a_device_that_does_not_exist) {
  nccl_options options;
  options.device = 1000;
  expect_invalid_input(
      [&] { (void)nccl_communicator::create(transport::nccl_make_unique_id(), 1, 0, options); },
      "CUDA device 1000 does not exist");
}

TEST_F(nccl_gpu, create_times_out_when_a_rank_never_joins) {
  // Rank 1 of 2 never shows up: creation must give up after init_timeout, not hang.
  nccl_options options;
  options.init_timeout = std::chrono::milliseconds(2'000);
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW((void)nccl_communicator::create(transport::nccl_make_unique_id(), 2, 0, options),
               timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

}  // namespace
}  // namespace ember::test
