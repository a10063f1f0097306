#include <ember/cuda/partition.hpp>
#include <ember/host/error.hpp>

#include <string>

#include "dispatch.hpp"

EMBER_DECLARE_BACKENDS(partitioned_table hash_partition(const table_view&,
                                                        const std::vector<std::string>&, int,
                                                        context&, std::uint64_t))

namespace ember {

partitioned_table hash_partition(const table_view& input, const std::vector<std::string>& keys,
                                 int num_partitions, context& ctx, std::uint64_t seed) {
  EMBER_EXPECTS(!keys.empty(), invalid_input, "hash_partition: no key columns given");
  EMBER_EXPECTS(
      num_partitions >= 1, invalid_input,
      "hash_partition: num_partitions must be at least 1, got " + std::to_string(num_partitions));
  for (const auto& k : keys) {
    try {
      (void)input.index_of(k);
    } catch (const invalid_input& e) {
      // index_of's message names the column and lists the table's; add the operator.
      throw invalid_input(std::string("hash_partition: ") + e.what());
    }
  }
  return EMBER_DISPATCH(ctx, hash_partition, input, keys, num_partitions, ctx, seed);
}

}  // namespace ember
