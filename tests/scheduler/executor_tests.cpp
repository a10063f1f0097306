// The local executor runs every kind of plan with 1, 2 and 3 workers and several partition
// counts, and must give what the operators give when called directly on one context.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <ember/cuda/copying.hpp>
#include <ember/cuda/expression.hpp>
#include <ember/cuda/groupby.hpp>
#include <ember/cuda/join.hpp>
#include <ember/cuda/sort.hpp>
#include <ember/cuda/tokenize.hpp>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/io.hpp>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/generators.hpp>
#include <thread>

#include "common/backends.hpp"
#include "common/tables.hpp"
#include "common/paths.hpp"
#include "scheduler/helpers.hpp"

namespace ember::test {
namespace {

using ::testing::HasSubstr;

struct shape {
  int workers;
  int per_worker;
  int source_partitions;  // 0: the client's default
};

std::string shape_name(const ::testing::TestParamInfo<shape>& info) {
  return std::to_string(info.param.workers) + "_workers_" + std::to_string(info.param.per_worker) +
         "_per_worker_" + std::to_string(info.param.source_partitions) + "_source_partitions";
}

// Keys with nulls, a hot key, strings, floats and a sliced-friendly size.
table mixed(std::size_t rows, std::uint64_t seed) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("k", random_int64(rows, 0, 20, 0.1, seed));
  cols.emplace_back("s", random_strings(rows, 30, 0.2, seed + 1));
  cols.emplace_back("v", random_float64(rows, -100, 100, 0.05, seed + 2));
  cols.emplace_back("i", random_int32(rows, -1000, 1000, 0.1, seed + 3));
  return make_table(std::move(cols));
}

table dimension(std::size_t rows, std::uint64_t seed) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("k", random_int64(rows, 0, 25, 0.05, seed));
  cols.emplace_back("label", random_strings(rows, 5, 0.0, seed + 1));
  cols.emplace_back("w", random_float64(rows, 0, 1, 0.0, seed + 2));
  return make_table(std::move(cols));
}

aggregation agg(aggregation_kind kind, std::string column, std::string output) {
  return aggregation{kind, std::move(column), std::move(output)};
}

class executor_test : public ::testing::TestWithParam<shape> {
 protected:
  void SetUp() override {
    client_options o;
    o.backend = backend_choice::cpu;
    o.workers = GetParam().workers;
    o.partitions_per_worker = GetParam().per_worker;
    o.broadcast_limit_rows = 500;
    _client = std::make_unique<client>(client::local(o));
  }
  client& c() { return *_client; }
  dataset input(const table& t) { return c().from_table(t.view(), GetParam().source_partitions); }

 private:
  std::unique_ptr<client> _client;
};

TEST_P(executor_test, project_and_filter_keep_the_row_order) {
  auto t = mixed(3000, 1);
  std::vector<named_expression> exprs{
      {"k", col("k")}, {"s", col("s")}, {"v2", col("v") * lit(2.0)}, {"ki", col("k") + col("i")}};
  auto predicate = col("k") > lit(std::int64_t{5}) || is_null(col("s"));
  auto got = input(t).project(exprs).filter(predicate).collect();
  auto want = on_reference(t.view(), [&](const table_view& in, context& ctx) {
    auto p = project(in, exprs, ctx);
    return filter(p.view(), predicate, ctx);
  });
  expect_same_table(got.view(), want.view(), true);
}

TEST_P(executor_test, tokenize_keeps_the_word_order) {
  std::vector<std::optional<std::string>> lines;
  std::mt19937_64 rng(5);
  for (int i = 0; i < 500; ++i) {
    if (i % 17 == 0) {
      lines.push_back(std::nullopt);
      continue;
    }
    lines.push_back(random_text(1, rng(), false));
  }
  auto t = table_of("line", make_string_column(lines));
  auto got = input(t).tokenize("line", "word").collect();
  auto want = on_reference(t.view(), [](const table_view& in, context& ctx) {
    return tokenize(in, "line", "word", ctx);
  });
  expect_same_table(got.view(), want.view(), true);
}

TEST_P(executor_test, group_by_matches_one_context_for_every_aggregation) {
  auto t = mixed(4000, 2);
  std::vector<aggregation> aggs{
      agg(aggregation_kind::sum, "v", "sum_v"),     agg(aggregation_kind::sum, "i", "sum_i"),
      agg(aggregation_kind::count, "s", "count_s"), agg(aggregation_kind::count_all, "", "rows"),
      agg(aggregation_kind::min, "s", "min_s"),     agg(aggregation_kind::max, "v", "max_v"),
      agg(aggregation_kind::mean, "v", "mean_v"),   agg(aggregation_kind::mean, "i", "mean_i")};
  for (const auto& keys : {std::vector<std::string>{"k"}, std::vector<std::string>{"s", "k"}}) {
    auto got = input(t).group_by(keys).aggregate(aggs).collect();
    auto want = on_reference(t.view(), [&](const table_view& in, context& ctx) {
      return group_by(in, keys, aggs, ctx);
    });
    expect_same_table(got.view(), want.view(), false, 1e-9);
  }
}

TEST_P(executor_test, count_distinct_and_global_aggregates) {
  auto t = mixed(2500, 3);
  std::vector<aggregation> distinct_aggs{agg(aggregation_kind::count_distinct, "s", "kinds"),
                                         agg(aggregation_kind::sum, "i", "total")};
  auto got = input(t).group_by({"k"}, distinct_aggs).collect();
  auto want = on_reference(t.view(), [&](const table_view& in, context& ctx) {
    return group_by(in, {"k"}, distinct_aggs, ctx);
  });
  expect_same_table(got.view(), want.view(), false);

  std::vector<aggregation> global{
      agg(aggregation_kind::count_all, "", "rows"), agg(aggregation_kind::sum, "i", "total"),
      agg(aggregation_kind::mean, "v", "mean"), agg(aggregation_kind::max, "s", "last")};
  for (std::size_t rows : {0, 1, 2500}) {
    auto in = mixed(rows, 4);
    auto g = input(in).aggregate(global).collect();
    auto w = on_reference(
        in.view(), [&](const table_view& v, context& ctx) { return group_by(v, {}, global, ctx); });
    ASSERT_EQ(g.num_rows(), 1);
    expect_same_table(g.view(), w.view(), true, 1e-9);
  }
}

TEST_P(executor_test, distinct_matches_one_context) {
  auto t = mixed(3000, 6);
  for (const auto& columns : {std::vector<std::string>{}, std::vector<std::string>{"k"},
                              std::vector<std::string>{"s", "k"}}) {
    auto got = input(t).distinct(columns).collect();
    auto want = on_reference(
        t.view(), [&](const table_view& in, context& ctx) { return distinct(in, columns, ctx); });
    expect_same_table(got.view(), want.view(), false, 0.0);
  }
}

TEST_P(executor_test, sort_top_k_and_limit_keep_the_stable_order) {
  auto t = mixed(3000, 7);
  std::vector<sort_key> keys{{"k", true, true}, {"s", false, false}};
  auto sorted = input(t).sort(keys).collect();
  auto want = on_reference(t.view(),
                           [&](const table_view& in, context& ctx) { return sort(in, keys, ctx); });
  expect_same_table(sorted.view(), want.view(), true, 0.0);

  for (size_type k : {0, 1, 17, 5000}) {
    auto top = input(t).top_k(keys, k).collect();
    auto want_top = on_reference(
        t.view(), [&](const table_view& in, context& ctx) { return top_k(in, keys, k, ctx); });
    expect_same_table(top.view(), want_top.view(), true, 0.0);
  }

  // A limit without a sort keeps the first rows in partition (input) order.
  auto first = input(t).limit(1234).collect();
  expect_same_table(first.view(), t.view().slice(0, 1234), true, 0.0);
  auto after_sort = input(t).sort(keys).limit(10).collect();
  expect_same_table(after_sort.view(), want.view().slice(0, 10), true, 0.0);
}

TEST_P(executor_test, joins_of_every_kind_and_strategy) {
  auto left = mixed(1500, 8);
  for (std::size_t right_rows : {40, 600}) {  // below and above the broadcast limit
    auto right = dimension(right_rows, 9);
    for (auto kind : {join_kind::inner, join_kind::left, join_kind::semi, join_kind::anti}) {
      for (auto strategy :
           {join_strategy::automatic, join_strategy::shuffle, join_strategy::broadcast}) {
        auto got = input(left)
                       .join(c().from_table(right.view(), 3), {"k"}, {"k"}, kind, strategy)
                       .collect();
        auto want = on_reference(left.view(), [&](const table_view& l, context& ctx) {
          auto r = to_device(right.view(), ctx);
          return hash_join(l, r.view(), {"k"}, {"k"}, kind, ctx);
        });
        SCOPED_TRACE(std::string(to_string(kind)) + " join, " + std::string(to_string(strategy)) +
                     ", " + std::to_string(right_rows) + " right rows");
        expect_same_table(got.view(), want.view(), false, 0.0);
      }
    }
  }
}

TEST_P(executor_test, concat_keeps_each_input_in_order) {
  auto a = mixed(700, 10);
  auto b = mixed(333, 11);
  auto got = input(a).concat(c().from_table(b.view(), 2)).collect();
  auto want = on_reference(a.view(), [&](const table_view& in, context& ctx) {
    auto other = to_device(b.view(), ctx);
    return concatenate({in, other.view()}, ctx);
  });
  expect_same_table(got.view(), want.view(), true, 0.0);
}

TEST_P(executor_test, text_and_generated_sources_match_reading_them_whole) {
  temp_dir dir;
  std::vector<std::filesystem::path> files{dir.write("a.txt", random_text(300, 21)),
                                           dir.write("b.txt", random_text(80, 22, false))};
  auto lines = c().read_text(files, GetParam().source_partitions).collect();
  expect_same_table(lines.view(), read_text_lines(files).view(), true, 0.0);

  auto generated = c().generate("events", 5000, 7, 0, GetParam().source_partitions).collect();
  auto whole = generate_rows(generate_source{"events", 5000, 7, 0, 0}, 0, 5000);
  expect_same_table(generated.view(), whole.view(), true, 0.0);
}

TEST_P(executor_test, empty_inputs_flow_through_every_stage) {
  auto empty = mixed(0, 12);
  auto ds = input(empty);
  EXPECT_EQ(ds.sort({{"k", false, false}}).collect().num_rows(), 0);
  EXPECT_EQ(ds.group_by({"k"}, {agg(aggregation_kind::count_all, "", "n")}).collect().num_rows(),
            0);
  EXPECT_EQ(ds.distinct().collect().num_rows(), 0);
  auto joined = ds.join(c().from_table(dimension(10, 1).view()), {"k"}, join_kind::left,
                        join_strategy::shuffle)
                    .collect();
  EXPECT_EQ(joined.num_rows(), 0);
  EXPECT_EQ(joined.names(), (std::vector<std::string>{"k", "s", "v", "i", "label", "w"}));
}

TEST_P(executor_test, a_multi_stage_job_matches_the_operators_chained_on_one_context) {
  auto facts = mixed(3000, 13);
  auto dims = dimension(300, 14);
  auto got = input(facts)
                 .filter(is_not_null(col("k")))
                 .join(c().from_table(dims.view()), {"k"}, join_kind::inner, join_strategy::shuffle)
                 .with_columns({{"weighted", col("v") * col("w")}})
                 .group_by({"label"}, {agg(aggregation_kind::sum, "weighted", "total"),
                                       agg(aggregation_kind::count_all, "", "rows")})
                 .sort({{"total", true, false}})
                 .limit(3)
                 .collect();
  auto want = on_reference(facts.view(), [&](const table_view& in, context& ctx) {
    auto f = filter(in, is_not_null(col("k")), ctx);
    auto d = to_device(dims.view(), ctx);
    auto j = hash_join(f.view(), d.view(), {"k"}, {"k"}, join_kind::inner, ctx);
    std::vector<named_expression> exprs;
    auto joined = j.view();
    for (const auto& n : joined.names()) exprs.push_back({n, col(n)});
    exprs.push_back({"weighted", col("v") * col("w")});
    auto p = project(j.view(), exprs, ctx);
    auto g = group_by(p.view(), {"label"},
                      {agg(aggregation_kind::sum, "weighted", "total"),
                       agg(aggregation_kind::count_all, "", "rows")},
                      ctx);
    return top_k(g.view(), {{"total", true, false}}, 3, ctx);
  });
  expect_same_table(got.view(), want.view(), true, 1e-9);
}

TEST_P(executor_test, metrics_describe_the_stages) {
  auto t = mixed(2000, 15);
  auto run = input(t)
                 .label("input")
                 .group_by({"k"}, {agg(aggregation_kind::count_all, "", "n")})
                 .label("counts")
                 .sort({{"k", false, false}})
                 .run();
  const auto& m = run.metrics;
  // Three stages (map, reduce, sort), or one when everything fits a single partition.
  ASSERT_EQ(m.stages.size(), GetParam().source_partitions == 1 ? 1u : 3u);
  EXPECT_EQ(m.stages.back().rows_out, run.result.num_rows());
  EXPECT_EQ(m.input_rows, 2000);
  EXPECT_GT(m.input_bytes, 2000 * 8);
  EXPECT_GE(m.seconds, m.stages.back().seconds);
  ASSERT_EQ(m.labels.size(), 2u);
  EXPECT_EQ(m.labels[0].label, "input");
  EXPECT_EQ(m.labels[0].rows, 2000);
  EXPECT_EQ(m.labels[1].label, "counts");
  EXPECT_EQ(m.labels[1].rows, run.result.num_rows());
  EXPECT_THAT(m.stages[0].name, HasSubstr("'input'"));
}

INSTANTIATE_TEST_SUITE_P(shapes, executor_test,
                         ::testing::Values(shape{1, 1, 1}, shape{1, 2, 3}, shape{2, 1, 0},
                                           shape{2, 3, 7}, shape{3, 1, 0}, shape{3, 2, 5}),
                         shape_name);

// ---- errors ---------------------------------------------------------------------------------

client cpu_client(int workers, std::size_t memory_limit = tracking_resource::unlimited) {
  client_options o;
  o.backend = backend_choice::cpu;
  o.workers = workers;
  o.device_memory_limit = memory_limit;
  return client::local(o);
}

class executor_errors : public ::testing::TestWithParam<int> {};

TEST_P(executor_errors, out_of_memory_in_a_task_reaches_the_caller_and_the_client_recovers) {
  auto c = cpu_client(GetParam(), 256 << 10);
  auto started = std::chrono::steady_clock::now();
  try {
    (void)c.generate("keyed", 2'000'000, 1).sort({{"key", false, false}}).collect();
    FAIL() << "the job fit in 256 KiB per worker";
  } catch (const out_of_memory& e) {
    EXPECT_THAT(e.what(), HasSubstr("worker"));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  // The cluster is still usable after a failed job.
  auto small = c.generate("range", 100, 1).aggregate({agg(aggregation_kind::sum, "id", "s")});
  auto result = small.collect();
  EXPECT_EQ(copy_values<std::int64_t>(result.view().column(0)).at(0), 4950);
}

TEST_P(executor_errors, a_file_that_vanishes_before_the_run_is_named) {
  auto c = cpu_client(GetParam());
  temp_dir dir;
  auto kept = dir.write("kept.txt", random_text(100, 1));
  auto gone = dir.write("gone.txt", random_text(100, 2));
  auto words = c.read_text({kept, gone}).tokenize("line").distinct();
  std::filesystem::remove(gone);
  try {
    (void)words.collect();
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("gone.txt"));
  }
}

struct callback_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

TEST_P(executor_errors, a_failing_progress_callback_keeps_its_exception_type) {
  client_options o;
  o.backend = backend_choice::cpu;
  o.workers = GetParam();
  o.progress = [](const std::string& stage, size_type, size_type) {
    throw callback_failure("the progress bar broke in " + stage);
  };
  auto c = client::local(o);
  try {
    (void)c.generate("keyed", 10000, 1)
        .group_by({"key"}, {agg(aggregation_kind::count_all, "", "n")})
        .collect();
    FAIL();
  } catch (const callback_failure& e) {
    EXPECT_THAT(e.what(), HasSubstr("the progress bar broke in"));
  }
}

TEST_P(executor_errors, a_job_past_its_deadline_times_out_promptly) {
  client_options o;
  o.backend = backend_choice::cpu;
  o.workers = GetParam();
  o.job_timeout = std::chrono::milliseconds(1);
  auto c = client::local(o);
  auto started = std::chrono::steady_clock::now();
  EXPECT_THROW((void)c.generate("sort", 3'000'000, 1).sort({{"payload", false, false}}).collect(),
               ember::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
}

INSTANTIATE_TEST_SUITE_P(workers, executor_errors, ::testing::Values(1, 2, 3));

TEST(executor, progress_reports_every_stage_to_completion) {
  std::vector<std::tuple<std::string, size_type, size_type>> seen;
  client_options o;
  o.backend = backend_choice::cpu;
  o.workers = 2;
  o.progress = [&](const std::string& stage, size_type done, size_type total) {
    seen.emplace_back(stage, done, total);
  };
  auto c = client::local(o);
  auto ds =
      c.generate("keyed", 5000, 1).group_by({"key"}, {agg(aggregation_kind::count_all, "", "n")});
  auto stages = c.explain(ds.logical_plan()).stages;
  (void)ds.collect();
  for (const auto& s : stages) {
    bool completed = false;
    for (const auto& [name, done, total] : seen) {
      EXPECT_LE(done, total);
      completed = completed || (name == s.name && done == total && total == s.partitions);
    }
    EXPECT_TRUE(completed) << s.name;
  }
}

TEST(executor, jobs_from_several_threads_share_the_workers) {
  auto c = cpu_client(2);
  auto t = mixed(3000, 20);
  auto want = on_reference(t.view(), [](const table_view& in, context& ctx) {
    return group_by(in, {"k"}, {agg(aggregation_kind::count_all, "", "n")}, ctx);
  });
  auto ds = c.from_table(t.view()).group_by({"k"}, {agg(aggregation_kind::count_all, "", "n")});
  std::vector<table> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { results[i] = ds.collect(); });
  for (auto& th : threads) th.join();
  for (const auto& r : results) expect_same_table(r.view(), want.view(), false, 0.0);
}

TEST(executor, a_shut_down_client_refuses_work) {
  auto c = cpu_client(2);
  auto ds = c.generate("range", 10, 1);
  c.shutdown();
  c.shutdown();
  try {
    (void)ds.collect();
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("shut down"));
  }
}

TEST(executor, malformed_physical_plans_are_rejected) {
  executor_options o;
  o.backend = backend_choice::cpu;
  o.workers = 1;
  executor ex(o);
  EXPECT_THROW((void)ex.run(physical_plan{}), invalid_input);
  plan p;
  p.add(generate_source{"range", 10, 1, 0, 2});
  planner_options two;
  two.partitions = 2;
  auto physical = plan_stages(p, two);
  physical.stages[0].partitions = 3;  // the body has 2
  EXPECT_THROW((void)ex.run(physical), invalid_input);
  physical.stages[0].partitions = 2;
  physical.stages[0].inputs = {0};  // reads itself
  EXPECT_THROW((void)ex.run(physical), invalid_input);
}

TEST(executor, cuda_workers_match_cpu_workers) {
  if (!cuda_available()) {
    if (gpu_required())
      FAIL() << "EMBER_REQUIRE_GPU=1 but CUDA is unavailable: " << cuda_unavailable_reason();
    GTEST_SKIP() << "CUDA backend unavailable: " << cuda_unavailable_reason();
  }
  client_options o;
  o.backend = backend_choice::cuda;
  auto gpu = client::local(o);
  EXPECT_EQ(gpu.backend(), backend_kind::cuda);
  auto cpu = cpu_client(2);
  auto job = [](client& c) {
    auto facts = c.generate("facts", 200'000, 3, 5000);
    auto dims = c.generate("dims", 5000, 4);
    return facts.join(dims, {"dim_key"}, join_kind::inner, join_strategy::shuffle)
        .with_columns({{"weighted", col("amount") * col("weight")}})
        .group_by({"segment"}, {agg(aggregation_kind::sum, "weighted", "w"),
                                agg(aggregation_kind::count_all, "", "n"),
                                agg(aggregation_kind::count_distinct, "dim_key", "dims")})
        .sort({{"segment", false, false}})
        .collect();
  };
  expect_same_table(job(gpu).view(), job(cpu).view(), true, 1e-9);
  auto words = [](client& c) {
    return c.read_text({source_dir() / "data" / "garden.txt"})
        .tokenize("line")
        .distinct()
        .sort({{"word", false, false}})
        .collect();
  };
  expect_same_table(words(gpu).view(), words(cpu).view(), true, 0.0);
}

TEST(executor, automatic_choice_without_a_gpu_gives_two_cpu_workers) {
  if (cuda_available()) GTEST_SKIP() << "a GPU is present: automatic picks CUDA workers";
  auto c = client::local();
  EXPECT_EQ(c.num_workers(), 2);
  EXPECT_EQ(c.backend(), backend_kind::cpu);
  EXPECT_EQ(c.default_partitions(), 4);
  auto threads = std::max(1u, std::thread::hardware_concurrency()) / 2;
  EXPECT_THAT(c.worker_descriptions().at(1),
              HasSubstr("cpu (" + std::to_string(std::max(1u, threads)) + " threads)"));
}

TEST(executor, bad_options_are_rejected) {
  client_options o;
  o.workers = -1;
  EXPECT_THROW((void)client::local(o), invalid_input);
  o.workers = 1;
  o.partitions_per_worker = 0;
  EXPECT_THROW((void)client::local(o), invalid_input);
  if (!cuda_available()) {
    client_options cuda;
    cuda.backend = backend_choice::cuda;
    try {
      (void)client::local(cuda);
      FAIL();
    } catch (const invalid_input& e) {
      EXPECT_THAT(e.what(), HasSubstr("cuda backend was requested but is unavailable"));
    }
  }
}

}  // namespace
}  // namespace ember::test
