#pragma once
// Host-side table helpers of the scheduler.
#include <ember/host/memory_resource.hpp>
#include <ember/host/table.hpp>
#include <ember/scheduler/plan.hpp>
#include <vector>

namespace ember::detail {

/// The rows of host tables one after another, in fresh host memory from `mr` (the job result
/// handed to the caller, which must not depend on any worker's context). Slices are welcome.
/// With no tables, an empty table of `columns`. The tables must match `columns`.
[[nodiscard]] table concatenate_host(const std::vector<table_view>& tables, const schema& columns,
                                     memory_resource& mr = default_host_resource());

}  // namespace ember::detail
