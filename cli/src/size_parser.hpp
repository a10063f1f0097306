#pragma once
#include <string_view>

#include <ember/host/types.hpp>

namespace ember::cli {

/// Parses a byte size such as "1048576", "64MB", "1.5GiB", "10 GB" (KB/MB/GB/TB are powers of
/// 1000, KiB/MiB/GiB/TiB powers of 1024, a bare number is bytes). Throws ember::invalid_input
/// naming `what` (the flag) for a negative, empty or malformed value.
[[nodiscard]] size_type parse_size(std::string_view text, std::string_view what);

/// Parses a row count: a non-negative integer, optionally with K/M/G suffix (powers of 1000).
[[nodiscard]] size_type parse_count(std::string_view text, std::string_view what);

}  // namespace ember::cli
