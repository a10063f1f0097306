#pragma once
// Small pieces every benchmark's report uses: a number formatted printf-style for the human
// table, and the median/min/max (and every value) of repeated timings for the JSON report.
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_stats.hpp"

namespace ember::cli {

/// `v` formatted with a printf pattern for one double ("%.2f").
inline std::string format(const char* pattern, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, pattern, v);
  return buf;
}

/// {"median", "min", "max", "all"} of repeated measurements.
inline nlohmann::json spread(const std::vector<double>& v) {
  auto s = summarize(v);
  return {{"median", s.median}, {"min", s.min}, {"max", s.max}, {"all", v}};
}

}  // namespace ember::cli
