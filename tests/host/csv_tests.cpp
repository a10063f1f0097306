#include <ember/host/column_device_view.hpp>
#include <ember/host/column_factories.hpp>
#include <ember/host/csv.hpp>
#include <ember/host/error.hpp>
#include <ember/host/io.hpp>
#include <ember/host/memory_resource.hpp>
#include <ember/host/scalar.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "common/errors.hpp"
#include "common/tables.hpp"
#include "common/temp_dir.hpp"

namespace ember::test {
namespace {

// ---- helpers ---------------------------------------------------------------------------------

// Cells equal: same type and validity, and the same value (floats bit for bit, NaN equal to NaN).
void expect_same_cells(const table_view& expected, const table_view& actual) {
  ASSERT_EQ(expected.names(), actual.names());
  ASSERT_EQ(expected.num_rows(), actual.num_rows());
  for (size_type c = 0; c < expected.num_columns(); ++c) {
    ASSERT_EQ(expected.column(c).type(), actual.column(c).type()) << expected.names()[c];
    for (size_type r = 0; r < expected.num_rows(); ++r) {
      auto e = get_scalar(expected.column(c), r);
      auto a = get_scalar(actual.column(c), r);
      ASSERT_EQ(e.valid(), a.valid()) << expected.names()[c] << " row " << r;
      if (is_floating(e.type()) && e.valid()) {
        if (std::isnan(e.as_float())) {
          EXPECT_TRUE(std::isnan(a.as_float())) << expected.names()[c] << " row " << r;
        } else {
          EXPECT_EQ(e.as_float(), a.as_float()) << expected.names()[c] << " row " << r;
        }
      } else {
        EXPECT_EQ(e, a) << expected.names()[c] << " row " << r << ": '" << e.to_text() << "' vs '"
                        << a.to_text() << "'";
      }
    }
  }
}

// Bit-for-bit equality of two host tables (values of null rows included: both are zero).
void expect_identical(const table_view& a, const table_view& b) {
  ASSERT_EQ(a.names(), b.names());
  ASSERT_EQ(a.num_rows(), b.num_rows());
  for (size_type c = 0; c < a.num_columns(); ++c) {
    const auto& x = a.column(c);
    const auto& y = b.column(c);
    ASSERT_EQ(x.type(), y.type());
    ASSERT_EQ(x.nullable(), y.nullable()) << a.names()[c];
    for (size_type r = 0; r < x.size(); ++r)
      ASSERT_EQ(bit_is_set(x.null_mask(), r), bit_is_set(y.null_mask(), r)) << r;
    if (x.type() == type_id::string) {
      ASSERT_EQ(0, std::memcmp(x.offsets(), y.offsets(), sizeof(size_type) * (x.size() + 1)));
      ASSERT_EQ(0,
                std::memcmp(x.chars(), y.chars(), static_cast<std::size_t>(x.offsets()[x.size()])));
    } else {
      ASSERT_EQ(0, std::memcmp(x.data(), y.data(),
                               static_cast<std::size_t>(x.size() * size_of(x.type()))))
          << a.names()[c];
    }
  }
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const invalid_input& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected ember::invalid_input";
  return {};
}

csv_options with_schema(csv_schema schema) {
  csv_options o;
  o.schema = std::move(schema);
  return o;
}

// A table of every type with nulls; strings hold delimiters, quotes, CR, LF, non-ASCII text and
// the empty string (which write_csv quotes, so that it does not read back as a null).
table every_type(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution is_null(0.15);
  std::vector<float> f32(n);
  std::vector<std::uint8_t> b(n);
  std::vector<std::int64_t> ts(n);
  std::vector<bool> v1(n), v2(n), v3(n);
  std::vector<std::optional<std::string>> s(n);
  const std::vector<std::string> words = {
      "plain", "a,b",       "say \"hi\"", "two\nlines", "cr\r\nlf", "ünïcødé ✓",  " spaced ", "\"",
      "x",     "tab\there", "NA",         "1",          "true",     "2026-11-27", ""};
  std::uniform_real_distribution<float> fdist(-1e6f, 1e6f);
  std::uniform_int_distribution<std::int64_t> tdist(-2'000'000'000'000'000'000,
                                                    4'000'000'000'000'000'000);
  for (std::size_t i = 0; i < n; ++i) {
    f32[i] = fdist(rng);
    b[i] = rng() & 1;
    ts[i] = i % 3 == 0 ? tdist(rng) / 1'000'000'000 * 1'000'000'000 : tdist(rng);
    v1[i] = !is_null(rng);
    v2[i] = !is_null(rng);
    v3[i] = !is_null(rng);
    if (!is_null(rng)) s[i] = words[rng() % words.size()] + std::to_string(rng() % 7);
  }
  f32[0] = std::numeric_limits<float>::infinity();
  f32[1] = 1e-30f;
  auto f64 = random_float64(n, -1e12, 1e12, 0.1, seed + 1);
  auto* d = f64.data().data_as<double>();
  d[0] = -std::numeric_limits<double>::infinity();
  d[1] = std::numeric_limits<double>::quiet_NaN();
  d[2] = 5e-324;
  d[3] = 1.7976931348623157e308;
  d[4] = -0.0;
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("i32", random_int32(n, std::numeric_limits<std::int32_t>::min(),
                                        std::numeric_limits<std::int32_t>::max(), 0.1, seed));
  cols.emplace_back("i64", random_int64(n, std::numeric_limits<std::int64_t>::min(),
                                        std::numeric_limits<std::int64_t>::max(), 0.1, seed + 2));
  cols.emplace_back("f32", make_column<float>(type_id::float32, f32, v1));
  cols.emplace_back("f64", std::move(f64));
  cols.emplace_back("flag", make_column<std::uint8_t>(type_id::bool8, b, v2));
  cols.emplace_back("at", make_column<std::int64_t>(type_id::timestamp_ns, ts, v3));
  cols.emplace_back("text", make_string_column(s));
  return make_table(std::move(cols));
}

csv_schema schema_of(const table_view& t) {
  csv_schema s;
  for (size_type c = 0; c < t.num_columns(); ++c) s.emplace_back(t.names()[c], t.column(c).type());
  return s;
}

// ---- round trips through write_csv -----------------------------------------------------------

TEST(csv, round_trip_of_every_type_with_the_schema_given) {
  temp_dir dir;
  auto t = every_type(2000, 7);
  write_csv_file(t.view(), dir.path() / "all.csv");
  auto back = read_csv(dir.path() / "all.csv", with_schema(schema_of(t.view())));
  expect_same_cells(t.view(), back.view());
}

TEST(csv, round_trip_of_every_type_with_inferred_types) {
  temp_dir dir;
  auto t = every_type(2000, 8);
  write_csv_file(t.view(), dir.path() / "all.csv");
  const csv_schema expected = {{"i32", type_id::int64},   {"i64", type_id::int64},
                               {"f32", type_id::float64}, {"f64", type_id::float64},
                               {"flag", type_id::bool8},  {"at", type_id::timestamp_ns},
                               {"text", type_id::string}};
  EXPECT_EQ(infer_csv_schema(dir.path() / "all.csv"), expected);
  auto back = read_csv(dir.path() / "all.csv");
  ASSERT_EQ(back.num_rows(), t.num_rows());
  // Widened columns hold the same values; the others are the same cells.
  for (size_type r = 0; r < t.num_rows(); ++r) {
    auto i32 = get_scalar(t.view().column(0), r);
    auto i64 = get_scalar(back.view().column(0), r);
    ASSERT_EQ(i32.valid(), i64.valid());
    if (i32.valid()) {
      EXPECT_EQ(i32.as_int(), i64.as_int());
    }
    auto f32 = get_scalar(t.view().column(2), r);
    auto f64 = get_scalar(back.view().column(2), r);
    ASSERT_EQ(f32.valid(), f64.valid());
    if (f32.valid()) {
      EXPECT_EQ(f32.to_text(), f64.to_text());
    }
  }
  expect_same_cells(t.view().select({"i64", "f64", "flag", "at", "text"}),
                    back.view().select({"i64", "f64", "flag", "at", "text"}));
}

TEST(csv, round_trip_of_an_empty_table_and_of_all_null_columns) {
  temp_dir dir;
  auto empty = make_empty_table({"a", "b"}, {type_id::int64, type_id::string});
  write_csv_file(empty.view(), dir.path() / "empty.csv");
  auto back = read_csv(dir.path() / "empty.csv");
  EXPECT_EQ(back.num_rows(), 0);
  EXPECT_EQ(back.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(back.view().column(0).type(), type_id::string);  // nothing to infer from

  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("n", random_int64(5, 0, 9, 1.0, 3));
  cols.emplace_back("k", random_int64(5, 0, 9, 0, 3));
  auto nulls = make_table(std::move(cols));
  write_csv_file(nulls.view(), dir.path() / "nulls.csv");
  auto t = read_csv(dir.path() / "nulls.csv");
  EXPECT_EQ(t.view().column(0).type(), type_id::string);
  EXPECT_EQ(count_nulls(t.view().column(0)), 5);
  EXPECT_FALSE(t.view().column(1).nullable());  // no mask where no null was read
}

// ---- the quoting catalog ---------------------------------------------------------------------

TEST(csv, quoting_catalog_with_crlf_and_lf) {
  temp_dir dir;
  const std::string rows[] = {"id,text,n",
                              "1,\"a,b\",5",
                              "2,\"say \"\"hi\"\"\",6",
                              "3,\"line1\nline2\",7",
                              "4,\"crlf\r\nin\",8",
                              "5,plain,9",
                              "6,\"\",10",
                              "7,,11",
                              "8,\"\"\"\",12",
                              "9,\"ends with,\",13"};
  for (const std::string eol : {"\r\n", "\n"}) {
    std::string text;
    for (const auto& r : rows) text += r + eol;
    text += "10,last,14";  // the last record may have no line ending
    auto t = read_csv(dir.write("q.csv", text));
    ASSERT_EQ(t.num_rows(), 10);
    EXPECT_EQ(copy_strings(t.view().column(1)),
              (std::vector<std::optional<std::string>>{"a,b", "say \"hi\"", "line1\nline2",
                                                       "crlf\r\nin", "plain", "", std::nullopt,
                                                       "\"", "ends with,", "last"}));
    EXPECT_EQ(copy_values<std::int64_t>(t.view().column(2)),
              (std::vector<std::int64_t>{5, 6, 7, 8, 9, 10, 11, 12, 13, 14}));
  }
}

TEST(csv, dialects_nulls_bom_and_headerless_files) {
  temp_dir dir;
  {
    csv_options o;
    o.delimiter = ';';
    o.null_values = {"NA", ""};
    auto t = read_csv(dir.write("semi.csv", "\xEF\xBB\xBFk;v\nNA;1,5\n\"NA\";NA\n;2\n"), o);
    EXPECT_EQ(t.names(), (std::vector<std::string>{"k", "v"}));
    EXPECT_EQ(copy_strings(t.view().column(0)),
              (std::vector<std::optional<std::string>>{std::nullopt, "NA", std::nullopt}));
    EXPECT_EQ(t.view().column(1).type(), type_id::string);  // 1,5 is no number
  }
  {
    csv_options o;
    o.delimiter = '\t';
    o.escape = '\\';
    auto t = read_csv(dir.write("esc.tsv", "a\tb\nx\\\ty\t\"q\\\"uote\"\n\\\"z\t\"\\\\\"\n"), o);
    EXPECT_EQ(copy_strings(t.view().column(0)),
              (std::vector<std::optional<std::string>>{"x\ty", "\"z"}));
    EXPECT_EQ(copy_strings(t.view().column(1)),
              (std::vector<std::optional<std::string>>{"q\"uote", "\\"}));
  }
  {
    csv_options o;
    o.header = false;
    auto t = read_csv(dir.write("nohead.csv", "1,x\n2,y\n"), o);
    EXPECT_EQ(t.names(), (std::vector<std::string>{"column_1", "column_2"}));
    EXPECT_EQ(copy_values<std::int64_t>(t.view().column(0)), (std::vector<std::int64_t>{1, 2}));
    o.schema = csv_schema{{"n", type_id::int32}, {"s", type_id::string}};
    auto s = read_csv(dir.write("nohead.csv", "1,x\n2,y\n"), o);
    EXPECT_EQ(copy_values<std::int32_t>(s.view().column(0)), (std::vector<std::int32_t>{1, 2}));
    EXPECT_EQ(read_csv(dir.write("none.csv", ""), o).num_rows(), 0);
  }
  {
    csv_options o;
    o.quote = '\0';
    auto t = read_csv(dir.write("noquote.csv", "a\n\"x\"\n"), o);
    EXPECT_EQ(copy_strings(t.view().column(0)), (std::vector<std::optional<std::string>>{"\"x\""}));
  }
}

TEST(csv, values_of_each_type) {
  temp_dir dir;
  auto t = read_csv(dir.write("v.csv",
                              "b,ts,f,i\n"
                              "1,2026-11-27,1e3,+5\n"
                              "0,2026-11-27T08:00:00Z,-inf,-9223372036854775808\n"
                              "TRUE,2026-11-27T08:00:00.5,.25,9223372036854775807\n"
                              "false,1969-12-31 23:59:59.999999999+01:00,nan,0\n"),
                    with_schema({{"b", type_id::bool8},
                                 {"ts", type_id::timestamp_ns},
                                 {"f", type_id::float32},
                                 {"i", type_id::int64}}));
  EXPECT_EQ(copy_values<std::uint8_t>(t.view().column(0)), (std::vector<std::uint8_t>{1, 0, 1, 0}));
  const std::int64_t day = 20784LL * 86400 * 1'000'000'000;  // 2026-11-27
  EXPECT_EQ(copy_values<std::int64_t>(t.view().column(1)),
            (std::vector<std::int64_t>{day, day + 8LL * 3600'000'000'000,
                                       day + 8LL * 3600'000'000'000 + 500'000'000,
                                       -1 - 3600LL * 1'000'000'000}));
  auto f = copy_values<float>(t.view().column(2));
  EXPECT_EQ(f[0], 1000.0f);
  EXPECT_EQ(f[1], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(f[2], 0.25f);
  EXPECT_TRUE(std::isnan(f[3]));
  EXPECT_EQ(copy_values<std::int64_t>(t.view().column(3)),
            (std::vector<std::int64_t>{5, std::numeric_limits<std::int64_t>::min(),
                                       std::numeric_limits<std::int64_t>::max(), 0}));
}

TEST(csv, inference_picks_the_first_type_that_parses_every_sampled_value) {
  temp_dir dir;
  auto p = dir.write("i.csv",
                     "i,f,t,b,s,n\n"
                     "1,1,2026-01-01,true,1,\n"
                     ",2.5,,false,x,\n"
                     "3,,2026-01-01T00:00:00Z,True,2.5,\n");
  EXPECT_EQ(infer_csv_schema(p), (csv_schema{{"i", type_id::int64},
                                             {"f", type_id::float64},
                                             {"t", type_id::timestamp_ns},
                                             {"b", type_id::bool8},
                                             {"s", type_id::string},
                                             {"n", type_id::string}}));
  // 1/0 are bools only through a schema.
  EXPECT_EQ(infer_csv_schema(dir.write("d.csv", "b\n1\n0\n")), (csv_schema{{"b", type_id::int64}}));
}

TEST(csv, several_files_make_one_table) {
  temp_dir dir;
  auto a = dir.write("a.csv", "k,v\n1,x\n2,y\n");
  auto b = dir.write("b.csv", "k,v\n3.5,z\n");
  auto t = read_csv(std::vector<std::filesystem::path>{a, b});
  EXPECT_EQ(t.view().column(0).type(), type_id::float64);  // inferred over both files
  EXPECT_EQ(copy_values<double>(t.view().column(0)), (std::vector<double>{1, 2, 3.5}));
  EXPECT_EQ(copy_strings(t.view().column(1)),
            (std::vector<std::optional<std::string>>{"x", "y", "z"}));

  auto c = dir.write("c.csv", "k,w\n1,x\n");
  auto msg = message_of([&] { (void)read_csv(std::vector<std::filesystem::path>{a, c}); });
  EXPECT_NE(msg.find(c.string() + ":1: the header (k, w) differs from the header of " + a.string() +
                     " (k, v)"),
            std::string::npos)
      << msg;
  expect_invalid_input([] { (void)read_csv(std::vector<std::filesystem::path>{}); },
                       "no files given");
}

TEST(csv, the_columns_come_from_the_given_resource) {
  temp_dir dir;
  auto p = dir.write("r.csv", "a,b\n1,x\n2,\n");
  tracking_resource mr(default_host_resource(), "test");
  {
    auto t = read_csv(p, {}, mr);
    EXPECT_EQ(t.column(0).data().resource(), &mr);
    EXPECT_EQ(t.column(1).offsets().resource(), &mr);
    EXPECT_GT(mr.used(), 0U);
  }
  EXPECT_EQ(mr.used(), 0U);
  tracking_resource tiny(default_host_resource(), "tiny", 8);
  EXPECT_THROW((void)read_csv(p, {}, tiny), out_of_memory);
}

// ---- the malformed catalog -------------------------------------------------------------------

struct malformed {
  std::string name;
  std::string text;
  std::string expected;  // after "<path>"
  std::optional<csv_schema> schema = std::nullopt;
};

TEST(csv, malformed_catalog_names_file_line_and_reason) {
  temp_dir dir;
  const std::vector<malformed> cases = {
      {"unterminated", "a,b\n1,2\n3,\"abc\n4,5\n",
       ":3: unterminated quoted field (opened at line 3)"},
      {"unterminated_later", "a,b\n1,\"x\ny\",\"abc\n4,5\n",
       ":2: unterminated quoted field (opened at line 3)"},
      {"too_few", "a,b,c\n1,2,3\n4,5\n", ":3: 2 fields, expected 3"},
      {"too_many", "a,b\n1,2\n\"x\ny\",2,3\n", ":3: 3 fields, expected 2"},
      {"one_field", "a,b\n1,2\n\n", ":3: 1 field, expected 2"},
      {"not_float", "id,x,amount\n1,a,2.5\n2,b,abc\n",
       ":3: column 3 ('amount'): 'abc' is not a float64",
       csv_schema{{"id", type_id::int64}, {"x", type_id::string}, {"amount", type_id::float64}}},
      {"not_int", "n\n1\n 2\n", ":3: column 1 ('n'): ' 2' is not an int64",
       csv_schema{{"n", type_id::int64}}},
      {"int_range", "n\n99999999999999999999\n",
       ":2: column 1 ('n'): '99999999999999999999' is out of range for int64",
       csv_schema{{"n", type_id::int64}}},
      {"int32_range", "n\n2147483648\n",
       ":2: column 1 ('n'): '2147483648' is out of range for int32",
       csv_schema{{"n", type_id::int32}}},
      {"quoted_empty_number", "n\n\"\"\n", ":2: column 1 ('n'): '' is not an int64",
       csv_schema{{"n", type_id::int64}}},
      {"bad_date", "t\n2026-02-29\n", ":2: column 1 ('t'): '2026-02-29' is not a timestamp",
       csv_schema{{"t", type_id::timestamp_ns}}},
      {"bad_bool", "b\nyes\n", ":2: column 1 ('b'): 'yes' is not a bool",
       csv_schema{{"b", type_id::bool8}}},
      {"utf8", "name\nok\nab\xff\n", ":3: invalid UTF-8 in column 1 ('name') at byte 3"},
      {"utf8_numeric", "n\n1\n\xc3\x28\n", ":3: invalid UTF-8 in column 1 ('n') at byte 1",
       csv_schema{{"n", type_id::int64}}},
      {"utf8_overlong", "s\n\xc0\xaf\n", ":2: invalid UTF-8 in column 1 ('s') at byte 1"},
      {"utf8_surrogate", "s\nx\xed\xa0\x80\n", ":2: invalid UTF-8 in column 1 ('s') at byte 2"},
      {"utf8_header", "a,b\xfe\n1,2\n", ":1: invalid UTF-8 in the name of column 2 at byte 2"},
      {"stray_quote", "a,b\n1,x\"y\n", ":2: column 2 ('b'): a quote inside an unquoted field"},
      {"after_quote", "a,b\n\"x\"y,1\n", ":2: column 1 ('a'): 'y' after the closing quote"},
      {"bare_cr", "a,b\n1,2\r3,4\n",
       ":2: column 2 ('b'): a carriage return not followed by a line feed"},
      {"duplicate_names", "a,b,a\n", ":1: column 3 ('a') has the name of column 1"},
      {"schema_names", "a,c\n1,2\n", ":1: the header (a, c) differs from the schema (a, b)",
       csv_schema{{"a", type_id::int64}, {"b", type_id::int64}}},
      {"empty", "", ": empty file (no header)"},
      {"bom_only", "\xEF\xBB\xBF", ": empty file (no header)"},
  };
  for (const auto& c : cases) {
    auto p = dir.write(c.name + ".csv", c.text);
    csv_options o;
    o.schema = c.schema;
    auto msg = message_of([&] { (void)read_csv(p, o); });
    EXPECT_EQ(msg.rfind(p.string() + c.expected, 0), 0U) << c.name << ": " << msg;
  }
}

TEST(csv, a_value_beyond_the_inference_sample_names_the_inferred_type) {
  temp_dir dir;
  csv_options o;
  o.infer_rows = 2;
  auto p = dir.write("late.csv", "n\n1\n2\n3.5\n");
  auto msg = message_of([&] { (void)read_csv(p, o); });
  EXPECT_EQ(msg.rfind(p.string() + ":4: column 1 ('n'): '3.5' is not an int64 (the type inferred "
                                   "from the first 2 records",
                      0),
            0U)
      << msg;
  o.infer_rows = 0;  // every record
  EXPECT_EQ(read_csv(p, o).view().column(0).type(), type_id::float64);
}

TEST(csv, a_10_mb_line_is_rejected_by_the_line_limit) {
  temp_dir dir;
  const std::string big(std::size_t{10} << 20, 'x');
  auto p = dir.write("long.csv", "a,b\n1,2\n3," + big + "\n5,6\n");
  auto msg = message_of([&] { (void)read_csv(p); });
  EXPECT_EQ(msg, p.string() + ":3: a line of " + std::to_string(big.size() + 2) +
                     " bytes exceeds the limit of 1048576 (csv_options::max_line_bytes)");
  csv_options o;
  o.max_line_bytes = size_type{16} << 20;
  EXPECT_EQ(read_csv(p, o).num_rows(), 3);
  // A record over several lines is measured whole.
  o.max_line_bytes = 8;
  msg = message_of([&] { (void)read_csv(dir.write("multi.csv", "a\n\"12345\n6789\"\n"), o); });
  EXPECT_NE(msg.find(":2: a record of 12 bytes over 2 lines exceeds the limit of 8"),
            std::string::npos)
      << msg;
}

TEST(csv, unreadable_inputs_and_contradictory_options) {
  temp_dir dir;
  expect_invalid_input([&] { (void)read_csv(dir.path() / "missing.csv"); },
                       "cannot read input file '" + (dir.path() / "missing.csv").string() + "'");
  expect_invalid_input([&] { (void)read_csv(dir.path()); }, "it is a directory");
  auto p = dir.write("ok.csv", "a\n1\n");
  auto bad = [&](auto change, const std::string& fragment) {
    csv_options o;
    change(o);
    expect_invalid_input([&] { (void)read_csv(p, o); }, fragment);
  };
  bad([](csv_options& o) { o.delimiter = '\n'; }, "delimiter");
  bad([](csv_options& o) { o.quote = ','; }, "quote must differ");
  bad([](csv_options& o) { o.escape = '"'; }, "escape character must differ");
  bad([](csv_options& o) { o.threads = -1; }, "threads");
  bad(
      [](csv_options& o) {
        o.schema = csv_schema{{"a", type_id::int64}, {"a", type_id::int64}};
      },
      "names 'a' twice");
  csv_options o;
  o.header = false;
  expect_invalid_input([&] { (void)read_csv(dir.write("e.csv", ""), o); }, "empty file");
}

// ---- big files in parallel ranges ------------------------------------------------------------

// About `bytes` of CSV whose records often hold quoted fields with newlines, doubled quotes and
// delimiters (so that range boundaries fall inside them), some nulls and CRLF endings.
std::string generated_csv(std::size_t bytes, std::uint64_t seed, bool escapes = false) {
  std::mt19937_64 rng(seed);
  std::string out = "id,amount,at,note,flag\r\n";
  out.reserve(bytes + 1024);
  for (std::int64_t id = 0; out.size() < bytes; ++id) {
    out += std::to_string(id);
    out += ',';
    if (rng() % 10 != 0) out += std::to_string(static_cast<double>(rng() % 100000) / 7);
    out += ",2026-11-";
    out += std::to_string(10 + rng() % 18);
    out += "T08:00:00.";
    out += std::to_string(100000000 + rng() % 900000000);
    out += "Z,";
    switch (rng() % 6) {
      case 0:
        out += "\"multi\nline, with \"\"quotes\"\"\r\nand more\n\"";
        break;
      case 1:
        out += "\"" + std::string(rng() % 300, 'q') + "\n\"";
        break;
      case 2:
        break;  // null
      case 3:
        out += escapes ? "esc\\,aped\\\"" : "\"\"";
        break;
      default:
        out += "word" + std::to_string(rng() % 1000);
    }
    out += rng() % 2 != 0 ? ",true" : ",false";
    out += rng() % 3 != 0 ? "\r\n" : "\n";
  }
  return out;
}

TEST(csv, parallel_ranges_equal_the_single_threaded_parse) {
  temp_dir dir;
  auto p = dir.write("big.csv", generated_csv(std::size_t{48} << 20, 11));
  csv_options serial;
  serial.threads = 1;
  serial.split_bytes = std::size_t{1} << 40;
  auto expected = read_csv(p, serial);
  EXPECT_GT(expected.num_rows(), 300000);
  EXPECT_EQ(expected.view().column(2).type(), type_id::timestamp_ns);
  for (int threads : {1, 4}) {
    csv_options parallel;
    parallel.threads = threads;
    parallel.split_bytes = std::size_t{1} << 20;
    auto actual = read_csv(p, parallel);
    expect_identical(expected.view(), actual.view());
  }
}

TEST(csv, tiny_ranges_inside_quoted_fields_and_escapes) {
  temp_dir dir;
  for (bool escapes : {false, true}) {
    auto text = generated_csv(40000, 5, escapes);
    text += "99,1,2026-11-27,\"" + std::string(5000, 'z') + "\",true\n";  // spans many ranges
    auto p = dir.write("small.csv", text);
    csv_options serial;
    serial.escape = escapes ? '\\' : '\0';
    serial.threads = 1;
    auto expected = read_csv(p, serial);
    for (std::size_t split : {1, 7, 64, 333}) {
      csv_options o = serial;
      o.threads = 3;
      o.split_bytes = split;
      auto actual = read_csv(p, o);
      expect_identical(expected.view(), actual.view());
    }
  }
}

TEST(csv, several_files_in_parallel_ranges_keep_their_order) {
  temp_dir dir;
  const std::vector<std::filesystem::path> paths = {
      dir.write("a.csv", generated_csv(std::size_t{3} << 20, 21)),
      dir.write("b.csv", generated_csv(20000, 22)),  // one range
      dir.write("c.csv", generated_csv(std::size_t{2} << 20, 23))};
  csv_options serial;
  serial.threads = 1;
  csv_options parallel;  // threads: every core
  parallel.split_bytes = std::size_t{256} << 10;
  auto all = read_csv(paths, parallel);
  size_type row = 0;
  for (const auto& p : paths) {
    auto part = read_csv(p, serial);
    expect_same_cells(part.view(), all.view().slice(row, row + part.num_rows()));
    row += part.num_rows();
  }
  EXPECT_EQ(row, all.num_rows());
}

TEST(csv, an_error_in_a_later_range_reports_the_global_line) {
  temp_dir dir;
  auto text = generated_csv(std::size_t{8} << 20, 12);
  auto line_of_end = [&] { return 1 + std::count(text.begin(), text.end(), '\n'); };
  const auto bad_line = line_of_end();
  text += "7,oops,2026-11-27,x,true\n";
  text += generated_csv(std::size_t{2} << 20, 13).substr(24);  // more records, no header
  text += "8,9,2026-11-27,x,maybe\n";                          // a later error loses
  auto p = dir.write("late.csv", text);
  csv_options o;
  o.threads = 4;
  o.split_bytes = std::size_t{256} << 10;
  auto msg = message_of([&] { (void)read_csv(p, o); });
  EXPECT_EQ(msg.rfind(p.string() + ":" + std::to_string(bad_line) +
                          ": column 2 ('amount'): 'oops' is not a float64",
                      0),
            0U)
      << msg;

  // A stray quote turns every later range inside out; its own error still wins.
  text = generated_csv(std::size_t{4} << 20, 14);
  const auto stray_line = line_of_end();
  text += "7,1,2026-11-27,a\"b,true\n";
  text += generated_csv(std::size_t{4} << 20, 15).substr(24);
  p = dir.write("stray.csv", text);
  msg = message_of([&] { (void)read_csv(p, o); });
  EXPECT_EQ(msg.rfind(p.string() + ":" + std::to_string(stray_line) +
                          ": column 4 ('note'): a quote inside an unquoted field",
                      0),
            0U)
      << msg;

  // An unterminated quote near the end leaves the last ranges without a record start.
  text = generated_csv(std::size_t{4} << 20, 16);
  const auto open_line = line_of_end();
  text += "7,1,2026-11-27,\"never closed,true\n" + std::string(std::size_t{1} << 20, 'x') + "\n";
  p = dir.write("open.csv", text);
  o.max_line_bytes = size_type{4} << 20;
  msg = message_of([&] { (void)read_csv(p, o); });
  EXPECT_EQ(msg, p.string() + ":" + std::to_string(open_line) +
                     ": unterminated quoted field (opened at line " + std::to_string(open_line) +
                     ")");
}

// ---- throughput (run with EMBER_CSV_BENCH=1) ---------------------------------------------------

double seconds_of(const std::function<void()>& f) {
  auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(csv, throughput) {
  if (std::getenv("EMBER_CSV_BENCH") == nullptr) GTEST_SKIP() << "set EMBER_CSV_BENCH=1 to run";
  const std::size_t bytes = std::size_t{256} << 20;
  temp_dir dir;
  std::mt19937_64 rng(1);
  std::string numeric = "a,b,c,d,e\n";
  numeric.reserve(bytes + 256);
  while (numeric.size() < bytes) {
    numeric += std::to_string(rng() % 1000000) + ',' + std::to_string(rng() % 100000) + '.' +
               std::to_string(rng() % 100) + ',' +
               std::to_string(static_cast<std::int64_t>(rng())) + ',' + std::to_string(rng() % 10) +
               ',' + std::to_string(rng() % 1000) + "\n";
  }
  std::string strings = "name,city,comment,id\n";
  strings.reserve(bytes + 256);
  while (strings.size() < bytes) {
    strings += "user" + std::to_string(rng() % 100000) + ",Zürich," +
               (rng() % 4 == 0 ? "\"quoted, with \"\"quotes\"\"\""
                               : "plain text here " + std::to_string(rng() % 1000)) +
               "," + std::to_string(rng() % 1000) + "\n";
  }
  const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
  for (const auto& [name, text] :
       {std::pair{"numeric", &numeric}, std::pair{"strings", &strings}}) {
    auto p = dir.write(std::string(name) + ".csv", *text);
    const auto schema = infer_csv_schema(p);
    for (int threads : {1, static_cast<int>(cores)}) {
      csv_options o;
      o.schema = schema;
      o.threads = threads;
      (void)read_csv(p, o);  // warm the page cache
      double best = 1e9;
      for (int i = 0; i < 3; ++i) best = std::min(best, seconds_of([&] { (void)read_csv(p, o); }));
      std::printf("csv %-8s %2d thread(s): %7.1f MB/s (%zu MB in %.3f s)\n", name, threads,
                  static_cast<double>(text->size()) / 1e6 / best, text->size() >> 20, best);
    }
  }
}

}  // namespace
}  // namespace ember::test
