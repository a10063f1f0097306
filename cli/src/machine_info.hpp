#pragma once
#include <nlohmann/json.hpp>

#include <ember/cuda/context.hpp>

namespace ember::cli {

/// What every benchmark result records: git revision, CPU model and threads, the backend's
/// device (GPU model and memory when CUDA), compiler and ember version.
[[nodiscard]] nlohmann::json machine_info(const context& ctx);

}  // namespace ember::cli
