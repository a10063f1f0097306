#pragma once
// The table both tier benchmarks move between memory tiers (`ember bench cache` and the Google
// Benchmark program bench/host/partition_store_bench.cpp): int64, float64 and strings of 4 to
// 12 letters, about 32 bytes a row, generated with a fixed seed; and its buffers in order, what
// a move has to copy. Header-only, on host/ alone, so that both programs share it.
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <ember/host/column_factories.hpp>
#include <ember/host/table.hpp>

namespace ember::cli {

/// The buffers of a compact table without nulls, in order: what a move has to copy.
inline std::vector<std::pair<const void*, std::size_t>> pieces_of(const table_view& t) {
  std::vector<std::pair<const void*, std::size_t>> out;
  for (const auto& c : t.columns()) {
    if (c.type() == type_id::string) {
      auto first = c.offsets()[0];
      out.emplace_back(c.offsets(), static_cast<std::size_t>(c.size() + 1) * sizeof(size_type));
      out.emplace_back(c.chars() + first, static_cast<std::size_t>(c.offsets()[c.size()] - first));
    } else {
      out.emplace_back(c.data(), static_cast<std::size_t>(c.size() * size_of(c.type())));
    }
  }
  return out;
}

struct tier_input {
  table rows;
  std::int64_t bytes = 0;  ///< of all pieces
  std::vector<std::pair<const void*, std::size_t>> pieces;
};

/// About `target_bytes` of rows (key int64, value float64, name string), seed 42.
inline tier_input make_tier_input(size_type target_bytes) {
  const auto n = std::max<size_type>(1, target_bytes / 32);
  std::mt19937_64 rng(42);
  std::vector<std::int64_t> k(static_cast<std::size_t>(n));
  std::vector<double> v(static_cast<std::size_t>(n));
  std::vector<size_type> offsets(static_cast<std::size_t>(n) + 1, 0);
  std::string chars;
  chars.reserve(static_cast<std::size_t>(n) * 8);
  for (size_type i = 0; i < n; ++i) {
    auto at = static_cast<std::size_t>(i);
    k[at] = static_cast<std::int64_t>(rng());
    v[at] = static_cast<double>(rng() >> 11) * 0x1p-53 * 1e6;
    auto r = rng();
    auto len = 4 + static_cast<int>(r % 9);
    r /= 9;
    for (int j = 0; j < len; ++j, r /= 26) chars.push_back(static_cast<char>('a' + r % 26));
    offsets[at + 1] = static_cast<size_type>(chars.size());
  }
  std::vector<column> cols;
  cols.push_back(make_column<std::int64_t>(type_id::int64, k));
  cols.push_back(make_column<double>(type_id::float64, v));
  cols.push_back(make_string_column(offsets, chars));
  tier_input in;
  in.rows = table(std::move(cols), {"key", "value", "name"});
  in.pieces = pieces_of(in.rows.view());
  for (const auto& [p, size] : in.pieces) in.bytes += static_cast<std::int64_t>(size);
  return in;
}

}  // namespace ember::cli
