#pragma once
// Median, min and max of repeated timings: what every benchmark reports.
#include <algorithm>
#include <chrono>
#include <vector>

namespace ember::cli {

/// Seconds on the steady clock since `t0`.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct stats {
  double median = 0, min = 0, max = 0;
};

inline stats summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return {};
  return {v[v.size() / 2], v.front(), v.back()};
}

}  // namespace ember::cli
