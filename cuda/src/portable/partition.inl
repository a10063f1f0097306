#pragma once
// Portable hash partitioning: a partition id per row from the seeded row hash, then a stable sort
// of the row numbers by id (a radix sort on CUDA), the offsets by binary search and a gather.
#include <thrust/binary_search.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>

#include <cstdint>
#include <string>
#include <vector>

#include <ember/cuda/partition.hpp>

#include "portable/row_operators.inl"
#include "portable/utilities.inl"

namespace ember::EMBER_BACKEND_NS {
namespace detail {

/// Partition of row i: its key hash modulo the partition count (unsigned, so never negative).
struct partition_of_fn {
  row_hasher hash;
  std::uint64_t partitions;
  EMBER_HD std::int32_t operator()(size_type i) const {
    return static_cast<std::int32_t>(hash(i) % partitions);
  }
};

/// The partition of every row of `input` (n int32 values in this backend's memory).
inline buffer partition_ids(exec& ex, const table_view& input, const std::vector<std::string>& keys,
                            int num_partitions, std::uint64_t seed) {
  // Built by hand rather than with select(): a key may be named twice.
  std::vector<column_view> cols;
  std::vector<std::string> names;
  for (std::size_t k = 0; k < keys.size(); ++k) {
    cols.push_back(input.column(keys[k]));
    names.push_back(std::to_string(k));
  }
  device_table dt(ex, table_view(std::move(cols), std::move(names)));
  size_type n = input.num_rows();
  buffer ids = ex.alloc<std::int32_t>(n);
  auto i = thrust::counting_iterator<size_type>(0);
  thrust::transform(
      ex.policy(), i, i + n, ids.data_as<std::int32_t>(),
      partition_of_fn{row_hasher{dt.view(), seed}, static_cast<std::uint64_t>(num_partitions)});
  return ids;
}

}  // namespace detail

namespace portable {

partitioned_table hash_partition(const table_view& input, const std::vector<std::string>& keys,
                                 int num_partitions, context& ctx, std::uint64_t seed) {
  exec ex(ctx);
  size_type n = input.num_rows();
  buffer ids = detail::partition_ids(ex, input, keys, num_partitions, seed);
  auto* id = ids.data_as<std::int32_t>();
  buffer perm = ex.alloc<size_type>(n);
  auto* p = perm.data_as<size_type>();
  thrust::sequence(ex.policy(), p, p + n);
  // Stable, so rows keep their input order inside a partition.
  thrust::stable_sort_by_key(ex.policy(), id, id + n, p);
  buffer offsets = ex.alloc<size_type>(num_partitions + 1);
  auto first = thrust::counting_iterator<std::int32_t>(0);
  thrust::lower_bound(ex.policy(), id, id + n, first, first + (num_partitions + 1),
                      offsets.data_as<size_type>());
  partitioned_table result{detail::gather_table(ex, input, p, n, false),
                           ex.download(offsets.data_as<size_type>(), num_partitions + 1)};
  ex.sync();
  return result;
}

}  // namespace portable
}  // namespace ember::EMBER_BACKEND_NS
