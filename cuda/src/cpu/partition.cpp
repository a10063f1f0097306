// The CPU backend's hash partitioning. The fast path replaces the portable body's sort of the
// partition ids with a counting scatter: per-thread histograms over contiguous chunks, one
// prefix sum, then each thread writes its rows, in order, after those of the chunks before it.
#include "cpu/exec.hpp"
#include "portable/partition.inl"

#include <omp.h>

namespace ember::cpu {
namespace {

partitioned_table partition_by_counting(const table_view& input,
                                        const std::vector<std::string>& keys, int num_partitions,
                                        context& ctx, std::uint64_t seed) {
  exec ex(ctx);
  auto n = static_cast<std::size_t>(input.num_rows());
  auto parts = static_cast<std::size_t>(num_partitions);
  buffer ids = detail::partition_ids(ex, input, keys, num_partitions, seed);
  const auto* id = ids.data_as<std::int32_t>();
  int threads = ctx.options().cpu_threads > 0 ? ctx.options().cpu_threads : omp_get_max_threads();
  int chunks = n < (std::size_t{1} << 15) ? 1 : std::max(threads, 1);
  auto chunk_begin = [&](int t) { return n * static_cast<std::size_t>(t) / chunks; };
  // next[t * parts + p]: rows of chunk t in partition p, then where chunk t writes partition p.
  std::vector<size_type> next(static_cast<std::size_t>(chunks) * parts, 0);
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
  for (int t = 0; t < chunks; ++t) {
    size_type* c = next.data() + static_cast<std::size_t>(t) * parts;
    for (std::size_t i = chunk_begin(t), e = chunk_begin(t + 1); i < e; ++i) ++c[id[i]];
  }
  std::vector<size_type> offsets(parts + 1, 0);
  size_type sum = 0;
  for (std::size_t p = 0; p < parts; ++p) {
    offsets[p] = sum;
    for (int t = 0; t < chunks; ++t) {
      size_type v = next[t * parts + p];
      next[t * parts + p] = sum;
      sum += v;
    }
  }
  offsets[parts] = sum;
  buffer perm = ex.alloc<size_type>(static_cast<size_type>(n));
  auto* map = perm.data_as<size_type>();
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
  for (int t = 0; t < chunks; ++t) {
    size_type* slot = next.data() + static_cast<std::size_t>(t) * parts;
    for (std::size_t i = chunk_begin(t), e = chunk_begin(t + 1); i < e; ++i)
      map[slot[id[i]]++] = static_cast<size_type>(i);
  }
  return partitioned_table{detail::gather_table(ex, input, map, static_cast<size_type>(n), false),
                           std::move(offsets)};
}

}  // namespace

partitioned_table hash_partition(const table_view& input, const std::vector<std::string>& keys,
                                 int num_partitions, context& ctx, std::uint64_t seed) {
  if (ctx.fast_paths()) return partition_by_counting(input, keys, num_partitions, ctx, seed);
  return portable::hash_partition(input, keys, num_partitions, ctx, seed);
}

}  // namespace ember::cpu
