#pragma once
#include <memory>

#include <spdlog/spdlog.h>

namespace ember {

/// ember's logger (spdlog, to stderr). Its level comes from EMBER_LOG_LEVEL
/// (trace, debug, info, warn, error, critical, off; default warn) on first use.
[[nodiscard]] spdlog::logger& logger();

}  // namespace ember
