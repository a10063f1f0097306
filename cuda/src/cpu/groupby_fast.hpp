#pragma once
// The CPU backend's hash aggregation: plain C++ and OpenMP over host memory.
#include <ember/cuda/context.hpp>
#include <ember/cuda/groupby.hpp>
#include <ember/host/table.hpp>
#include <optional>
#include <string>
#include <vector>

namespace ember::cpu {

/// group_by by hashing, for inputs in host memory whose aggregations were validated by the
/// public entry point. Returns std::nullopt for what it does not cover (count_distinct), which
/// the caller then hands to the portable body. Results and scratch come from ctx.resource().
[[nodiscard]] std::optional<table> hash_group_by(const table_view& input,
                                                 const std::vector<std::string>& keys,
                                                 const std::vector<aggregation>& aggregations,
                                                 context& ctx);

}  // namespace ember::cpu
