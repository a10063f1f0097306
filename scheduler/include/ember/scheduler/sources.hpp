#pragma once
// Reading one partition of a plan's source: the row range of an in-memory table, the lines of a
// byte range of text files, the rows of a generator, one partition file of a dataset. Every
// function here is a pure function of its arguments (and the files' contents), so any worker can
// produce any partition.
#include <ember/host/memory_resource.hpp>
#include <ember/host/table.hpp>
#include <ember/scheduler/plan.hpp>
#include <utility>

namespace ember {

/// Rows [first, last) of partition `p` when `rows` rows are split into `partitions` contiguous
/// ranges whose sizes differ by at most one. Throws ember::invalid_input when p is not in
/// [0, partitions).
[[nodiscard]] std::pair<size_type, size_type> partition_range(size_type rows, int p,
                                                              int partitions);

/// Partition `p` of an in-memory source: a view of the shared table (no copy).
[[nodiscard]] table_view table_partition(const table_source& source, int p, int partitions);

/// The lines that start in partition `p` of the files' bytes (all files one after another, split
/// into `partitions` ranges of equal size): one string column "line", newlines dropped, CRLF
/// accepted, in host memory from `mr`. Every line of the files lands in exactly one partition,
/// in file order. Throws ember::invalid_input naming the file when it cannot be read or a line
/// is longer than `max_line_bytes`.
[[nodiscard]] table text_partition(const text_source& source, int p, int partitions,
                                   memory_resource& mr = default_host_resource(),
                                   size_type max_line_bytes = size_type{64} << 20);

/// Partition `p` of a generated table, in host memory from `mr` (see generators.hpp).
[[nodiscard]] table generated_partition(const generate_source& source, int p, int partitions,
                                        memory_resource& mr = default_host_resource());

/// One partition of a dataset source, and whether its statistics let the scan skip it.
struct scanned_partition {
  table rows;
  /// True when a filter's statistics excluded the partition: `rows` is then empty (0 rows of the
  /// projected schema) and its file was not read.
  bool skipped = false;
};

/// Partition file `p` of the dataset version `source` names (source.version must be resolved:
/// not 0), its projected columns in host memory from `mr`; an empty table of those columns when
/// the statistics of the partition say that no row satisfies all of source.filters, or when p is
/// past the version's partitions. Throws what dataset_store::read_manifest and read_partition
/// throw (ember::invalid_input naming the dataset, the version, the column or the file).
/// The partition store's key of the projected rows of partition `p` of the dataset version
/// `source` names (version resolved): "scan/ROOT/NAME/vVERSION/pP/COLUMNS". A committed version
/// never changes, so rows cached under it are never stale. Filters are not part of it: a
/// scan caches the projected partition and filters above it.
[[nodiscard]] std::string dataset_scan_key(const dataset_source& source, int p);

[[nodiscard]] scanned_partition dataset_scan_partition(
    const dataset_source& source, int p, memory_resource& mr = default_host_resource());

}  // namespace ember
