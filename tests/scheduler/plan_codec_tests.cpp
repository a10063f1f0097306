#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/plan_codec.hpp>

#include "common/tables.hpp"
#include "scheduler/helpers.hpp"

namespace ember::test {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const table> sample_table(std::size_t rows) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("a", random_int64(rows, -50, 50, 0.2, 1));
  cols.emplace_back("s", random_strings(rows, 7, 0.3, 2));
  cols.emplace_back("f", random_float64(rows, -1, 1, 0.0, 3));
  cols.emplace_back("i", random_int32(rows, -5, 5, 0.5, 4));
  std::vector<std::uint8_t> flags;
  std::vector<std::int64_t> ts;
  for (std::size_t r = 0; r < rows; ++r) {
    flags.push_back(r % 3 == 0);
    ts.push_back(static_cast<std::int64_t>(r) * 1'000'000'007LL);
  }
  cols.emplace_back("b", make_column<std::uint8_t>(type_id::bool8, flags));
  cols.emplace_back("t", make_column<std::int64_t>(type_id::timestamp_ns, ts));
  return std::make_shared<const table>(make_table(std::move(cols)));
}

// An expression with every node kind and every literal type.
expression every_expression() {
  auto e = (col("a") * lit(2) + lit(std::int64_t{-7})) / lit(3.5) > lit(0.25);
  e = e && !is_null(col("s")) && (col("s") != lit("it's \"quoted\", with a comma"));
  e = e || (cast(col("i"), type_id::float32) <= expression::lit(scalar::float32(1.5f)));
  e = e || (col("t") >= expression::lit(scalar::timestamp(1'700'000'000'000'000'000LL)));
  e = e || (hash({col("a"), col("s")}) % lit(std::int64_t{64}) == lit(std::int64_t{0}));
  e = e || (col("b") == lit(true)) || is_not_null(expression::lit(scalar::null(type_id::int64)));
  e = e && (-col("f") < lit(1.0)) && (col("a") - lit(1) >= lit(0));
  return e;
}

plan every_node() {
  plan p;
  auto t = p.add(table_source{sample_table(100), 3}, "facts");
  auto text = p.add(text_source{{"a.txt", "dir/b.txt"}, 2});
  auto gen = p.add(generate_source{"keyed", 1000, 7, 10, 4}, "generated");
  p.add(exchange_source{1, exchange_mode::hash, 4,
                        schema{{"k", "v"}, {type_id::int64, type_id::string}}});
  auto proj = p.add(
      project_node{t, {{"a2", col("a") * lit(2)}, {"s", col("s")}, {"x", every_expression()}}});
  auto filt = p.add(filter_node{proj, every_expression()});
  auto tok = p.add(tokenize_node{text, "line", "word"});
  auto agg = p.add(aggregate_node{filt,
                                  {"s"},
                                  {{aggregation_kind::sum, "a2", "total"},
                                   {aggregation_kind::count_all, "", "rows"},
                                   {aggregation_kind::mean, "a2", "mean"},
                                   {aggregation_kind::count_distinct, "a2", "distinct"},
                                   {aggregation_kind::min, "s", "first"},
                                   {aggregation_kind::max, "s", "last"},
                                   {aggregation_kind::count, "a2", "n"}}});
  p.add(distinct_node{agg, {"s"}});
  auto sorted = p.add(sort_node{agg, {{"s", true, true}, {"rows", false, false}}});
  auto top = p.add(top_k_node{sorted, {{"rows", true, false}}, 5});
  auto joined =
      p.add(join_node{top, gen, {"a"}, {"key"}, join_kind::left, join_strategy::broadcast});
  p.add(concat_node{{tok, tok, tok}});
  p.add(limit_node{joined, 3}, "last");
  return p;
}

// A plan's bytes are its identity: the encoder is deterministic and writes every field.
void expect_round_trip(const plan& p) {
  auto bytes = encode_plan(p);
  auto back = decode_plan(bytes);
  EXPECT_EQ(encode_plan(back), bytes);
  EXPECT_EQ(back.to_string(), p.to_string());
  EXPECT_EQ(back.root, p.root);
  ASSERT_EQ(back.nodes.size(), p.nodes.size());
  for (std::size_t i = 0; i < p.nodes.size(); ++i) {
    EXPECT_EQ(back.nodes[i].label, p.nodes[i].label);
    EXPECT_EQ(back.nodes[i].op.index(), p.nodes[i].op.index());
  }
}

TEST(plan_codec, every_node_kind_round_trips) {
  auto p = every_node();
  expect_round_trip(p);
  auto back = decode_plan(encode_plan(p));
  const auto& src = std::get<table_source>(back.nodes[0].op);
  EXPECT_EQ(src.partitions, 3);
  expect_same_table(src.data->view(), sample_table(100)->view(), true, 0.0);
  const auto& gen = std::get<generate_source>(back.nodes[2].op);
  EXPECT_EQ(gen.generator, "keyed");
  EXPECT_EQ(gen.rows, 1000);
  EXPECT_EQ(gen.seed, 7u);
  EXPECT_EQ(gen.cardinality, 10);
  const auto& ex = std::get<exchange_source>(back.nodes[3].op);
  EXPECT_EQ(ex.mode, exchange_mode::hash);
  EXPECT_EQ(ex.columns, (schema{{"k", "v"}, {type_id::int64, type_id::string}}));
  const auto& join = std::get<join_node>(back.nodes[11].op);
  EXPECT_EQ(join.kind, join_kind::left);
  EXPECT_EQ(join.strategy, join_strategy::broadcast);
  const auto& agg = std::get<aggregate_node>(back.nodes[7].op);
  ASSERT_EQ(agg.aggregations.size(), 7u);
  EXPECT_EQ(agg.aggregations[3].kind, aggregation_kind::count_distinct);
  EXPECT_EQ(agg.aggregations[3].output_name, "distinct");
  const auto& sorted = std::get<sort_node>(back.nodes[9].op);
  EXPECT_TRUE(sorted.keys[0].descending);
  EXPECT_TRUE(sorted.keys[0].nulls_first);
  EXPECT_FALSE(sorted.keys[1].descending);
}

TEST(plan_codec, empty_plan_and_empty_tables_round_trip) {
  expect_round_trip(plan{});
  plan p;
  p.add(table_source{std::make_shared<const table>(), 0});
  expect_round_trip(p);
  plan q;
  q.add(table_source{std::make_shared<const table>(
                         make_empty_table({"a", "s"}, {type_id::int64, type_id::string})),
                     1});
  expect_round_trip(q);
  plan r;
  r.add(table_source{nullptr, 1});
  expect_round_trip(r);
}

TEST(plan_codec, tables_cut_at_awkward_rows_round_trip) {
  auto whole = sample_table(200);
  for (auto [b, e] : {std::pair{3, 70}, std::pair{33, 33}, std::pair{31, 200}}) {
    auto slice = whole->view().slice(b, e);
    plan p;
    p.add(table_source{std::make_shared<const table>(copy_table(slice)), 1});
    auto back = decode_plan(encode_plan(p));
    expect_same_table(std::get<table_source>(back.nodes[0].op).data->view(), slice, true, 0.0);
  }
}

TEST(plan_codec, expressions_round_trip_alone) {
  auto e = every_expression();
  auto back = decode_expression(encode_expression(e));
  EXPECT_EQ(back.to_string(), e.to_string());
  EXPECT_EQ(encode_expression(back), encode_expression(e));
  auto f = expression::lit(scalar::float64(-0.0));
  EXPECT_EQ(encode_expression(decode_expression(encode_expression(f))), encode_expression(f));
}

TEST(plan_codec, every_truncation_is_rejected) {
  auto bytes = encode_plan(every_node());
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    std::span<const std::uint8_t> prefix(bytes.data(), n);
    EXPECT_THROW((void)decode_plan(prefix), invalid_input) << "prefix of " << n << " bytes";
  }
}

TEST(plan_codec, every_flipped_byte_is_rejected) {
  auto bytes = encode_plan(every_node());
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    auto bad = bytes;
    bad[i] ^= 0x5a;
    EXPECT_THROW((void)decode_plan(bad), invalid_input) << "byte " << i;
  }
}

TEST(plan_codec, header_errors_say_what_is_wrong) {
  auto bytes = encode_plan(every_node());
  auto bad_magic = bytes;
  bad_magic[0] = 'X';
  try {
    (void)decode_plan(bad_magic);
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("not an encoded ember plan"));
  }
  auto future = bytes;
  future[4] = 2;  // version 2
  try {
    (void)decode_plan(future);
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("unsupported plan format version 2"));
    EXPECT_THAT(e.what(), HasSubstr("reads version 1"));
  }
  auto longer = bytes;
  longer.push_back(0);
  try {
    (void)decode_plan(longer);
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("trailing bytes"));
  }
  auto corrupt = bytes;
  corrupt.back() ^= 1;
  try {
    (void)decode_plan(corrupt);
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("checksum"));
  }
  try {
    (void)decode_plan(encode_expression(col("a")));
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("expression, not a plan"));
  }
  try {
    (void)decode_plan(std::span<const std::uint8_t>(bytes.data(), 10));
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("truncated"));
  }
}

// Hand-made payloads with a correct header and checksum: the decoder's own checks must catch
// what the checksum cannot (a well-formed message with wrong contents).
class payload {
 public:
  template <class T>
  payload& put(T v) {
    for (std::size_t i = 0; i < sizeof(T); ++i)
      _bytes.push_back(
          static_cast<std::uint8_t>(static_cast<std::make_unsigned_t<T>>(v) >> (8 * i)));
    return *this;
  }
  payload& str(const std::string& s) {
    put(static_cast<std::uint32_t>(s.size()));
    _bytes.insert(_bytes.end(), s.begin(), s.end());
    return *this;
  }
  payload& raw(const void* p, std::size_t n) {
    auto* b = static_cast<const std::uint8_t*>(p);
    _bytes.insert(_bytes.end(), b, b + n);
    return *this;
  }
  [[nodiscard]] std::vector<std::uint8_t> framed() const {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (auto b : _bytes) {
      h ^= b;
      h *= 0x100000001b3ULL;
    }
    payload out;
    out.put(plan_format_magic).put(plan_format_version).put(std::uint16_t{0});
    out.put(static_cast<std::uint64_t>(_bytes.size())).put(h);
    out._bytes.insert(out._bytes.end(), _bytes.begin(), _bytes.end());
    return out._bytes;
  }

 private:
  std::vector<std::uint8_t> _bytes;
};

void expect_rejected(const payload& p, const std::string& reason) {
  try {
    (void)decode_plan(p.framed());
    ADD_FAILURE() << "expected a rejection mentioning '" << reason << "'";
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr(reason));
  }
}

TEST(plan_codec, well_framed_but_malformed_payloads_are_rejected) {
  // An unknown node kind.
  expect_rejected(
      payload().put(std::int32_t{0}).put(std::uint32_t{1}).put(std::uint8_t{99}).str(""),
      "unknown node kind 99");
  // A node that reads a later node (a cycle, in effect).
  expect_rejected(payload()
                      .put(std::int32_t{0})
                      .put(std::uint32_t{1})
                      .put(std::uint8_t{13})
                      .str("")
                      .put(std::int32_t{0})
                      .put(std::int64_t{5}),
                  "not an earlier node");
  // A count far beyond the bytes that remain: rejected before anything is allocated.
  expect_rejected(payload().put(std::int32_t{0}).put(std::uint32_t{0xffffffff}), "cannot fit");
  // A root that is not a node.
  expect_rejected(payload()
                      .put(std::int32_t{3})
                      .put(std::uint32_t{1})
                      .put(std::uint8_t{2})
                      .str("")
                      .str("keyed")
                      .put(std::int64_t{1})
                      .put(std::uint64_t{1})
                      .put(std::int64_t{0})
                      .put(std::int32_t{1}),
                  "root 3");
  // A negative partition count.
  expect_rejected(payload()
                      .put(std::int32_t{0})
                      .put(std::uint32_t{1})
                      .put(std::uint8_t{2})
                      .str("")
                      .str("keyed")
                      .put(std::int64_t{1})
                      .put(std::uint64_t{1})
                      .put(std::int64_t{0})
                      .put(std::int32_t{-4}),
                  "negative partition count");
  // A bad join kind.
  {
    payload p;
    p.put(std::int32_t{2}).put(std::uint32_t{3});
    for (int i = 0; i < 2; ++i)
      p.put(std::uint8_t{2})
          .str("")
          .str("range")
          .put(std::int64_t{1})
          .put(std::uint64_t{1})
          .put(std::int64_t{0})
          .put(std::int32_t{1});
    p.put(std::uint8_t{11}).str("").put(std::int32_t{0}).put(std::int32_t{1});
    p.put(std::uint32_t{1}).str("id").put(std::uint32_t{1}).str("id");
    p.put(std::uint8_t{9}).put(std::uint8_t{0});
    expect_rejected(p, "bad value 9 for a join kind");
  }
  // An unknown type id in a literal.
  expect_rejected(payload()
                      .put(std::int32_t{1})
                      .put(std::uint32_t{2})
                      .put(std::uint8_t{1})
                      .str("")
                      .put(std::uint32_t{1})
                      .str("a.txt")
                      .put(std::int32_t{1})
                      .put(std::uint8_t{5})
                      .str("")
                      .put(std::int32_t{0})
                      .put(std::uint8_t{1})
                      .put(std::uint8_t{42})
                      .put(std::uint8_t{1}),
                  "unknown type id 42");
  // A string column whose offsets decrease.
  {
    std::int64_t offsets[] = {0, 3, 2};
    payload p;
    p.put(std::int32_t{0}).put(std::uint32_t{1}).put(std::uint8_t{0}).str("").put(std::int32_t{1});
    p.put(std::uint8_t{1}).put(std::uint32_t{1}).str("s").put(std::uint8_t{6}).put(std::int64_t{2});
    p.put(std::uint8_t{0}).raw(offsets, sizeof offsets).raw("abc", 3);
    expect_rejected(p, "offsets decrease");
  }
  // A column with more rows than bytes.
  {
    payload p;
    p.put(std::int32_t{0}).put(std::uint32_t{1}).put(std::uint8_t{0}).str("").put(std::int32_t{1});
    p.put(std::uint8_t{1})
        .put(std::uint32_t{1})
        .str("a")
        .put(std::uint8_t{1})
        .put(std::int64_t{1} << 40);
    p.put(std::uint8_t{0});
    expect_rejected(p, "claims");
  }
  // Bytes after the plan.
  expect_rejected(payload().put(std::int32_t{-1}).put(std::uint32_t{0}).put(std::uint8_t{0}),
                  "unread bytes");
}

TEST(plan_codec, dataset_sinks_round_trip_and_bad_fields_are_rejected) {
  plan p;
  auto gen = p.add(generate_source{"keyed", 1000, 7, 10, 4});
  dataset_sink sink;
  sink.input = gen;
  sink.staging_dir = "/data/out/_staging/host-1-abc";
  sink.compression = compression_codec::zstd;
  sink.level = -5;
  sink.row_group_rows = 4096;
  p.add(sink, "written");
  expect_round_trip(p);
  auto back = std::get<dataset_sink>(decode_plan(encode_plan(p)).nodes[1].op);
  EXPECT_EQ(back.input, 0);
  EXPECT_EQ(back.staging_dir, sink.staging_dir);
  EXPECT_EQ(back.compression, compression_codec::zstd);
  EXPECT_EQ(back.level, -5);
  EXPECT_EQ(back.row_group_rows, 4096);
  EXPECT_THAT(p.to_string(), ::testing::HasSubstr("write_dataset(/data/out/_staging/host-1-abc"));

  // A generate source, then a sink with the given fields.
  auto sink_plan = [](const std::string& staging, std::uint8_t codec, std::int32_t level,
                      std::int64_t row_group_rows) {
    return payload()
        .put(std::int32_t{1})
        .put(std::uint32_t{2})
        .put(std::uint8_t{2})
        .str("")
        .str("keyed")
        .put(std::int64_t{1})
        .put(std::uint64_t{1})
        .put(std::int64_t{0})
        .put(std::int32_t{1})
        .put(std::uint8_t{16})
        .str("")
        .put(std::int32_t{0})
        .str(staging)
        .put(codec)
        .put(level)
        .put(row_group_rows);
  };
  EXPECT_NO_THROW((void)decode_plan(sink_plan("/s", 1, 3, 100).framed()));
  expect_rejected(sink_plan("", 0, 3, 100), "without a staging folder");
  expect_rejected(sink_plan("/s", 7, 3, 100), "compression");
  expect_rejected(sink_plan("/s", 1, 99, 100), "zstd level 99 out of range");
  expect_rejected(sink_plan("/s", 0, 3, 0), "row groups of 0 rows");
}

TEST(plan_codec, deep_expressions_are_rejected_not_overflowed) {
  auto e = col("a");
  for (int i = 0; i < max_expression_depth + 10; ++i) e = -e;
  auto bytes = encode_expression(e);
  try {
    (void)decode_expression(bytes);
    FAIL();
  } catch (const invalid_input& err) {
    EXPECT_THAT(err.what(), HasSubstr("deeper than"));
  }
  auto ok = col("a");
  for (int i = 0; i < max_expression_depth - 1; ++i) ok = -ok;
  EXPECT_NO_THROW((void)decode_expression(encode_expression(ok)));
}

// Host memory that claims to be device memory: enough to build a table the codec must refuse.
class pretend_device_resource final : public memory_resource {
 public:
  [[nodiscard]] memory_kind kind() const noexcept override { return memory_kind::device; }

 private:
  void* do_allocate(std::size_t bytes, stream_view s) override {
    return default_host_resource().allocate(bytes, s);
  }
  void do_deallocate(void* p, std::size_t bytes, stream_view s) noexcept override {
    default_host_resource().deallocate(p, bytes, s);
  }
};

TEST(plan_codec, device_tables_cannot_be_encoded) {
  static pretend_device_resource device;
  std::vector<column> cols;
  cols.emplace_back(type_id::int64, 4, buffer(32, device));
  plan p;
  p.add(table_source{
      std::make_shared<const table>(std::move(cols), std::vector<std::string>{"on_gpu"}), 1});
  try {
    (void)encode_plan(p);
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("'on_gpu'"));
    EXPECT_THAT(e.what(), HasSubstr("not in host memory"));
  }
}

}  // namespace
}  // namespace ember::test
