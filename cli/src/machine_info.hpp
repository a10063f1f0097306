#pragma once
#include <nlohmann/json.hpp>

#include <ember/cuda/context.hpp>

namespace ember::cli {

/// What every benchmark result records: git revision, CPU model and threads, the backend's
/// device (GPU model and memory when CUDA), compiler and ember version.
[[nodiscard]] nlohmann::json machine_info(const context& ctx);
/// machine_info of this host's CPU backend (benchmarks whose work runs in other processes).
[[nodiscard]] nlohmann::json host_machine_info();

}  // namespace ember::cli
