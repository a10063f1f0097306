#pragma once
// The GPU path of a hash exchange: the workers of one stage swap the blocks each holds for the
// reduce partitions the others own in one NCCL all-to-all, instead of one UCX fetch per block.
#include <ember/cuda/context.hpp>
#include <ember/scheduler/block_store.hpp>
#include <functional>
#include <optional>

#include "protocol.hpp"

namespace ember::detail {

/// How the exchange reads, drops and stores this worker's blocks (the worker keeps them in its
/// partition store).
struct nccl_block_access {
  /// The block at a key, in device memory, kept in place until the exchange returns.
  std::function<std::optional<block>(const block_key&)> get;
  /// Drops the blocks map task (stage, map) wrote.
  std::function<void(int stage, int map)> erase_task;
  /// Stores a received block.
  std::function<void(const block_key&, block)> put;
};

/// Runs `x` on this worker (`worker_id`): creates the communicator (rank x.rank of
/// x.rank_workers.size(), non-blocking creation), sends every block (stage, m, r) this worker
/// wrote to the rank that owns r, and stores what it receives as blocks (stage, m, r) in
/// device memory of `ctx`, so the reduce tasks read them locally. Blocks sent away are erased.
/// Throws ember::transport_error or ember::timeout (the communicator is aborted first), or
/// ember::invalid_input when NCCL is unavailable or the context is not a CUDA one.
void exchange_stage_with_nccl(const nccl_exchange_msg& x, int worker_id,
                              const nccl_block_access& blocks, context& ctx);

}  // namespace ember::detail
