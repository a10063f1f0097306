#pragma once
// How a table crosses the wire without being serialised into one buffer: a small layout (names,
// types, rows, which buffers follow and how long each is) goes in the message's metadata, and
// the column buffers themselves are the body, sent as a list of segments (UCX sends them as an
// I/O vector, zero copy) and received straight into the new table's column buffers.
//
// Layout (byte_codec, little-endian): rows i64, column count u32, then per column: name, type
// u8, nullable u8, offsets_base i64 (string columns: the first offset, subtracted by the
// receiver so that a slice needs no copy of its offsets), then the byte length of each segment
// that follows for this column, in order: null mask (nullable only), offsets (strings only),
// values or characters.
//
// The receiver checks the layout against the body's length before it allocates, and the data
// after it arrives: string offsets start at the base, never decrease and end inside the
// characters; booleans are 0 or 1. A bad table is an ember::invalid_input naming the peer.
#include <cstddef>
#include <cstdint>
#include <ember/cuda/context.hpp>
#include <ember/host/memory_resource.hpp>
#include <ember/host/table.hpp>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace ember::transport {

/// One contiguous piece of a table's body.
struct segment {
  const void* data = nullptr;
  std::size_t bytes = 0;
};

/// A table ready to send: the layout, the body's segments, and what keeps their memory alive
/// until the send completes (the caller's owner, plus compacted null masks).
struct outgoing_table {
  std::vector<std::uint8_t> layout;
  std::vector<segment> segments;
  std::size_t body_bytes = 0;
  std::shared_ptr<const void> keepalive;
  /// The memory the segments are in (host, or device when the transport may read it directly).
  memory_kind kind = memory_kind::host;
};

/// Describes `rows` for sending. Host memory always; device memory only when every column's
/// null mask starts at bit 0 (the caller stages other device tables through host memory).
/// `owner` keeps the rows' memory alive. Null masks of slices that do not start at a word
/// boundary are compacted into a fresh host buffer. Throws ember::invalid_input for a device
/// table that needs compacting or mixed memory kinds.
[[nodiscard]] outgoing_table describe_table(const table_view& rows,
                                            std::shared_ptr<const void> owner);

/// The body bytes describe_table would send for a host table (null masks, offsets, values or
/// characters), computed without describing it.
[[nodiscard]] std::size_t body_bytes(const table_view& rows);

/// describe_table for a table in `ctx`'s device memory, sent as it is to a CUDA-aware transport:
/// string columns have their first and last offsets read through `ctx` (small synchronous
/// copies), and a table whose null masks start mid-word is compacted on the device first
/// (copy_slice; the copy is kept alive with the description). Host tables are described as by
/// describe_table. Called on the thread that owns `ctx`.
[[nodiscard]] outgoing_table describe_device_table(const table_view& rows,
                                                   std::shared_ptr<const void> owner, context& ctx);

/// Receives one table: built from the layout, it allocates the columns' buffers from `mr` (host
/// memory) and exposes them as segments to receive into; finish() checks what arrived and hands
/// the table over.
class incoming_table {
 public:
  /// Parses `layout` and checks it against `body_bytes` (the sum of its segments must equal it)
  /// before allocating anything. `subject` names the sender in errors. Throws
  /// ember::invalid_input.
  incoming_table(std::span<const std::uint8_t> layout, std::uint64_t body_bytes,
                 memory_resource& mr, std::string subject);

  /// Where the body's bytes go, in order.
  [[nodiscard]] std::vector<segment> segments() const;
  /// Copies a body that arrived in one piece into the segments.
  void fill(std::span<const std::uint8_t> body);
  /// Checks the data (string offsets, booleans), rebases string offsets and returns the table.
  /// Throws ember::invalid_input.
  [[nodiscard]] table finish();

 private:
  struct column_parts {
    type_id type = type_id::int64;
    bool nullable = false;
    size_type base = 0;
    buffer mask, offsets, values;
  };
  std::vector<column_parts> _columns;
  std::vector<std::string> _names;
  size_type _rows = 0;
  std::string _subject;
  std::uint64_t _body_bytes = 0;
};

}  // namespace ember::transport
