#include <algorithm>
#include <cstring>
#include <ember/cuda/copying.hpp>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <ember/transport/nccl.hpp>

#include <ember/scheduler/table_bytes.hpp>

#include "detail/nccl_exchange.hpp"

namespace ember::detail {

void exchange_stage_with_nccl(const nccl_exchange_msg& x, int worker_id,
                              const nccl_block_access& blocks, context& ctx) {
  EMBER_EXPECTS(transport::nccl_built(), invalid_input,
                "the NCCL exchange needs a build with CUDA and NCCL");
  EMBER_EXPECTS(ctx.kind() == backend_kind::cuda, invalid_input,
                "the NCCL exchange runs on CUDA workers only");
  auto nranks = static_cast<int>(x.rank_workers.size());
  std::vector<int> my_maps;
  for (std::size_t m = 0; m < x.map_workers.size(); ++m)
    if (x.map_workers[m] == worker_id) my_maps.push_back(static_cast<int>(m));
  auto maps_of = [&](int rank) {
    std::vector<int> out;
    for (std::size_t m = 0; m < x.map_workers.size(); ++m)
      if (x.map_workers[m] == x.rank_workers[static_cast<std::size_t>(rank)])
        out.push_back(static_cast<int>(m));
    return out;
  };
  auto reduces_of = [&](int rank) {
    std::vector<int> out;
    for (std::size_t r = 0; r < x.reduce_owner.size(); ++r)
      if (x.reduce_owner[r] == rank) out.push_back(static_cast<int>(r));
    return out;
  };

  transport::nccl_unique_id id{};
  std::memcpy(id.data(), x.unique_id.data(), id.size());
  transport::nccl_options o;
  o.device = ctx.options().device;
  auto comm = transport::nccl_communicator::create(id, nranks, x.rank, o);

  // The table going to each rank: for each reduce partition it owns, for each map partition
  // held here, that block's rows (in that order); and how many rows each piece has.
  std::vector<table> outgoing_owned;
  std::vector<table_view> outgoing;
  std::vector<std::vector<std::int64_t>> counts_out(static_cast<std::size_t>(nranks));
  schema columns;
  columns.names = x.column_names;
  columns.types = x.column_types;
  for (int q = 0; q < nranks; ++q) {
    std::vector<table_view> pieces;
    for (int r : reduces_of(q)) {
      for (int m : my_maps) {
        auto b = blocks.get(block_key{x.stage, m, r});
        EMBER_EXPECTS(b.has_value(), logic_error,
                      "block (stage " + std::to_string(x.stage) + ", map " + std::to_string(m) +
                          ", reduce " + std::to_string(r) + ") is missing for the NCCL exchange");
        counts_out[static_cast<std::size_t>(q)].push_back(b->rows.num_rows());
        if (b->rows.num_rows() > 0) pieces.push_back(b->rows);
      }
    }
    if (pieces.empty()) {
      outgoing_owned.push_back(
          to_device(make_empty_table(columns.names, columns.types).view(), ctx));
    } else {
      outgoing_owned.push_back(concatenate(pieces, ctx));
    }
  }
  for (const auto& t : outgoing_owned) outgoing.push_back(t.view());

  // The row counts first, so that each rank can cut what it receives back into blocks.
  std::vector<buffer> send_counts, recv_counts;
  std::vector<transport::nccl_communicator::device_bytes> sends;
  std::vector<transport::nccl_communicator::mutable_device_bytes> recvs;
  auto my_reduces = reduces_of(x.rank);
  for (int q = 0; q < nranks; ++q) {
    const auto& c = counts_out[static_cast<std::size_t>(q)];
    auto bytes = c.size() * sizeof(std::int64_t);
    send_counts.emplace_back(bytes, ctx.resource(), ctx.stream());
    if (bytes > 0) ctx.copy(send_counts.back().data(), c.data(), bytes);
    sends.push_back({send_counts.back().data(), bytes});
    auto in_bytes = my_reduces.size() * maps_of(q).size() * sizeof(std::int64_t);
    recv_counts.emplace_back(in_bytes, ctx.resource(), ctx.stream());
    recvs.push_back({recv_counts.back().data(), in_bytes});
  }
  comm->all_to_all(sends, recvs, ctx.stream());
  auto received = transport::all_to_all_tables(*comm, outgoing, columns.types, ctx);

  // Blocks sent to other ranks are no longer needed here.
  for (int m : my_maps) blocks.erase_task(x.stage, m);
  for (int p = 0; p < nranks; ++p) {
    auto maps = maps_of(p);
    std::vector<std::int64_t> counts(my_reduces.size() * maps.size());
    if (!counts.empty())
      ctx.copy(counts.data(), recv_counts[static_cast<std::size_t>(p)].data(),
               counts.size() * sizeof(std::int64_t));
    auto owner = std::make_shared<const table>(std::move(received[static_cast<std::size_t>(p)]));
    size_type at = 0;
    std::size_t i = 0;
    for (int r : my_reduces) {
      for (int m : maps) {
        auto rows = counts[i++];
        EMBER_EXPECTS(at + rows <= owner->num_rows(), transport_error,
                      "rank " + std::to_string(p) + " announced more rows than it sent");
        auto view = owner->view().slice(at, at + rows);
        at += rows;
        blocks.put(block_key{x.stage, m, r},
                   block{owner, view, ctx.options().device, table_bytes(view, &ctx)});
      }
    }
  }
  ctx.synchronize();
}

}  // namespace ember::detail
