#pragma once
#include <cstdint>
#include <string>

#include "cluster_flags.hpp"

namespace ember::cli {

/// `ember status`: the scheduler and its workers (backend, tasks), each worker's memory tiers
/// (used, peak, budget, partitions) and its partition store's traffic (spilled and unspilled
/// bytes, hit rate, tasks held back), as tables or JSON.
int run_status_command(const cluster_flags& cluster, bool json);

/// `bytes` for people: "512 B", "1.5 KiB", "20.0 MiB", "3.2 GiB" (one decimal above bytes).
[[nodiscard]] std::string human_bytes(std::uint64_t bytes);

}  // namespace ember::cli
