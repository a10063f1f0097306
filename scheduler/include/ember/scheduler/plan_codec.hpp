#pragma once
// The binary form of plans (and the expressions and host tables inside them), for shipping a
// plan or a stage body to another process.
//
// Layout (all integers little-endian, fixed width):
//   header (24 bytes): magic "EMBP" (u32 0x50424d45), version u16, flags u16 (0),
//                      payload_bytes u64, checksum u64 (FNV-1a 64 of the payload)
//   payload:           the plan: root i32, node count u32, nodes (op tag u8, label, fields)
// Strings are a u32 length and the bytes; vectors a u32 count and the elements; a scalar is its
// type u8, a valid u8 and the value (i64, f64 bits, or string); an expression is its kind u8 and
// the kind's fields, children recursively (depth at most max_expression_depth); a table is its
// column count, then per column the name, type, rows i64, a null-mask flag and the raw buffers
// (null mask words, string offsets, values or characters).
//
// Decoding checks every length against the bytes that remain before allocating, every enum
// value, every node reference (inputs before readers), every string column's offsets, and the
// checksum; it rejects unknown versions, trailing bytes and inputs over max_encoded_plan_bytes.
#include <cstddef>
#include <cstdint>
#include <ember/cuda/expression.hpp>
#include <ember/scheduler/plan.hpp>
#include <span>
#include <vector>

namespace ember {

/// The format version this build writes and the only one it reads.
inline constexpr std::uint16_t plan_format_version = 1;
/// "EMBP" read as a little-endian u32.
inline constexpr std::uint32_t plan_format_magic = 0x50424d45u;
/// Size of the fixed header in front of the payload.
inline constexpr std::size_t plan_header_bytes = 24;
/// The largest encoded plan accepted (in-memory tables travel inside plans).
inline constexpr std::size_t max_encoded_plan_bytes = std::size_t{4} << 30;
/// The deepest expression tree accepted.
inline constexpr int max_expression_depth = 256;

/// The plan's bytes. In-memory tables are copied in (they must be in host memory). Throws
/// ember::invalid_input when a table is not in host memory or the result would exceed
/// max_encoded_plan_bytes.
[[nodiscard]] std::vector<std::uint8_t> encode_plan(const plan& p);

/// The plan encoded in `bytes`. Throws ember::invalid_input with the reason (bad magic,
/// unsupported version, truncated at byte N, checksum mismatch, bad enum value, node reference
/// out of order, malformed string column, trailing bytes...). Does not check columns and types
/// (infer_schemas does). In-memory tables are decoded into fresh host memory.
[[nodiscard]] plan decode_plan(std::span<const std::uint8_t> bytes);

/// One expression alone, framed like a plan (for tests and messages that carry a predicate).
[[nodiscard]] std::vector<std::uint8_t> encode_expression(const expression& e);
[[nodiscard]] expression decode_expression(std::span<const std::uint8_t> bytes);

}  // namespace ember
