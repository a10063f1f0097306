#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <ember/cuda/context.hpp>
#include <ember/host/table.hpp>

namespace ember {

/// Seed of the shuffle's partitioning hash; every process must use the same one.
inline constexpr std::uint64_t default_partition_seed = 0x6a09e667f3bcc908ULL;

/// The rows of a table grouped by partition: partition p is rows [offsets[p], offsets[p+1]).
struct partitioned_table {
  table rows;
  std::vector<size_type> offsets;  ///< host memory, num_partitions + 1 entries

  [[nodiscard]] int num_partitions() const noexcept { return static_cast<int>(offsets.size()) - 1; }
  /// Partition p as a view of `rows`.
  [[nodiscard]] table_view partition(int p) const {
    return rows.view().slice(offsets[p], offsets[p + 1]);
  }
};

/// The shuffle's write side: each row goes to partition hash(keys) mod num_partitions, where
/// the hash is the row hash over the key columns (equal keys, nulls included, always land in
/// the same partition on every backend and process). Rows keep their input order within a
/// partition. Throws ember::invalid_input for an unknown key or num_partitions < 1.
[[nodiscard]] partitioned_table hash_partition(const table_view& input,
                                               const std::vector<std::string>& keys,
                                               int num_partitions, context& ctx,
                                               std::uint64_t seed = default_partition_seed);

}  // namespace ember
