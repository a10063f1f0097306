#pragma once
// The GPU path of a hash exchange: the workers of one stage swap the blocks each holds for the
// reduce partitions the others own in one NCCL all-to-all, instead of one UCX fetch per block.
#include <ember/cuda/context.hpp>
#include <ember/scheduler/block_store.hpp>

#include "protocol.hpp"

namespace ember::detail {

/// Runs `x` on this worker (`worker_id`): creates the communicator (rank x.rank of
/// x.rank_workers.size(), non-blocking creation), sends every block (stage, m, r) this worker
/// wrote to the rank that owns r, and stores what it receives as blocks (stage, m, r) in
/// device memory of `ctx`, so the reduce tasks read them locally. Blocks sent away are erased.
/// Throws ember::transport_error or ember::timeout (the communicator is aborted first), or
/// ember::invalid_input when NCCL is unavailable or the context is not a CUDA one.
void exchange_stage_with_nccl(const nccl_exchange_msg& x, int worker_id, block_store& blocks,
                              context& ctx);

}  // namespace ember::detail
