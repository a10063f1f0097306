#pragma once
// Spill files: a partition store's copy of a table on local disk, written and read at close to
// the speed of a plain file write and read. Unlike partition files (partition_file.hpp) they
// have no statistics, compression or row groups, and live only as long as the process that
// wrote them: each column buffer goes to the file as it is in memory (one writev for the whole
// table), and comes back with one read straight into a buffer from the caller's resource.
//
// Layout (version 1, little-endian):
//   prefix   16 bytes  magic u32 "EMBS", version u16, reserved u16 (0), header_bytes u64
//   header             rows u64, column_count u32, then per column: name_bytes u32, name,
//                      type u8 (ember::type_id), nullable u8, then per buffer of the column
//                      (null mask when nullable: bitmask_words(rows) words; strings: offsets
//                      (rows + 1 int64, the first 0), characters; other types: values):
//                      bytes u64, then one checksum u64 per MiB of it (XXH3-64 of each 1 MiB
//                      block, the last one shorter), so that several cores read and check
//                      one buffer at once
//   header checksum    8 bytes: XXH3-64 of the header
//   buffers            back to back, in header order
//
// A reader checks the magic, version, header checksum, that the file holds exactly the bytes
// the header announces (else "truncated"), every buffer size against the row count, and every
// buffer's checksum; string offsets must start at 0 and end at the characters' size. Every
// failure is an ember::invalid_input naming the file (and the column).
#include <cstdint>
#include <filesystem>

#include <ember/host/memory_resource.hpp>
#include <ember/host/table.hpp>

namespace ember {

/// Writes the host table `rows` (slices welcome) to `path` (created or replaced), without fsync;
/// returns the file's size. On failure the partial file is removed. Throws ember::invalid_input
/// for device columns, ember::error naming the file when it cannot be written.
std::int64_t write_spill_file(const std::filesystem::path& path, const table_view& rows);

/// Reads a spill file into buffers from `mr` (host memory). Throws ember::invalid_input naming
/// the file when it is not a spill file, truncated or damaged (a checksum or a size that does
/// not match), ember::out_of_memory when `mr` refuses.
[[nodiscard]] table read_spill_file(const std::filesystem::path& path, memory_resource& mr);

}  // namespace ember
