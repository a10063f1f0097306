#pragma once
// ember's native partition file: one partition of a dataset's table, stored column by column in
// checksummed (optionally zstd-compressed) chunks, with a footer of schema and statistics that a
// scan reads on its own to skip files and row groups. Datasets (manifests, atomic commits,
// scans) are built on top of these files; this header knows nothing of them.
//
// Layout (version 1). Little-endian throughout; offsets and sizes are in bytes from the start
// of the file.
//
//   header   16 bytes   magic u32 "EMBP", version u16, flags u16 (0), file_bytes u64
//   chunks              one per column per row group, row group by row group, each column in
//                       schema order within a row group; they follow each other with no gap,
//                       from byte 16 to the footer
//   footer              see below
//   tail     24 bytes   footer_bytes u64, footer_checksum u64, version u16, reserved u16 (0),
//                       magic u32 "EMBP"
//
// `file_bytes` in the header is written last (the writer goes back to it once everything else
// is written), so a file whose writer stopped early (an error, a killed process) says so (0),
// and a truncated file is told from a damaged one before anything else is read. (After a crash
// without sync the pages may reach the disk in any order: then the checksums catch it.) A
// reader finds the footer from the file's end: the tail gives its length and its checksum
// (XXH3-64 of the footer's bytes).
//
// Rows are cut into row groups of `row_group_rows` rows (the last one may be shorter; a table
// of 0 rows has no row groups). A chunk's raw bytes are, in order:
//   null bitmap   ceil(rows / 8) bytes, only when the column is nullable: bit i (byte i / 8,
//                 bit i % 8, least significant first) is set when row i is valid; padding bits
//                 are 0
//   values        fixed-width types: rows values of size_of(type) bytes; null rows hold 0 and
//                 bool values are 0 or 1
//                 strings: rows + 1 int64 offsets (the first is 0, never decreasing), then the
//                 characters (as many bytes as the last offset)
// A chunk is stored as its raw bytes or as one zstd frame of them (with its content size), as
// the chunk's codec says; a chunk that zstd does not shrink is stored raw. Its checksum is
// XXH3-64 of the stored bytes.
//
// Footer:
//   column_count u32, then per column: name_bytes u32, name (UTF-8), type u8 (ember::type_id),
//     flags u8 (bit 0: nullable)
//   rows u64, row_group_rows u64, row_group_count u32
//   per row group: rows u64, then per column one chunk record:
//     offset u64, stored_bytes u64, raw_bytes u64, checksum u64, codec u8 (0 none, 1 zstd),
//     stats_flags u8 (bit 0: has min/max, bit 1: min truncated, bit 2: max truncated,
//     bit 3: max unbounded), null_count u64, nan_count u64, then when bit 0 is set:
//       fixed-width types: min, max as 8 bytes each (int64 for int32, int64, timestamp and
//         bool; the float64 bit pattern for float32 and float64)
//       strings: min_len u8, min bytes, max_len u8, max bytes (max_len is 0 when unbounded)
//
// Statistics cover the non-null values of a chunk; NaN is left out of min/max and counted in
// nan_count. String bounds compare byte-wise (as unsigned bytes) and hold at most 64 bytes: a
// longer minimum is cut to its first 64 bytes (still a lower bound); a longer maximum is cut to
// 64 bytes and its last byte below 0xff incremented (the bytes after it dropped), which is above
// every value of the chunk; when its first 64 bytes are all 0xff there is no such bound and the
// maximum is marked unbounded.
//
// Readers check everything before they trust it: magic, version, the header's size against the
// file's, the footer's length and checksum, every count and length against the bytes that hold
// it (before allocating), chunks tiling the space between header and footer, raw sizes against
// the row counts (and a zstd chunk's against 32768 times its stored size, more than zstd can
// expand, so a damaged footer cannot ask for huge buffers), every chunk's checksum, zstd frames
// decompressing to exactly the recorded raw size, string offsets, bool values and null counts.
// Every failure names the file, and the column and row group for a chunk.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <ember/host/memory_resource.hpp>
#include <ember/host/scalar.hpp>
#include <ember/host/table.hpp>
#include <ember/host/types.hpp>

namespace ember {

/// The version of the partition file format that this build writes and reads.
inline constexpr std::uint16_t partition_file_version = 1;

/// How a partition file's chunks are stored.
enum class compression_codec : std::uint8_t { none, zstd };

/// "none" or "zstd".
[[nodiscard]] std::string_view to_string(compression_codec c) noexcept;

struct partition_write_options {
  /// zstd compresses each chunk on its own (a chunk it does not shrink is stored raw): files
  /// about half the size of none's on typical data, written at about a fifth of the speed.
  compression_codec compression = compression_codec::none;
  /// zstd's level: 1 (fast) to 22 (small), negative levels faster still, 0 zstd's default (3).
  /// Ignored for none.
  int level = 3;
  /// Rows per row group: the unit of statistics, of skipping, and of the writer's and reader's
  /// scratch memory (one chunk at a time).
  size_type row_group_rows = size_type{1} << 20;
  /// fsync the file and its folder before returning, so the partition survives a crash.
  bool sync = true;
};

/// One column of a partition file's schema.
struct partition_column {
  std::string name;
  type_id type = type_id::int64;
  bool nullable = false;

  friend bool operator==(const partition_column&, const partition_column&) = default;
};

/// Statistics of the non-null values of one column over a chunk (or a whole file).
struct column_stats {
  size_type null_count = 0;
  /// NaN values (float columns only); they are not part of min/max.
  size_type nan_count = 0;
  /// The smallest value, as a scalar of the column's type; a null scalar when there is no
  /// value to bound (every row null or NaN, or no rows). For strings, a lower bound when
  /// min_truncated.
  scalar min;
  /// The largest value; for strings an upper bound (above every value) when max_truncated, and
  /// a null scalar when max_unbounded.
  scalar max;
  /// min is the first 64 bytes of a longer string.
  bool min_truncated = false;
  /// max is a 64-byte bound above every value, not a value itself.
  bool max_truncated = false;
  /// The largest string is longer than 64 bytes and begins with 64 bytes 0xff: max gives no
  /// bound.
  bool max_unbounded = false;

  /// True when min (and max, unless unbounded) hold a value.
  [[nodiscard]] bool has_min_max() const noexcept { return min.valid(); }

  friend bool operator==(const column_stats&, const column_stats&) = default;
};

/// Where one chunk lies in the file and what it holds.
struct chunk_info {
  size_type offset = 0;        ///< first byte in the file
  size_type stored_bytes = 0;  ///< bytes in the file
  size_type raw_bytes = 0;     ///< bytes once decompressed (== stored_bytes when not compressed)
  std::uint64_t checksum = 0;  ///< XXH3-64 of the stored bytes
  compression_codec codec = compression_codec::none;
  column_stats stats;

  friend bool operator==(const chunk_info&, const chunk_info&) = default;
};

struct row_group_info {
  size_type first_row = 0;
  size_type rows = 0;
  /// One per column, in schema order.
  std::vector<chunk_info> chunks;

  friend bool operator==(const row_group_info&, const row_group_info&) = default;
};

/// A partition file's footer, validated: its schema, sizes, checksums and statistics.
struct partition_file_info {
  std::vector<partition_column> columns;
  size_type rows = 0;
  size_type row_group_rows = 0;
  /// Size of the whole file.
  size_type file_bytes = 0;
  /// Size of the footer (without the 24-byte tail).
  size_type footer_bytes = 0;
  /// XXH3-64 of the footer. The footer holds every chunk's checksum, so this identifies the
  /// whole file's contents (a manifest can record it as the partition's checksum).
  std::uint64_t footer_checksum = 0;
  std::vector<row_group_info> row_groups;
  /// Per column, the statistics of all its row groups merged (derived from the row groups,
  /// not stored twice): what a scan checks to skip the whole file.
  std::vector<column_stats> stats;

  /// The position of the column called `name`; throws ember::invalid_input naming it and
  /// listing the file's columns when there is none.
  [[nodiscard]] size_type index_of(std::string_view name) const;
  /// The column names, in schema order.
  [[nodiscard]] std::vector<std::string> names() const;
  /// Sum of every chunk's raw bytes: the size of the data as a reader decompresses it.
  [[nodiscard]] size_type raw_bytes() const noexcept;

  friend bool operator==(const partition_file_info&, const partition_file_info&) = default;
};

/// Writes `table` as a partition file at `path` (created, or truncated and replaced) and returns
/// its footer. The table's columns must be in host (or pinned host) memory; they may be slices.
/// With options.sync the file and its folder are fsynced before returning. A 0-row table gives a
/// file with no row groups; a 0-column table one with no columns. On failure the partial file
/// is removed. Throws ember::invalid_input for a column in device memory or bad options (the
/// message names the file), ember::error naming the file when it cannot be written.
partition_file_info write_partition_file(const std::filesystem::path& path, const table_view& table,
                                         const partition_write_options& options = {});

/// Reads and validates the footer of the partition file at `path` (not the chunks: their
/// checksums are checked by read_partition_file). Throws ember::invalid_input naming the file
/// and what is wrong when it is not an ember partition file, of another version, truncated or
/// damaged; ember::error naming the file when it cannot be opened or read.
[[nodiscard]] partition_file_info read_partition_info(const std::filesystem::path& path);

/// Reads the partition file at `path` into a host table allocated from `mr`: the columns named
/// in `columns`, in that order (all of them, in schema order, when empty). Only the projected
/// columns' chunks are read; each one's checksum is verified before it is decompressed and
/// decoded. Nullable columns come back with a null bitmask even when they hold no null. Throws
/// like read_partition_info, and ember::invalid_input naming the file, the column and the row
/// group for a damaged chunk, or naming an unknown column and listing the file's columns, or
/// when `mr` allocates device memory; ember::out_of_memory when `mr` refuses.
[[nodiscard]] table read_partition_file(const std::filesystem::path& path,
                                        const std::vector<std::string>& columns = {},
                                        memory_resource& mr = default_host_resource());

/// read_partition_file that first hands the file's footer to `check` (which throws to refuse the
/// file, e.g. when it does not match a manifest), so the footer is read once, not twice.
[[nodiscard]] table read_partition_file(
    const std::filesystem::path& path, const std::vector<std::string>& columns, memory_resource& mr,
    const std::function<void(const partition_file_info&)>& check);

/// Comparisons a scan can test against statistics (the names of ember::binary_op's).
enum class comparison : std::uint8_t { eq, ne, lt, le, gt, ge };

/// False only when no row described by `stats` can satisfy `row_value <op> value`, so a scan may
/// skip the chunk (or file); true otherwise. Null rows never satisfy a comparison (SQL), so a
/// null `value` gives false. Answers true whenever the chunk holds NaN or `value` is NaN (NaN's
/// order is the operator's business, not the statistics'). Numbers of any numeric type compare
/// by value (int64 against float64 exactly); strings compare byte-wise. Throws
/// ember::invalid_input when a string is compared with a number.
[[nodiscard]] bool may_contain(const column_stats& stats, comparison op, const scalar& value);

}  // namespace ember
