#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/planner.hpp>
#include <ember/scheduler/schema_inference.hpp>

#include "common/tables.hpp"
#include "scheduler/helpers.hpp"

namespace ember::test {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const table> small_table() {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("k", random_int64(50, 0, 5, 0.1, 1));
  cols.emplace_back("s", random_strings(50, 4, 0.1, 2));
  cols.emplace_back("v", random_float64(50, 0, 1, 0.0, 3));
  return std::make_shared<const table>(make_table(std::move(cols)));
}

plan source(int partitions = 0) {
  plan p;
  p.add(table_source{small_table(), partitions});
  return p;
}

planner_options four() {
  planner_options o;
  o.partitions = 4;
  o.broadcast_limit_rows = 1000;
  return o;
}

template <class T>
bool body_has(const stage& s) {
  for (const auto& n : s.body.nodes)
    if (std::holds_alternative<T>(n.op)) return true;
  return false;
}

template <class T>
const T& root_op(const stage& s) {
  return std::get<T>(s.body.nodes[static_cast<std::size_t>(s.body.root)].op);
}

void expect_invalid(const plan& p, const std::vector<std::string>& parts) {
  try {
    (void)plan_stages(p, four());
    ADD_FAILURE() << "the plan was accepted:\n" << p.to_string();
  } catch (const invalid_input& e) {
    for (const auto& part : parts) EXPECT_THAT(e.what(), HasSubstr(part));
  }
}

TEST(planner, partition_wise_operators_pipeline_into_one_stage) {
  auto p = source(3);
  p.add(project_node{p.root, {{"k2", col("k") * lit(2)}, {"s", col("s")}}});
  p.add(filter_node{p.root, col("k2") > lit(std::int64_t{2})});
  auto physical = plan_stages(p, four());
  ASSERT_EQ(physical.stages.size(), 1u) << physical.to_string();
  const auto& s = physical.stages[0];
  EXPECT_EQ(s.partitions, 3);
  EXPECT_EQ(s.output.mode, exchange_mode::result);
  EXPECT_EQ(s.name, "table -> project -> filter");
  EXPECT_EQ(physical.result, (schema{{"k2", "s"}, {type_id::int64, type_id::string}}));
}

TEST(planner, sources_without_a_partition_count_get_the_default) {
  auto physical = plan_stages(source(0), four());
  EXPECT_EQ(physical.stages[0].partitions, 4);
  EXPECT_EQ(std::get<table_source>(physical.stages[0].body.nodes[0].op).partitions, 4);
}

TEST(planner, large_sources_are_cut_into_pieces_of_bounded_size) {
  auto o = four();
  o.source_partition_rows = 1000;
  o.source_partition_bytes = 100;
  plan big;
  big.add(generate_source{"range", 10'500, 1, 0, 0});
  EXPECT_EQ(plan_stages(big, o).stages[0].partitions, 11);
  plan own;
  own.add(generate_source{"range", 10'500, 1, 0, 3});
  EXPECT_EQ(plan_stages(own, o).stages[0].partitions, 3);
  plan small;
  small.add(generate_source{"range", 10, 1, 0, 0});
  EXPECT_EQ(plan_stages(small, o).stages[0].partitions, 4);
  temp_dir dir;
  plan text;
  text.add(text_source{{dir.write("t.txt", std::string(950, 'x')).string()}, 0});
  EXPECT_EQ(plan_stages(text, o).stages[0].partitions, 10);
}

TEST(planner, group_by_is_partial_then_shuffle_then_final) {
  auto p = source(3);
  p.add(aggregate_node{p.root,
                       {"s"},
                       {{aggregation_kind::sum, "v", "total"},
                        {aggregation_kind::count_all, "", "rows"},
                        {aggregation_kind::min, "k", "low"}}});
  auto physical = plan_stages(p, four());
  ASSERT_EQ(physical.stages.size(), 2u) << physical.to_string();
  const auto& map = physical.stages[0];
  EXPECT_EQ(map.partitions, 3);
  EXPECT_EQ(map.output.mode, exchange_mode::hash);
  EXPECT_EQ(map.output.keys, std::vector<std::string>{"s"});
  EXPECT_EQ(map.output.partitions, 4);
  EXPECT_THAT(map.name, HasSubstr("aggregate(partial)"));
  const auto& partial = root_op<aggregate_node>(map);
  ASSERT_EQ(partial.aggregations.size(), 3u);
  EXPECT_EQ(partial.aggregations[1].kind, aggregation_kind::count_all);
  const auto& reduce = physical.stages[1];
  EXPECT_EQ(reduce.partitions, 4);
  EXPECT_EQ(reduce.inputs, std::vector<int>{0});
  EXPECT_TRUE(body_has<exchange_source>(reduce));
  const auto& final_agg = root_op<aggregate_node>(reduce);
  // Counts are merged by summing the partial counts.
  EXPECT_EQ(final_agg.aggregations[1].kind, aggregation_kind::sum);
  EXPECT_EQ(final_agg.aggregations[2].kind, aggregation_kind::min);
  EXPECT_EQ(physical.result,
            (schema{{"s", "total", "rows", "low"},
                    {type_id::string, type_id::float64, type_id::int64, type_id::int64}}));
}

TEST(planner, mean_travels_as_sum_and_count) {
  auto p = source(2);
  p.add(aggregate_node{p.root, {"k"}, {{aggregation_kind::mean, "v", "avg"}}});
  auto physical = plan_stages(p, four());
  ASSERT_EQ(physical.stages.size(), 2u);
  const auto& partial = root_op<aggregate_node>(physical.stages[0]);
  ASSERT_EQ(partial.aggregations.size(), 2u);
  EXPECT_EQ(partial.aggregations[0].kind, aggregation_kind::sum);
  EXPECT_EQ(partial.aggregations[1].kind, aggregation_kind::count);
  const auto& project = root_op<project_node>(physical.stages[1]);
  ASSERT_EQ(project.columns.size(), 2u);
  EXPECT_EQ(project.columns[1].name, "avg");
  EXPECT_EQ(physical.result, (schema{{"k", "avg"}, {type_id::int64, type_id::float64}}));
}

TEST(planner, count_distinct_shuffles_raw_rows) {
  auto p = source(2);
  p.add(aggregate_node{p.root, {"k"}, {{aggregation_kind::count_distinct, "s", "kinds"}}});
  auto physical = plan_stages(p, four());
  ASSERT_EQ(physical.stages.size(), 2u);
  EXPECT_FALSE(body_has<aggregate_node>(physical.stages[0]));
  EXPECT_EQ(physical.stages[0].output.mode, exchange_mode::hash);
  // Only the columns the aggregation reads travel.
  EXPECT_EQ(physical.stages[0].columns.names, (std::vector<std::string>{"k", "s"}));
  const auto& agg = root_op<aggregate_node>(physical.stages[1]);
  EXPECT_EQ(agg.aggregations[0].kind, aggregation_kind::count_distinct);
}

TEST(planner, aggregates_without_keys_gather_into_one_partition) {
  auto p = source(3);
  p.add(aggregate_node{p.root, {}, {{aggregation_kind::count_all, "", "rows"}}});
  auto physical = plan_stages(p, four());
  ASSERT_EQ(physical.stages.size(), 2u);
  EXPECT_EQ(physical.stages[0].output.mode, exchange_mode::gather);
  EXPECT_EQ(physical.stages[1].partitions, 1);
}

TEST(planner, single_partition_inputs_need_no_exchange) {
  auto p = source(1);
  p.add(aggregate_node{p.root, {"k"}, {{aggregation_kind::count_all, "", "rows"}}});
  p.add(sort_node{p.root, {{"rows", true, false}}});
  p.add(limit_node{p.root, 2});
  p.add(distinct_node{p.root, {}});
  auto physical = plan_stages(p, four());
  EXPECT_EQ(physical.stages.size(), 1u) << physical.to_string();
}

TEST(planner, sort_top_k_and_limit_run_locally_then_once_more_gathered) {
  for (int kind = 0; kind < 3; ++kind) {
    auto p = source(3);
    if (kind == 0) p.add(sort_node{p.root, {{"k", false, false}}});
    if (kind == 1) p.add(top_k_node{p.root, {{"k", false, false}}, 5});
    if (kind == 2) p.add(limit_node{p.root, 5});
    auto physical = plan_stages(p, four());
    ASSERT_EQ(physical.stages.size(), 2u) << physical.to_string();
    EXPECT_EQ(physical.stages[0].output.mode, exchange_mode::gather);
    EXPECT_THAT(physical.stages[0].name, HasSubstr("(local)"));
    EXPECT_EQ(physical.stages[1].partitions, 1);
  }
  // A limit after a sort reuses the sort's single partition.
  auto p = source(3);
  p.add(sort_node{p.root, {{"k", false, false}}});
  p.add(limit_node{p.root, 5});
  EXPECT_EQ(plan_stages(p, four()).stages.size(), 2u);
}

TEST(planner, distinct_is_local_then_shuffled_by_all_columns) {
  auto p = source(3);
  p.add(distinct_node{p.root, {}});
  auto physical = plan_stages(p, four());
  ASSERT_EQ(physical.stages.size(), 2u);
  EXPECT_EQ(physical.stages[0].output.keys, (std::vector<std::string>{"k", "s", "v"}));
}

plan join_plan(join_strategy strategy, bool small_right) {
  plan p = source(3);
  auto left = p.root;
  auto right = small_right ? p.add(generate_source{"dims", 10, 1, 0, 2})
                           : p.add(generate_source{"dims", 100000, 1, 0, 2});
  p.add(join_node{left, right, {"k"}, {"dim_key"}, join_kind::inner, strategy});
  return p;
}

TEST(planner, joins_shuffle_both_sides_or_broadcast_the_right) {
  auto shuffle = plan_stages(join_plan(join_strategy::shuffle, true), four());
  ASSERT_EQ(shuffle.stages.size(), 3u) << shuffle.to_string();
  EXPECT_EQ(shuffle.stages[0].output.keys, std::vector<std::string>{"k"});
  EXPECT_EQ(shuffle.stages[1].output.keys, std::vector<std::string>{"dim_key"});
  EXPECT_EQ(shuffle.stages[2].partitions, 4);
  EXPECT_EQ(shuffle.stages[2].inputs, (std::vector<int>{0, 1}));

  auto automatic = plan_stages(join_plan(join_strategy::automatic, true), four());
  ASSERT_EQ(automatic.stages.size(), 2u) << automatic.to_string();
  EXPECT_EQ(automatic.stages[0].output.mode, exchange_mode::broadcast);
  EXPECT_EQ(automatic.stages[1].partitions, 3);  // the left side keeps its partitions
  EXPECT_THAT(automatic.stages[1].name, HasSubstr("join(broadcast)"));

  EXPECT_EQ(plan_stages(join_plan(join_strategy::automatic, false), four()).stages.size(), 3u);
  EXPECT_EQ(plan_stages(join_plan(join_strategy::broadcast, false), four()).stages.size(), 2u);
}

TEST(planner, join_output_columns_follow_the_operator_contract) {
  plan p = source(2);
  auto left = p.root;
  auto right = p.add(table_source{small_table(), 2});
  p.add(join_node{left, right, {"k"}, {"k"}, join_kind::left, join_strategy::shuffle});
  EXPECT_EQ(output_schema(p), (schema{{"k", "s", "v", "s_right", "v_right"},
                                      {type_id::int64, type_id::string, type_id::float64,
                                       type_id::string, type_id::float64}}));
  std::get<join_node>(p.nodes[2].op).kind = join_kind::anti;
  EXPECT_EQ(output_schema(p).names, (std::vector<std::string>{"k", "s", "v"}));
}

TEST(planner, concat_runs_each_input_in_its_own_partitions) {
  plan p = source(3);
  auto a = p.root;
  auto b = p.add(table_source{small_table(), 4});
  p.add(concat_node{{a, b}});
  auto physical = plan_stages(p, four());
  ASSERT_EQ(physical.stages.size(), 1u);
  EXPECT_EQ(physical.stages[0].partitions, 7);
  EXPECT_EQ(body_partitions(physical.stages[0].body, physical.stages[0].body.root), 7);
}

TEST(planner, bad_plans_name_the_node_and_the_problem) {
  {
    auto p = source();
    p.add(filter_node{p.root, col("nope") > lit(1)});
    expect_invalid(p, {"node 1 (filter)", "unknown column 'nope'", "k, s, v"});
  }
  {
    auto p = source();
    p.add(filter_node{p.root, col("k") + lit(1)});
    expect_invalid(p, {"filter", "not bool"});
  }
  {
    auto p = source();
    p.add(aggregate_node{p.root, {"k"}, {{aggregation_kind::sum, "s", "total"}}});
    expect_invalid(p, {"node 1 (aggregate)", "sum(s)", "string"});
  }
  {
    auto p = source();
    p.add(aggregate_node{p.root, {"k"}, {{aggregation_kind::count_all, "", "k"}}});
    expect_invalid(p, {"'k' appears twice"});
  }
  {
    auto p = source();
    auto l = p.root;
    auto r = p.add(table_source{small_table(), 1});
    p.add(join_node{l, r, {"k"}, {"s"}, join_kind::inner, join_strategy::automatic});
    expect_invalid(p, {"join", "'k' is int64", "'s' is string"});
  }
  {
    auto p = source();
    p.add(exchange_source{0, exchange_mode::hash, 2, schema{{"k"}, {type_id::int64}}});
    expect_invalid(p, {"exchange sources are made by the planner"});
  }
  {
    plan p;
    p.add(limit_node{3, 1});
    expect_invalid(p, {"not an earlier node"});
  }
  {
    plan p;
    p.add(text_source{{"/no/such/file.txt"}, 0});
    expect_invalid(p, {"/no/such/file.txt", "does not exist"});
  }
  {
    plan p;
    p.add(generate_source{"nonsense", 10, 1, 0, 0});
    expect_invalid(p, {"unknown generator 'nonsense'", "keyed"});
  }
  {
    auto p = source();
    p.add(top_k_node{p.root, {{"k", false, false}}, -1});
    expect_invalid(p, {"negative k"});
  }
  {
    auto p = source();
    auto a = p.root;
    auto b = p.add(generate_source{"range", 10, 1, 0, 0});
    p.add(concat_node{{a, b}});
    expect_invalid(p, {"concat", "input 1"});
  }
  {
    auto p = source();
    p.add(sort_node{p.root, {}});
    expect_invalid(p, {"sort needs at least one key"});
  }
  {
    auto p = source();
    p.add(tokenize_node{p.root, "k", "word"});
    expect_invalid(p, {"tokenize", "'k' is int64"});
  }
  expect_invalid(plan{}, {"no nodes"});
  planner_options none;
  none.partitions = 0;
  EXPECT_THROW((void)plan_stages(source(), none), invalid_input);
}

TEST(planner, plans_print_readably) {
  auto p = source(2);
  p.add(aggregate_node{p.root, {"s"}, {{aggregation_kind::count_all, "", "rows"}}}, "counts");
  auto text = p.to_string();
  EXPECT_THAT(text, HasSubstr("aggregate(keys=[s] aggs=[count_all() as rows]) 'counts' <- 0"));
  auto physical = plan_stages(p, four()).to_string();
  EXPECT_THAT(physical, HasSubstr("stage 0"));
  EXPECT_THAT(physical, HasSubstr("hash[s] x4"));
}

}  // namespace
}  // namespace ember::test
