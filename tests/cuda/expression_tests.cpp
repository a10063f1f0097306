#include <ember/cuda/expression.hpp>

#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>

#include "common/backends.hpp"
#include "common/tables.hpp"

namespace ember::test {
namespace {

template <class Backend>
class expression_test : public backend_test<Backend> {
 public:
  /// evaluate() on this backend, read back as scalars.
  std::vector<scalar> run(const expression& e, const table_view& device_input) {
    auto c = evaluate(e, device_input, this->ctx());
    EXPECT_EQ(c.size(), device_input.num_rows()) << e.to_string();
    auto host = this->down(table_view({c.view()}, {"result"}));
    std::vector<scalar> out;
    for (size_type r = 0; r < host.num_rows(); ++r)
      out.push_back(get_scalar(host.view().column(0), r));
    return out;
  }
};
TYPED_TEST_SUITE_P(expression_test);

// ---- test data ------------------------------------------------------------------------------

constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();
constexpr double inf_value = std::numeric_limits<double>::infinity();

template <class T>
column random_fixed(type_id type, std::size_t n, std::uint64_t seed, double null_fraction,
                    const std::vector<T>& specials, T lo, T hi) {
  std::mt19937_64 rng(seed);
  std::vector<T> v(n);
  std::vector<bool> valid(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    if (!specials.empty() && rng() % 8 == 0) {
      v[i] = specials[rng() % specials.size()];
    } else if constexpr (std::is_floating_point_v<T>) {
      v[i] = std::uniform_real_distribution<T>(lo, hi)(rng);
    } else {
      v[i] = std::uniform_int_distribution<T>(lo, hi)(rng);
    }
    valid[i] = std::bernoulli_distribution(null_fraction)(rng) == false;
  }
  return make_column<T>(type, v, null_fraction > 0 ? valid : std::vector<bool>{});
}

column random_bools(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> v(n);
  std::vector<bool> valid(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = rng() % 2;
    valid[i] = rng() % 3 != 0;
  }
  return make_column<std::uint8_t>(type_id::bool8, v, valid);
}

column pick_strings(std::size_t n, std::uint64_t seed, const std::vector<std::string>& pool) {
  std::mt19937_64 rng(seed);
  std::vector<std::optional<std::string>> v(n);
  for (std::size_t i = 0; i < n; ++i)
    if (rng() % 6 != 0) v[i] = pool[rng() % pool.size()];
  return make_string_column(v);
}

const std::vector<std::string> number_texts = {"12",
                                               "-7",
                                               "+4",
                                               " 42 ",
                                               "0",
                                               "-0",
                                               "2147483647",
                                               "2147483648",
                                               "-2147483648",
                                               "9223372036854775807",
                                               "9223372036854775808",
                                               "-9223372036854775808",
                                               "3.5",
                                               "-2.25e3",
                                               ".5",
                                               "5.",
                                               "1e5",
                                               "1E-3",
                                               "1e400",
                                               "-1e-400",
                                               "0.1",
                                               "123456789012345678901234567890",
                                               "3.4028235e38",
                                               "3.4028236e38",
                                               "1e-46",
                                               "inf",
                                               "-Infinity",
                                               "nan",
                                               "NaN",
                                               "abc",
                                               "",
                                               " ",
                                               "1 2",
                                               "0x10",
                                               "1,5",
                                               "--1",
                                               "1e",
                                               "e5",
                                               ".",
                                               "true",
                                               "FALSE",
                                               "1",
                                               "t",
                                               "  true  ",
                                               "4.9e-324",
                                               "2.2250738585072011e-308",
                                               "9007199254740993",
                                               "0.30000000000000004"};

table sample(std::size_t n, std::uint64_t seed) {
  std::vector<std::pair<std::string, column>> cols;
  const std::int32_t i32_min = std::numeric_limits<std::int32_t>::min();
  const std::int32_t i32_max = std::numeric_limits<std::int32_t>::max();
  const std::int64_t i64_min = std::numeric_limits<std::int64_t>::min();
  const std::int64_t i64_max = std::numeric_limits<std::int64_t>::max();
  cols.emplace_back("i32", random_fixed<std::int32_t>(type_id::int32, n, seed, 0.1,
                                                      {i32_min, i32_max, -1, 0}, -50, 50));
  cols.emplace_back("i64",
                    random_fixed<std::int64_t>(type_id::int64, n, seed + 1, 0.1,
                                               {i64_min, i64_max, -1, 0, 1LL << 40}, -1000, 1000));
  cols.emplace_back("d", random_fixed<std::int64_t>(type_id::int64, n, seed + 2, 0.1, {}, -2, 2));
  cols.emplace_back("d32", random_fixed<std::int32_t>(type_id::int32, n, seed + 3, 0.0, {}, -2, 2));
  cols.emplace_back("f64", random_fixed<double>(type_id::float64, n, seed + 4, 0.1,
                                                {nan_value, inf_value, -inf_value, -0.0, 0.0, 1e300,
                                                 3e9, -3e19, 9.3e18, 0.1, 2.5},
                                                -1000.0, 1000.0));
  cols.emplace_back("f32", random_fixed<float>(
                               type_id::float32, n, seed + 5, 0.1,
                               {std::numeric_limits<float>::quiet_NaN(), 0.0f, -0.0f, 1e30f, 0.1f},
                               -100.0f, 100.0f));
  cols.emplace_back("b", random_bools(n, seed + 6));
  cols.emplace_back("b2", random_bools(n, seed + 7));
  std::vector<std::string> words = {
      "", "a", "k1", "k10x", "k2", "K2", "zz", "k1 ", "\xc3\xa9t\xc3\xa9"};
  cols.emplace_back("s", pick_strings(n, seed + 8, words));
  cols.emplace_back("s2", pick_strings(n, seed + 9, words));
  const std::int64_t ts_lo = -2'000'000'000'000'000'000LL, ts_hi = 4'000'000'000'000'000'000LL;
  cols.emplace_back("ts", random_fixed<std::int64_t>(type_id::timestamp_ns, n, seed + 10, 0.1,
                                                     {i64_min, i64_max, 0, -1}, ts_lo, ts_hi));
  cols.emplace_back("ts2", random_fixed<std::int64_t>(type_id::timestamp_ns, n, seed + 11, 0.1, {},
                                                      ts_lo, ts_hi));
  cols.emplace_back("ns", pick_strings(n, seed + 12, number_texts));
  return make_table(std::move(cols));
}

// ---- the reference: a row-at-a-time interpreter over scalars ------------------------------

int rank(type_id t) {
  switch (t) {
    case type_id::int32:
      return 0;
    case type_id::int64:
      return 1;
    case type_id::float32:
      return 2;
    case type_id::float64:
      return 3;
    default:
      return -1;
  }
}

bool is_float(type_id t) { return t == type_id::float32 || t == type_id::float64; }

/// A valid fixed-width scalar as double (floats) or int64 (everything else).
double as_double(const scalar& s) {
  return is_float(s.type()) ? s.as_float() : static_cast<double>(s.as_int());
}

scalar make_value(type_id t, std::int64_t i, double f) {
  switch (t) {
    case type_id::int32:
      return scalar::int32(static_cast<std::int32_t>(i));
    case type_id::int64:
      return scalar::int64(i);
    case type_id::timestamp_ns:
      return scalar::timestamp(i);
    case type_id::bool8:
      return scalar::boolean(i != 0);
    case type_id::float32:
      return scalar::float32(static_cast<float>(f));
    default:
      return scalar::float64(f);
  }
}

std::string trimmed(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// The reference for string -> number: std::from_chars on the trimmed text, whole text only.
scalar parse_reference(const std::string& text, type_id to) {
  auto t = trimmed(text);
  if (to == type_id::bool8) {
    auto l = lower(t);
    if (l == "true" || l == "1") return scalar::boolean(true);
    if (l == "false" || l == "0") return scalar::boolean(false);
    return scalar::null(to);
  }
  bool negative = false;
  std::string body = t;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    negative = body[0] == '-';
    body = body.substr(1);
  }
  if (body.empty() || body[0] == '+' || body[0] == '-') return scalar::null(to);
  if (to == type_id::int32 || to == type_id::int64) {
    std::uint64_t v = 0;
    auto r = std::from_chars(body.data(), body.data() + body.size(), v);
    if (r.ec != std::errc() || r.ptr != body.data() + body.size()) return scalar::null(to);
    std::uint64_t limit = to == type_id::int32 ? (1ULL << 31) : (1ULL << 63);
    if (v > limit - (negative ? 0 : 1)) return scalar::null(to);
    std::int64_t s = negative ? static_cast<std::int64_t>(0 - v) : static_cast<std::int64_t>(v);
    return make_value(to, s, 0);
  }
  auto l = lower(body);
  if (l == "inf" || l == "infinity") return make_value(to, 0, negative ? -inf_value : inf_value);
  if (l == "nan") return make_value(to, 0, nan_value);
  if (!std::isdigit(static_cast<unsigned char>(body[0])) && body[0] != '.') return scalar::null(to);
  if (to == type_id::float32) {
    float v = 0;
    auto r = std::from_chars(body.data(), body.data() + body.size(), v);
    if (r.ptr != body.data() + body.size() ||
        (r.ec != std::errc() && r.ec != std::errc::result_out_of_range))
      return scalar::null(to);
    if (r.ec == std::errc::result_out_of_range) v = std::strtof(body.c_str(), nullptr);
    return scalar::float32(negative ? -v : v);
  }
  double v = 0;
  auto r = std::from_chars(body.data(), body.data() + body.size(), v);
  if (r.ptr != body.data() + body.size() ||
      (r.ec != std::errc() && r.ec != std::errc::result_out_of_range))
    return scalar::null(to);
  if (r.ec == std::errc::result_out_of_range) v = std::strtod(body.c_str(), nullptr);
  return scalar::float64(negative ? -v : v);
}

scalar cast_reference(const scalar& v, type_id to) {
  if (!v.valid()) return scalar::null(to);
  type_id from = v.type();
  if (from == to) return v;
  if (to == type_id::string) return scalar::string(v.to_text());
  if (from == type_id::string) {
    EXPECT_NE(to, type_id::timestamp_ns) << "the reference does not parse timestamps";
    return parse_reference(v.as_string(), to);
  }
  if (is_float(from)) {
    double f = v.as_float();
    switch (to) {
      case type_id::int32:
        if (!(f > -2147483649.0 && f < 2147483648.0)) return scalar::null(to);
        return scalar::int32(static_cast<std::int32_t>(f));
      case type_id::int64:
      case type_id::timestamp_ns:
        if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0)) return scalar::null(to);
        return make_value(to, static_cast<std::int64_t>(f), 0);
      case type_id::bool8:
        return scalar::boolean(f != 0);
      default:
        return make_value(to, 0, f);
    }
  }
  std::int64_t i = v.as_int();
  switch (to) {
    case type_id::int32:
      if (i < std::numeric_limits<std::int32_t>::min() ||
          i > std::numeric_limits<std::int32_t>::max())
        return scalar::null(to);
      return scalar::int32(static_cast<std::int32_t>(i));
    case type_id::float32:
      return scalar::float32(static_cast<float>(i));
    case type_id::float64:
      return scalar::float64(static_cast<double>(i));
    default:
      return make_value(to, i, 0);
  }
}

/// a <=> b for two valid values of comparable types, as the engine orders them.
int compare_reference(const scalar& a, const scalar& b) {
  if (a.type() == type_id::string)
    return a.as_string() < b.as_string() ? -1 : (b.as_string() < a.as_string() ? 1 : 0);
  int ra = rank(a.type()), rb = rank(b.type());
  bool floating = ra >= 2 || rb >= 2;
  if (!floating) return a.as_int() < b.as_int() ? -1 : (b.as_int() < a.as_int() ? 1 : 0);
  type_id common = ra >= rb ? a.type() : b.type();
  double x = cast_reference(a, common).as_float(), y = cast_reference(b, common).as_float();
  bool xn = std::isnan(x), yn = std::isnan(y);
  if (xn || yn) return xn == yn ? 0 : (xn ? 1 : -1);
  return x < y ? -1 : (y < x ? 1 : 0);
}

scalar arithmetic_reference(binary_op op, const scalar& a, const scalar& b, type_id out) {
  if (!a.valid() || !b.valid()) return scalar::null(out);
  if (out == type_id::int32 || out == type_id::int64 || out == type_id::timestamp_ns) {
    std::uint64_t x = static_cast<std::uint64_t>(a.as_int()),
                  y = static_cast<std::uint64_t>(b.as_int());
    std::int64_t sx = a.as_int(), sy = b.as_int();
    std::int64_t r = 0;
    switch (op) {
      case binary_op::add:
        r = static_cast<std::int64_t>(x + y);
        break;
      case binary_op::sub:
        r = static_cast<std::int64_t>(x - y);
        break;
      case binary_op::mul:
        r = static_cast<std::int64_t>(x * y);
        break;
      case binary_op::div:
        if (sy == 0) return scalar::null(out);
        r = sy == -1 ? static_cast<std::int64_t>(0 - x) : sx / sy;
        break;
      default:
        if (sy == 0) return scalar::null(out);
        r = sy == -1 ? 0 : sx % sy;
        break;
    }
    return make_value(out, r, 0);  // int32 wraps here, like the engine's int32 arithmetic
  }
  if (out == type_id::float32) {
    float x = a.type() == type_id::float32 ? static_cast<float>(a.as_float())
                                           : static_cast<float>(a.as_int());
    float y = b.type() == type_id::float32 ? static_cast<float>(b.as_float())
                                           : static_cast<float>(b.as_int());
    if ((op == binary_op::div || op == binary_op::mod) && y == 0) return scalar::null(out);
    switch (op) {
      case binary_op::add:
        return scalar::float32(x + y);
      case binary_op::sub:
        return scalar::float32(x - y);
      case binary_op::mul:
        return scalar::float32(x * y);
      case binary_op::div:
        return scalar::float32(x / y);
      default:
        return scalar::float32(std::fmod(x, y));
    }
  }
  double x = as_double(a), y = as_double(b);
  if ((op == binary_op::div || op == binary_op::mod) && y == 0) return scalar::null(out);
  switch (op) {
    case binary_op::add:
      return scalar::float64(x + y);
    case binary_op::sub:
      return scalar::float64(x - y);
    case binary_op::mul:
      return scalar::float64(x * y);
    case binary_op::div:
      return scalar::float64(x / y);
    default:
      return scalar::float64(std::fmod(x, y));
  }
}

scalar reference(const expression& e, const table_view& t, const row& r) {
  switch (e.node_kind()) {
    case expression::kind::column:
      return r[static_cast<std::size_t>(t.index_of(e.column_name()))];
    case expression::kind::literal:
      return e.literal_value();
    case expression::kind::unary: {
      auto v = reference(e.children()[0], t, r);
      switch (e.unary_operator()) {
        case unary_op::is_null:
          return scalar::boolean(!v.valid());
        case unary_op::is_not_null:
          return scalar::boolean(v.valid());
        case unary_op::logical_not:
          return v.valid() ? scalar::boolean(v.as_int() == 0) : scalar::null(type_id::bool8);
        case unary_op::negate:
          if (!v.valid()) return v;
          if (is_float(v.type())) return make_value(v.type(), 0, -v.as_float());
          return make_value(
              v.type(), static_cast<std::int64_t>(0 - static_cast<std::uint64_t>(v.as_int())), 0);
      }
      break;
    }
    case expression::kind::binary: {
      auto a = reference(e.children()[0], t, r);
      auto b = reference(e.children()[1], t, r);
      auto op = e.binary_operator();
      type_id out = result_type(e, t);
      if (op == binary_op::logical_and || op == binary_op::logical_or) {
        bool is_and = op == binary_op::logical_and;
        // The truth tables, spelled out.
        auto known = [](const scalar& s, bool v) { return s.valid() && (s.as_int() != 0) == v; };
        if (is_and) {
          if (known(a, false) || known(b, false)) return scalar::boolean(false);
          if (known(a, true) && known(b, true)) return scalar::boolean(true);
        } else {
          if (known(a, true) || known(b, true)) return scalar::boolean(true);
          if (known(a, false) && known(b, false)) return scalar::boolean(false);
        }
        return scalar::null(type_id::bool8);
      }
      if (out == type_id::bool8) {
        if (!a.valid() || !b.valid()) return scalar::null(out);
        int c = compare_reference(a, b);
        switch (op) {
          case binary_op::eq:
            return scalar::boolean(c == 0);
          case binary_op::ne:
            return scalar::boolean(c != 0);
          case binary_op::lt:
            return scalar::boolean(c < 0);
          case binary_op::le:
            return scalar::boolean(c <= 0);
          case binary_op::gt:
            return scalar::boolean(c > 0);
          default:
            return scalar::boolean(c >= 0);
        }
      }
      if (out == type_id::timestamp_ns ||
          (out == type_id::int64 && a.type() == type_id::timestamp_ns))
        return arithmetic_reference(op, a, b, out);
      type_id common = rank(a.type()) >= rank(b.type()) ? a.type() : b.type();
      return arithmetic_reference(op, cast_reference(a, common), cast_reference(b, common), out);
    }
    case expression::kind::cast:
      return cast_reference(reference(e.children()[0], t, r), e.cast_type());
    case expression::kind::hash:
      break;
  }
  ADD_FAILURE() << "no reference for " << e.to_string();
  return {};
}

/// Equal values; floats compare by bits (so -0.0 differs from 0.0) and NaN equals NaN.
bool same(const scalar& a, const scalar& b) {
  if (a.type() != b.type() || a.valid() != b.valid()) return false;
  if (!a.valid()) return true;
  if (a.type() == type_id::float32) {
    float x = static_cast<float>(a.as_float()), y = static_cast<float>(b.as_float());
    return (std::isnan(x) && std::isnan(y)) || std::memcmp(&x, &y, sizeof x) == 0;
  }
  if (a.type() == type_id::float64) {
    double x = a.as_float(), y = b.as_float();
    return (std::isnan(x) && std::isnan(y)) || std::memcmp(&x, &y, sizeof x) == 0;
  }
  return a == b;
}

std::string show(const scalar& s) {
  if (!s.valid()) return "null(" + std::string(to_string(s.type())) + ")";
  return std::string(to_string(s.type())) + " " + s.to_text();
}

/// Checks evaluate(e) on `device` (a view of `host`'s rows) against the reference, row by row.
template <class Test>
void expect_matches_reference(Test& test, const expression& e, const table_view& host,
                              const table_view& device) {
  auto got = test.run(e, device);
  auto rows = rows_of(host);
  ASSERT_EQ(got.size(), rows.size()) << e.to_string();
  type_id type = result_type(e, host);
  int failures = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    auto want = reference(e, host, rows[i]);
    if (want.type() != type) want = want.valid() ? want : scalar::null(type);
    if (!same(got[i], want) && failures++ < 5) {
      ADD_FAILURE() << e.to_string() << " row " << i << ": got " << show(got[i]) << ", want "
                    << show(want);
    }
  }
}

std::vector<expression> reference_expressions() {
  auto c = [](const char* n) { return col(n); };
  return {
      // arithmetic and promotion
      c("i32") + c("i64"),
      c("i32") * lit(3),
      c("i32") - c("d32"),
      c("i64") - c("f64"),
      c("f32") + c("i32"),
      c("i64") * c("f32"),
      c("f32") / c("f64"),
      c("i32") * c("i32"),
      c("i64") * c("i64"),
      c("i64") + lit(std::int64_t{1}),
      // division and modulo: integer division, zero divisors give null, MIN / -1 wraps
      c("i64") / c("d"),
      c("i64") % c("d"),
      c("i32") / c("d32"),
      c("i32") % c("d32"),
      c("i32") / c("d"),
      c("f64") / c("d"),
      c("f64") % c("f32"),
      c("f32") % c("d32"),
      lit(7) / c("d32"),
      // unary
      -c("i32"),
      -c("i64"),
      -c("f64"),
      -c("f32"),
      !c("b"),
      is_null(c("s")),
      is_not_null(c("i64")),
      is_null(c("f64") / c("d")),
      // comparisons, mixed numbers, strings, timestamps, bools
      c("i32") < c("i64"),
      c("f64") >= c("i32"),
      c("f32") <= c("f64"),
      c("i64") == c("f32"),
      c("f64") != c("f64"),
      c("f64") == c("f64"),
      c("f32") > lit(0.5),
      c("s") == c("s2"),
      c("s") < c("s2"),
      c("s") >= lit("k1"),
      c("s") != lit("k10x"),
      lit("k2") > c("s"),
      c("ts") > c("ts2"),
      c("ts") <= c("ts"),
      c("b") == c("b2"),
      c("b") < c("b2"),
      // three-valued logic
      c("b") && c("b2"),
      c("b") || c("b2"),
      !(c("b") || c("b2")),
      (c("i32") > lit(0)) && is_null(c("s")),
      (c("i32") > lit(0)) || (c("f64") < lit(0.0)),
      c("b") && lit(true),
      c("b") || lit(false),
      c("b") && expression::lit(scalar::null(type_id::bool8)),
      c("b") || expression::lit(scalar::null(type_id::bool8)),
      // timestamps
      c("ts") + c("i64"),
      c("i32") + c("ts"),
      c("ts") - c("i32"),
      c("ts") - c("ts2"),
      // casts between fixed-width types (out of range and NaN give null)
      cast(c("i64"), type_id::int32),
      cast(c("f64"), type_id::int64),
      cast(c("f64"), type_id::int32),
      cast(c("f32"), type_id::int32),
      cast(c("i32"), type_id::float32),
      cast(c("i64"), type_id::float32),
      cast(c("i64"), type_id::float64),
      cast(c("f64"), type_id::float32),
      cast(c("f32"), type_id::float64),
      cast(c("b"), type_id::int32),
      cast(c("b"), type_id::float64),
      cast(c("i32"), type_id::bool8),
      cast(c("f64"), type_id::bool8),
      cast(c("ts"), type_id::int64),
      cast(c("i64"), type_id::timestamp_ns),
      cast(c("i32"), type_id::timestamp_ns),
      cast(c("ts"), type_id::float64),
      // anything to text, and text to numbers
      cast(c("f64"), type_id::string),
      cast(c("f32"), type_id::string),
      cast(c("i64"), type_id::string),
      cast(c("i32"), type_id::string),
      cast(c("ts"), type_id::string),
      cast(c("b"), type_id::string),
      cast(c("s"), type_id::string),
      cast(c("f64") / c("i64"), type_id::string),
      cast(c("ns"), type_id::int32),
      cast(c("ns"), type_id::int64),
      cast(c("ns"), type_id::float32),
      cast(c("ns"), type_id::float64),
      cast(c("ns"), type_id::bool8),
      cast(cast(c("f64"), type_id::string), type_id::float64),
      cast(cast(c("f32"), type_id::string), type_id::float32),
      // literals only: computed once, broadcast to every row
      lit(2) + lit(3),
      lit(1) / lit(0),
      lit("abc"),
      lit(2.5) * lit(std::int64_t{4}),
      cast(lit(2.5), type_id::string),
      expression::lit(scalar::null(type_id::string)),
      c("i64") + expression::lit(scalar::null(type_id::int64)),
      expression::lit(scalar::timestamp(1'600'000'000'000'000'000LL)) - c("ts"),
      // nesting
      ((c("i32") + lit(1)) * c("i64") - c("f64")) / lit(2.0) > c("f32"),
      cast(c("i32") * lit(1000), type_id::string) == lit("0"),
  };
}

// ---- tests ----------------------------------------------------------------------------------

TYPED_TEST_P(expression_test, matches_reference_on_random_tables) {
  auto exprs = reference_expressions();
  for (std::size_t n : {0, 1, 31, 32, 33, 1000, 1025}) {
    auto input = sample(n, 100 + n);
    auto dev = this->up(input.view());
    for (const auto& e : exprs) expect_matches_reference(*this, e, input.view(), dev.view());
  }
}

TYPED_TEST_P(expression_test, matches_reference_on_sliced_views) {
  // Slices start mid-bitmask-word and string offsets do not start at zero.
  auto input = sample(300, 7);
  auto dev = this->up(input.view());
  auto exprs = reference_expressions();
  for (auto [b, e] :
       {std::pair{3, 290}, std::pair{33, 34}, std::pair{37, 37}, std::pair{64, 300}}) {
    auto host_slice = input.view().slice(b, e);
    auto dev_slice = dev.view().slice(b, e);
    for (const auto& x : exprs) expect_matches_reference(*this, x, host_slice, dev_slice);
  }
}

TYPED_TEST_P(expression_test, integer_division_by_zero_is_null) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back(
      "a", make_column<std::int64_t>(type_id::int64,
                                     {7, -7, 7, 0, std::numeric_limits<std::int64_t>::min()}));
  cols.emplace_back("b", make_column<std::int64_t>(type_id::int64, {2, 2, 0, 0, -1}));
  auto input = make_table(std::move(cols));
  auto dev = this->up(input.view());
  auto q = this->run(col("a") / col("b"), dev.view());
  auto m = this->run(col("a") % col("b"), dev.view());
  EXPECT_EQ(q[0], scalar::int64(3));
  EXPECT_EQ(q[1], scalar::int64(-3));
  EXPECT_EQ(q[2], scalar::null(type_id::int64));
  EXPECT_EQ(q[3], scalar::null(type_id::int64));
  EXPECT_EQ(q[4], scalar::int64(std::numeric_limits<std::int64_t>::min()));
  EXPECT_EQ(m[0], scalar::int64(1));
  EXPECT_EQ(m[1], scalar::int64(-1));
  EXPECT_EQ(m[2], scalar::null(type_id::int64));
  EXPECT_EQ(m[4], scalar::int64(0));
}

TYPED_TEST_P(expression_test, three_valued_logic_truth_table) {
  // Every pair of {true, false, null}.
  std::vector<std::uint8_t> av, bv;
  std::vector<bool> avalid, bvalid;
  for (int x = 0; x < 3; ++x)
    for (int y = 0; y < 3; ++y) {
      av.push_back(x == 1);
      avalid.push_back(x != 2);
      bv.push_back(y == 1);
      bvalid.push_back(y != 2);
    }
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("a", make_column<std::uint8_t>(type_id::bool8, av, avalid));
  cols.emplace_back("b", make_column<std::uint8_t>(type_id::bool8, bv, bvalid));
  auto input = make_table(std::move(cols));
  auto dev = this->up(input.view());
  auto f = scalar::boolean(false), t = scalar::boolean(true), n = scalar::null(type_id::bool8);
  // rows: (f,f) (f,t) (f,n) (t,f) (t,t) (t,n) (n,f) (n,t) (n,n)
  std::vector<scalar> want_and = {f, f, f, f, t, n, f, n, n};
  std::vector<scalar> want_or = {f, t, n, t, t, t, n, t, n};
  std::vector<scalar> want_not = {t, t, t, f, f, f, n, n, n};
  EXPECT_EQ(this->run(col("a") && col("b"), dev.view()), want_and);
  EXPECT_EQ(this->run(col("a") || col("b"), dev.view()), want_or);
  EXPECT_EQ(this->run(!col("a"), dev.view()), want_not);
}

TYPED_TEST_P(expression_test, text_casts_match_to_text_and_round_trip) {
  // Random bit patterns reach every float corner: subnormals, huge exponents, NaN payloads.
  const std::size_t n = 20000;
  std::mt19937_64 rng(99);
  std::vector<double> d(n);
  std::vector<float> f(n);
  std::vector<std::int64_t> ts(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t bits = rng();
    std::memcpy(&d[i], &bits, sizeof bits);
    auto fbits = static_cast<std::uint32_t>(bits >> 7);
    std::memcpy(&f[i], &fbits, sizeof fbits);
    if (i % 3 == 0) d[i] = static_cast<double>(static_cast<std::int64_t>(rng() % 100000000)) / 1000;
    ts[i] = static_cast<std::int64_t>(rng());
  }
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("d", make_column<double>(type_id::float64, d));
  cols.emplace_back("f", make_column<float>(type_id::float32, f));
  cols.emplace_back("ts", make_column<std::int64_t>(type_id::timestamp_ns, ts));
  auto input = make_table(std::move(cols));
  auto dev = this->up(input.view());
  auto ds = this->run(cast(col("d"), type_id::string), dev.view());
  auto fs = this->run(cast(col("f"), type_id::string), dev.view());
  auto tss = this->run(cast(col("ts"), type_id::string), dev.view());
  auto d_back = this->run(cast(cast(col("d"), type_id::string), type_id::float64), dev.view());
  auto f_back = this->run(cast(cast(col("f"), type_id::string), type_id::float32), dev.view());
  auto ts_back =
      this->run(cast(cast(col("ts"), type_id::string), type_id::timestamp_ns), dev.view());
  int failures = 0;
  for (std::size_t i = 0; i < n && failures < 10; ++i) {
    auto want_d = scalar::float64(d[i]).to_text();
    auto want_f = scalar::float32(f[i]).to_text();
    auto want_ts = scalar::timestamp(ts[i]).to_text();
    if (ds[i].as_string() != want_d)
      ++failures, ADD_FAILURE() << "double: " << ds[i].as_string() << " vs " << want_d;
    if (fs[i].as_string() != want_f)
      ++failures, ADD_FAILURE() << "float: " << fs[i].as_string() << " vs " << want_f;
    if (tss[i].as_string() != want_ts)
      ++failures, ADD_FAILURE() << "timestamp: " << tss[i].as_string() << " vs " << want_ts;
    if (!same(d_back[i], scalar::float64(d[i])))
      ++failures, ADD_FAILURE() << "double round trip of " << want_d;
    if (!same(f_back[i], scalar::float32(f[i])))
      ++failures, ADD_FAILURE() << "float round trip of " << want_f;
    if (ts_back[i] != scalar::timestamp(ts[i]))
      ++failures, ADD_FAILURE() << "timestamp round trip of " << want_ts;
  }
}

TYPED_TEST_P(expression_test, parses_timestamps) {
  std::vector<std::optional<std::string>> texts = {"2020-01-01T00:00:00Z",
                                                   "2020-01-01",
                                                   "2020-02-29 12:34:56.5",
                                                   "1969-12-31T23:59:59.999999999Z",
                                                   "2021-02-29",
                                                   "2020-13-01",
                                                   "2020-01-01T24:00:00",
                                                   "yesterday",
                                                   std::nullopt,
                                                   "1677-09-21T00:12:43.145224192Z",
                                                   "1677-09-21T00:12:43.145224191Z"};
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("s", make_string_column(texts));
  auto input = make_table(std::move(cols));
  auto dev = this->up(input.view());
  auto got = this->run(cast(col("s"), type_id::timestamp_ns), dev.view());
  auto n = scalar::null(type_id::timestamp_ns);
  std::vector<scalar> want = {scalar::timestamp(1577836800000000000LL),
                              scalar::timestamp(1577836800000000000LL),
                              scalar::timestamp(1582979696500000000LL),
                              scalar::timestamp(-1),
                              n,
                              n,
                              n,
                              n,
                              n,
                              scalar::timestamp(std::numeric_limits<std::int64_t>::min()),
                              n};
  EXPECT_EQ(got, want);
}

TYPED_TEST_P(expression_test, literal_only_expressions_broadcast) {
  auto input = sample(77, 3);
  auto dev = this->up(input.view());
  auto got = this->run(lit(2) * lit(21), dev.view());
  ASSERT_EQ(got.size(), 77u);
  for (const auto& v : got) EXPECT_EQ(v, scalar::int32(42));
  auto text = this->run(lit("hello"), dev.view());
  for (const auto& v : text) EXPECT_EQ(v, scalar::string("hello"));
  auto nulls = this->run(expression::lit(scalar::null(type_id::string)), dev.view());
  for (const auto& v : nulls) EXPECT_EQ(v, scalar::null(type_id::string));
  // Over a table without rows, still no rows.
  auto empty = this->up(sample(0, 1).view());
  EXPECT_TRUE(this->run(lit(1) + lit(1), empty.view()).empty());
}

TYPED_TEST_P(expression_test, hash_is_equal_for_equal_rows_and_across_backends) {
  // Rows repeat with period 37, so equal rows are known; i32 holds the same values as i64.
  const std::size_t n = 5000;
  std::vector<std::int64_t> a(n);
  std::vector<std::int32_t> a32(n);
  std::vector<std::optional<std::string>> s(n);
  std::vector<bool> valid(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t k = i % 37;
    a[i] = static_cast<std::int64_t>(k * 1000003) - 5;
    a32[i] = static_cast<std::int32_t>(a[i]);
    valid[i] = k % 5 != 0;
    if (k % 7 != 0) s[i] = "key" + std::to_string(k);
  }
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("a", make_column<std::int64_t>(type_id::int64, a, valid));
  cols.emplace_back("a32", make_column<std::int32_t>(type_id::int32, a32, valid));
  cols.emplace_back("s", make_string_column(s));
  auto input = make_table(std::move(cols));
  auto dev = this->up(input.view());
  auto e = hash({col("a"), col("s")});
  auto got = this->run(e, dev.view());
  ASSERT_EQ(got.size(), n);
  std::set<std::int64_t> distinct;
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(got[i].valid());
    EXPECT_EQ(got[i], got[i % 37]) << "row " << i;
    distinct.insert(got[i].as_int());
  }
  // Rows 0 and 35 are both (null, null); the other 36 differ.
  EXPECT_EQ(distinct.size(), 36u);
  // The value does not depend on the operand's width, only on its value.
  EXPECT_EQ(this->run(hash({col("a32"), col("s")}), dev.view()), got);
  // Sliced input: the same rows hash alike.
  auto sliced = this->run(e, dev.view().slice(45, 100));
  for (std::size_t i = 0; i < sliced.size(); ++i) EXPECT_EQ(sliced[i], got[45 + i]);
  // The reference backend gives the same numbers (so partitions agree across workers).
  auto reference_ctx = make_test_context<cpu_portable>();
  auto ref_dev = to_device(input.view(), *reference_ctx);
  auto ref_col = evaluate(e, ref_dev.view(), *reference_ctx);
  auto ref_host = to_host(table_view({ref_col.view()}, {"h"}), *reference_ctx);
  for (std::size_t i = 0; i < n; ++i)
    ASSERT_EQ(got[i], get_scalar(ref_host.view().column(0), static_cast<size_type>(i))) << i;
  // A literal operand is broadcast.
  auto with_literal = this->run(hash({col("a"), lit("x")}), dev.view());
  EXPECT_EQ(with_literal[0], with_literal[37]);
  EXPECT_NE(with_literal[0], got[0]);
}

TYPED_TEST_P(expression_test, filter_matches_reference_on_sliced_views) {
  auto input = sample(2100, 11);
  auto dev = this->up(input.view());
  std::vector<expression> predicates = {
      col("i32") > lit(0),
      col("b"),
      col("b") || col("b2"),
      col("s") == lit("k1"),
      is_null(col("f64")),
      (col("i64") % lit(std::int64_t{3}) == lit(std::int64_t{0})) && !col("b"),
      lit(true),
      lit(false),
      expression::lit(scalar::null(type_id::bool8)),
      col("f64") != col("f64")};
  for (auto [b, e] :
       {std::pair{0, 2100}, std::pair{5, 1999}, std::pair{33, 33}, std::pair{1000, 1001}}) {
    auto host_view = input.view().slice(b, e);
    auto dev_view = dev.view().slice(b, e);
    auto rows = rows_of(host_view);
    for (const auto& p : predicates) {
      auto got = this->down(filter(dev_view, p, this->ctx()).view());
      std::vector<row> want;
      for (const auto& r : rows) {
        auto keep = reference(p, host_view, r);
        if (keep.valid() && keep.as_int() != 0) want.push_back(r);
      }
      EXPECT_EQ(got.names(), input.names());
      auto got_rows = rows_of(got.view());
      ASSERT_EQ(got_rows.size(), want.size()) << p.to_string() << " on [" << b << ", " << e << ")";
      for (std::size_t i = 0; i < want.size(); ++i)
        for (std::size_t c = 0; c < want[i].size(); ++c)
          ASSERT_TRUE(same(got_rows[i][c], want[i][c]))
              << p.to_string() << " row " << i << " column " << c;
    }
  }
}

TYPED_TEST_P(expression_test, project_copies_columns_and_computes_expressions) {
  auto input = sample(500, 5);
  auto dev = this->up(input.view());
  auto view = dev.view().slice(7, 450);
  auto out = project(view,
                     {{"s_copy", col("s")},
                      {"total", col("i64") + col("i32")},
                      {"one", lit(1)},
                      {"flag", col("b") && col("b2")}},
                     this->ctx());
  EXPECT_EQ(out.names(), (std::vector<std::string>{"s_copy", "total", "one", "flag"}));
  EXPECT_EQ(out.num_rows(), 443);
  // The copy owns its memory.
  EXPECT_NE(out.view().column(0).chars(), view.column("s").chars());
  auto host = this->down(out.view());
  auto host_view = input.view().slice(7, 450);
  auto rows = rows_of(host_view);
  auto got = rows_of(host.view());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(got[i][0], rows[i][static_cast<std::size_t>(host_view.index_of("s"))]);
    EXPECT_TRUE(same(got[i][1], reference(col("i64") + col("i32"), host_view, rows[i])));
    EXPECT_EQ(got[i][2], scalar::int32(1));
    EXPECT_TRUE(same(got[i][3], reference(col("b") && col("b2"), host_view, rows[i])));
  }
  auto none = project(view, {}, this->ctx());
  EXPECT_EQ(none.num_columns(), 0);
}

template <class F>
void expect_invalid_input(F&& f, const std::string& message) {
  try {
    f();
    ADD_FAILURE() << "expected invalid_input: " << message;
  } catch (const invalid_input& e) {
    EXPECT_EQ(std::string(e.what()), message);
  }
}

TYPED_TEST_P(expression_test, errors_name_the_expression_and_the_types) {
  auto input = sample(10, 1);
  auto dev = this->up(input.view());
  auto v = dev.view();
  auto& ctx = this->ctx();
  std::string columns = "i32, i64, d, d32, f64, f32, b, b2, s, s2, ts, ts2, ns";
  expect_invalid_input([&] { (void)evaluate(col("price") * lit(2), v, ctx); },
                       "unknown column 'price' (the table has: " + columns + ")");
  expect_invalid_input([&] { (void)filter(v, col("nope"), ctx); },
                       "unknown column 'nope' (the table has: " + columns + ")");
  expect_invalid_input([&] { (void)evaluate(col("s") + lit(1), v, ctx); },
                       "type mismatch in (s + 1): cannot apply + to string and int32");
  expect_invalid_input([&] { (void)evaluate((col("i32") + lit(1)) < col("s"), v, ctx); },
                       "type mismatch in ((i32 + 1) < s): cannot apply < to int32 and string");
  expect_invalid_input([&] { (void)evaluate(col("b") + col("i64"), v, ctx); },
                       "type mismatch in (b + i64): cannot apply + to bool and int64");
  expect_invalid_input([&] { (void)evaluate(col("i32") && col("b"), v, ctx); },
                       "type mismatch in (i32 and b): cannot apply and to int32 and bool");
  expect_invalid_input([&] { (void)evaluate(!col("i32"), v, ctx); },
                       "type mismatch in (not i32): cannot apply not to int32");
  expect_invalid_input([&] { (void)evaluate(-col("s"), v, ctx); },
                       "type mismatch in (-s): cannot apply - to string");
  expect_invalid_input([&] { (void)evaluate(col("ts") * lit(2), v, ctx); },
                       "type mismatch in (ts * 2): cannot apply * to timestamp and int32");
  expect_invalid_input([&] { (void)evaluate(col("ts") == col("i64"), v, ctx); },
                       "type mismatch in (ts == i64): cannot apply == to timestamp and int64");
  expect_invalid_input([&] { (void)filter(v, col("i64") + lit(1), ctx); },
                       "filter: the predicate (i64 + 1) is int64, not bool");
  expect_invalid_input(
      [&] {
        (void)project(v, {{"x", col("s") == lit(1)}}, ctx);
      },
      "type mismatch in (s == 1): cannot apply == to string and int32");
  expect_invalid_input([&] { (void)hash({}); }, "hash() needs at least one operand");
  expect_invalid_input(
      [&] {
        (void)project(v, {{"x", col("i32")}, {"x", lit(1)}}, ctx);
      },
      "project: the output column 'x' appears twice");
  EXPECT_THROW((void)result_type(col("zzz"), v), invalid_input);
}

TYPED_TEST_P(expression_test, over_a_million_rows) {
  const std::size_t n = 1'000'003;
  auto input = make_table({});
  {
    std::vector<std::pair<std::string, column>> cols;
    cols.emplace_back("x", random_int64(n, -1'000'000, 1'000'000, 0.05, 1));
    cols.emplace_back("y", random_int64(n, -3, 3, 0.0, 2));
    cols.emplace_back("s", random_strings(n, 100, 0.1, 3));
    input = make_table(std::move(cols));
  }
  auto dev = this->up(input.view());
  auto e = col("x") * lit(3) / col("y") + lit(1.5);
  auto got = this->run(e, dev.view());
  auto xs = copy_optional<std::int64_t>(input.view().column(0));
  auto ys = copy_values<std::int64_t>(input.view().column(1));
  auto ss = copy_strings(input.view().column(2));
  for (std::size_t i = 0; i < n; ++i) {
    scalar want = !xs[i] || ys[i] == 0
                      ? scalar::null(type_id::float64)
                      : scalar::float64(static_cast<double>(*xs[i] * 3 / ys[i]) + 1.5);
    ASSERT_EQ(got[i], want) << "row " << i;
  }
  auto kept = this->down(
      filter(dev.view(), (col("x") > lit(0)) && (col("s") < lit("k5")), this->ctx()).view());
  std::size_t k = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!xs[i] || *xs[i] <= 0 || !ss[i] || !(*ss[i] < "k5")) continue;
    ASSERT_LT(static_cast<size_type>(k), kept.num_rows());
    ASSERT_EQ(get_scalar(kept.view().column(0), static_cast<size_type>(k)), scalar::int64(*xs[i]));
    ++k;
  }
  EXPECT_EQ(static_cast<size_type>(k), kept.num_rows());
}

TEST(expression, to_string_reads_like_the_expression) {
  EXPECT_EQ((col("price") * lit(2)).to_string(), "(price * 2)");
  EXPECT_EQ(cast(col("a"), type_id::float64).to_string(), "cast(a as float64)");
  EXPECT_EQ((!(col("a") > lit(1.5)) || is_null(col("b"))).to_string(),
            "((not (a > 1.5)) or (b is null))");
  EXPECT_EQ(hash({col("a"), lit("it's")}).to_string(), "hash(a, 'it''s')");
  EXPECT_EQ((-col("x") % expression::lit(scalar::null(type_id::int64))).to_string(),
            "((-x) % null)");
  EXPECT_EQ(is_not_null(col("x") == lit(true)).to_string(), "((x == true) is not null)");
  auto e = col("a") + lit(1);
  EXPECT_EQ(e.node_kind(), expression::kind::binary);
  EXPECT_EQ(e.binary_operator(), binary_op::add);
  EXPECT_EQ(e.children().size(), 2u);
  EXPECT_EQ(e.children()[0].column_name(), "a");
  EXPECT_EQ(e.children()[1].literal_value(), scalar::int32(1));
  EXPECT_THROW((void)e.column_name(), logic_error);
}

TEST(expression, result_types_follow_promotion) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("i32", make_column<std::int32_t>(type_id::int32, {1}));
  cols.emplace_back("i64", make_column<std::int64_t>(type_id::int64, {1}));
  cols.emplace_back("f32", make_column<float>(type_id::float32, {1}));
  cols.emplace_back("f64", make_column<double>(type_id::float64, {1}));
  cols.emplace_back("ts", make_column<std::int64_t>(type_id::timestamp_ns, {1}));
  auto t = make_table(std::move(cols));
  auto v = t.view();
  EXPECT_EQ(result_type(col("i32") + col("i32"), v), type_id::int32);
  EXPECT_EQ(result_type(col("i32") + col("i64"), v), type_id::int64);
  EXPECT_EQ(result_type(col("i64") * col("f32"), v), type_id::float32);
  EXPECT_EQ(result_type(col("f32") - col("f64"), v), type_id::float64);
  EXPECT_EQ(result_type(col("i64") / col("i32"), v), type_id::int64);
  EXPECT_EQ(result_type(col("ts") + col("i64"), v), type_id::timestamp_ns);
  EXPECT_EQ(result_type(col("ts") - col("ts"), v), type_id::int64);
  EXPECT_EQ(result_type(col("i32") < col("f64"), v), type_id::bool8);
  EXPECT_EQ(result_type(hash({col("f64")}), v), type_id::int64);
  EXPECT_EQ(result_type(cast(col("ts"), type_id::string), v), type_id::string);
  EXPECT_EQ(result_type(is_null(col("ts")), v), type_id::bool8);
}

REGISTER_TYPED_TEST_SUITE_P(expression_test, matches_reference_on_random_tables,
                            matches_reference_on_sliced_views, integer_division_by_zero_is_null,
                            three_valued_logic_truth_table, text_casts_match_to_text_and_round_trip,
                            parses_timestamps, literal_only_expressions_broadcast,
                            hash_is_equal_for_equal_rows_and_across_backends,
                            filter_matches_reference_on_sliced_views,
                            project_copies_columns_and_computes_expressions,
                            errors_name_the_expression_and_the_types, over_a_million_rows);
INSTANTIATE_TYPED_TEST_SUITE_P(backends, expression_test, all_backends);

}  // namespace
}  // namespace ember::test
