// The CUDA backend's hash partitioning: the portable body (its stable sort of partition ids is a
// CUB radix sort).
#include "gpu/exec.cuh"
#include "portable/partition.inl"

namespace ember::gpu {

partitioned_table hash_partition(const table_view& input, const std::vector<std::string>& keys,
                                 int num_partitions, context& ctx, std::uint64_t seed) {
  return portable::hash_partition(input, keys, num_partitions, ctx, seed);
}

}  // namespace ember::gpu
