#pragma once
// Helpers shared by the scheduler's test programs: comparing job results with references,
// running an operator directly on one CPU context (the reference for distributed plans), and
// temporary folders that clean up after themselves.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <ember/cuda/context.hpp>
#include <ember/host/table.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "common/tables.hpp"
#include "common/temp_dir.hpp"

namespace ember::test {

/// A table of the given named columns (make_table takes pairs that an initializer list cannot
/// move).
inline table table_of(std::string name, column c) {
  std::vector<column> cols;
  cols.push_back(std::move(c));
  return table(std::move(cols), {std::move(name)});
}
inline table table_of(std::string n1, column c1, std::string n2, column c2) {
  std::vector<column> cols;
  cols.push_back(std::move(c1));
  cols.push_back(std::move(c2));
  return table(std::move(cols), {std::move(n1), std::move(n2)});
}

/// Equal values; floats may differ by a relative `tolerance` (sums whose order of addition
/// depends on the partitioning).
inline bool scalar_near(const scalar& a, const scalar& b, double tolerance) {
  if (a.type() != b.type() || a.valid() != b.valid()) return false;
  if (!a.valid()) return true;
  if (is_floating(a.type())) {
    double x = a.as_float(), y = b.as_float();
    if (std::isnan(x) || std::isnan(y)) return std::isnan(x) && std::isnan(y);
    return std::abs(x - y) <= tolerance * std::max({1.0, std::abs(x), std::abs(y)});
  }
  return a == b;
}

inline std::string row_text(const row& r) {
  std::string out = "(";
  for (std::size_t i = 0; i < r.size(); ++i)
    out += (i ? ", " : "") + (r[i].valid() ? r[i].to_text() : std::string("null"));
  return out + ")";
}

/// Same column names and types, and the same rows (in the same order when `ordered`; as
/// multisets otherwise).
inline void expect_same_table(const table_view& got, const table_view& want, bool ordered,
                              double tolerance = 1e-9) {
  ASSERT_EQ(got.names(), want.names());
  for (size_type c = 0; c < want.num_columns(); ++c)
    ASSERT_EQ(got.column(c).type(), want.column(c).type()) << "column " << want.names()[c];
  ASSERT_EQ(got.num_rows(), want.num_rows());
  auto g = ordered ? rows_of(got) : sorted_rows(got);
  auto w = ordered ? rows_of(want) : sorted_rows(want);
  int shown = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    bool same = g[i].size() == w[i].size();
    for (std::size_t c = 0; same && c < w[i].size(); ++c)
      same = scalar_near(g[i][c], w[i][c], tolerance);
    if (!same && shown++ < 5) {
      ADD_FAILURE() << "row " << i << ": got " << row_text(g[i]) << ", want " << row_text(w[i]);
    }
  }
}

/// One CPU context for reference computations.
inline context& reference_context() {
  static std::unique_ptr<context> ctx = [] {
    context_options o;
    o.backend = backend_choice::cpu;
    o.name = "reference";
    return context::create(o);
  }();
  return *ctx;
}

/// `op` applied to one host table on the reference context, the result in host memory.
inline table on_reference(const table_view& input,
                          const std::function<table(const table_view&, context&)>& op) {
  auto& ctx = reference_context();
  auto in = to_device(input, ctx);
  auto out = op(in.view(), ctx);
  return to_host(out.view(), ctx);
}

/// Random text: `lines` lines of words from a small vocabulary, some empty lines, CRLF now
/// and then, no newline at the very end when `trailing_newline` is false.
inline std::string random_text(int lines, std::uint64_t seed, bool trailing_newline = true) {
  static const char* words[] = {"the",   "harbour", "Lamp",  "machine's", "garden", "a",
                                "river", "stone",   "Quiet", "bell",      "42",     "x9"};
  std::mt19937_64 rng(seed);
  std::string out;
  for (int l = 0; l < lines; ++l) {
    int n = static_cast<int>(rng() % 9);
    for (int w = 0; w < n; ++w) {
      if (w > 0) out += (rng() % 5 == 0) ? ", " : " ";
      out += words[rng() % std::size(words)];
    }
    if (l + 1 < lines || trailing_newline) out += (rng() % 7 == 0) ? "\r\n" : "\n";
  }
  return out;
}

}  // namespace ember::test
