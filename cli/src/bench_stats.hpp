#pragma once
// Median, min and max of repeated timings: what every benchmark reports.
#include <algorithm>
#include <vector>

namespace ember::cli {

struct stats {
  double median = 0, min = 0, max = 0;
};

inline stats summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return {};
  return {v[v.size() / 2], v.front(), v.back()};
}

}  // namespace ember::cli
