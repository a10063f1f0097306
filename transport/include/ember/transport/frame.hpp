#pragma once
// The frame header in front of every message ember sends between processes.
//
// Every message travels as one UCX active message: its AM header is this 24-byte frame header
// followed by `meta_bytes` of metadata, its AM payload is the `body_bytes`-byte body. Control
// messages (hello, heartbeats, task assignments) carry everything in the body and no metadata;
// a table travels as a first message whose metadata holds the application's header and the
// table's layout (table_wire.hpp), then one message per buffer, so that a receiver knows where
// every byte goes before a rendezvous transfer starts and receives it there directly.
//
// Layout (little-endian, fixed width):
//   magic u32 "EMBW" (0x57424d45) | version u16 | type u16 | flags u16 | reserved u16 (0)
//   meta_bytes u32 | body_bytes u64
// Decoding checks the magic, the version, the reserved bits, that meta_bytes and body_bytes
// match what actually arrived and that both are within the receiver's limits, before anything is
// allocated.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace ember::transport {

/// "EMBW" read as a little-endian u32.
inline constexpr std::uint32_t frame_magic = 0x57424d45u;
/// The wire protocol version this build speaks; a peer speaking another is rejected.
inline constexpr std::uint16_t protocol_version = 3;
inline constexpr std::size_t frame_header_bytes = 24;

/// flags: the first message of a table (metadata: transfer id, table bytes, application header
/// and layout; no body). Its non-empty buffers follow, one message each.
inline constexpr std::uint16_t frame_flag_table = 1;
/// flags: one buffer of a table (metadata: transfer id, segment index; body: the bytes).
inline constexpr std::uint16_t frame_flag_segment = 2;

struct frame_header {
  std::uint32_t magic = frame_magic;
  std::uint16_t version = protocol_version;
  std::uint16_t type = 0;
  std::uint16_t flags = 0;
  std::uint16_t reserved = 0;
  std::uint32_t meta_bytes = 0;
  std::uint64_t body_bytes = 0;
};
static_assert(sizeof(frame_header) == frame_header_bytes,
              "the frame header is 24 bytes on the wire");

/// Limits a receiver enforces before allocating.
struct frame_limits {
  /// Largest metadata (application header plus table layout), bytes.
  std::size_t max_meta_bytes = std::size_t{1} << 20;
  /// Largest control message body, bytes.
  std::size_t max_message_bytes = std::size_t{256} << 20;
  /// Largest table body (one block or result), bytes.
  std::size_t max_table_bytes = std::size_t{64} << 30;
};

/// The header's 24 bytes.
[[nodiscard]] std::array<std::uint8_t, frame_header_bytes> encode_frame_header(
    const frame_header& h) noexcept;

/// Decodes and checks the header at the start of `am_header` (the whole AM header as received,
/// header plus metadata) against `body_length` (the AM payload's length as UCX reports it) and
/// `limits`. Throws ember::invalid_input naming `peer` and the problem (too short, bad magic,
/// unsupported version, nonzero reserved bits, unknown flags, lengths that disagree with what
/// arrived, or over a limit).
[[nodiscard]] frame_header decode_frame_header(std::span<const std::uint8_t> am_header,
                                               std::uint64_t body_length,
                                               const frame_limits& limits, const std::string& peer);

}  // namespace ember::transport
