#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ember/host/partition_file.hpp>
#include <filesystem>
#include <random>
#include <ember/cuda/copying.hpp>
#include <ember/cuda/expression.hpp>
#include <ember/cuda/groupby.hpp>
#include <ember/cuda/join.hpp>
#include <ember/cuda/partition.hpp>
#include <ember/cuda/sort.hpp>
#include <ember/cuda/tokenize.hpp>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <ember/scheduler/sources.hpp>
#include <ember/scheduler/table_bytes.hpp>

#include "detail/task_runner.hpp"

namespace ember::detail {
namespace {

// One partition's rows inside a task: a view and whatever keeps its memory alive.
struct part {
  std::shared_ptr<const void> owner;
  table_view rows;
};

part own(table t) {
  auto owner = std::make_shared<const table>(std::move(t));
  return part{owner, owner->view()};
}

// A name no other attempt of any task uses: a retried task (its first worker presumed lost but
// still writing) never overwrites the file another attempt reported.
std::string sink_file_name(int partition) {
  thread_local std::mt19937_64 rng(std::random_device{}() ^
                                   (static_cast<std::uint64_t>(::getpid()) << 32));
  char text[64];
  std::snprintf(text, sizeof text, "task-%05d-%016llx.emb", partition,
                static_cast<unsigned long long>(rng()));
  return text;
}

class task_evaluator {
 public:
  task_evaluator(context& ctx, int device, const stage& s, const std::vector<int>& node_partitions,
                 task_io& io)
      : _ctx(ctx), _device(device), _stage(s), _node_partitions(node_partitions), _io(io) {}

  task_evaluator(const task_evaluator&) = delete;
  task_evaluator& operator=(const task_evaluator&) = delete;
  ~task_evaluator() {
    // A task that failed midway may still have queued work reading borrowed blocks.
    if (!_borrowed.empty() && on_cuda()) {
      try {
        _ctx.synchronize();
      } catch (...) {
        logger().warn("{}: could not synchronise after a failed task", _ctx.options().name);
      }
    }
  }

  task_output run(int partition) {
    auto out = eval(_stage.body.root, partition);
    task_output result{out.rows.num_rows(), table_bytes(out.rows, &_ctx), _partitions_skipped};
    write(std::move(out), result.bytes);
    // write() waited for this worker's stream, so the blocks borrowed from other workers are no
    // longer read by queued work and may be freed (on their producers' streams).
    _borrowed.clear();
    return result;
  }

 private:
  bool on_cuda() const { return _ctx.kind() == backend_kind::cuda; }
  // Host memory that the worker's operators can read directly: its own accounted resource on the
  // CPU backend; on CUDA, the process's host pool (uploaded afterwards). Pooled either way: a
  // source read into fresh pages spends most of its time faulting them in (a partition scan
  // into unpooled memory took twice as long on the CPU).
  memory_resource& host_resource() { return on_cuda() ? default_host_pool() : _ctx.resource(); }
  part on_device(part p) {
    if (!on_cuda()) return p;
    return own(to_device(p.rows, _ctx));
  }
  part source_part(part p) {
    p = on_device(std::move(p));
    _io.add_input(p.rows.num_rows(), table_bytes(p.rows, &_ctx));
    return p;
  }

  part eval(node_id id, int p) {
    if (_io.stop_requested()) throw cancelled("cancelled: another task of the job failed");
    const auto& node = _stage.body.nodes[static_cast<std::size_t>(id)];
    part out = std::visit([&](const auto& n) { return eval_node(n, p); }, node.op);
    if (!node.label.empty())
      _io.add_label(node.label, out.rows.num_rows(), table_bytes(out.rows, &_ctx));
    return out;
  }

  part eval_node(const table_source& n, int p) {
    return source_part(part{n.data, table_partition(n, p, n.partitions)});
  }
  part eval_node(const text_source& n, int p) {
    return source_part(own(text_partition(n, p, n.partitions, host_resource())));
  }
  part eval_node(const generate_source& n, int p) {
    return source_part(own(generated_partition(n, p, n.partitions, host_resource())));
  }
  // A dataset partition comes from the worker's store when an earlier job read it (committed
  // versions never change), else from its file, and is then kept for the next job.
  part eval_node(const dataset_source& n, int p) {
    auto key = dataset_scan_key(n, p);
    if (auto kept = _io.kept_partition(key)) {
      part cached{std::move(kept->owner), kept->rows};
      _io.add_input(cached.rows.num_rows(), kept->bytes);
      return cached;
    }
    auto scanned = dataset_scan_partition(n, p, host_resource());
    if (scanned.skipped) {
      ++_partitions_skipped;
      return source_part(own(std::move(scanned.rows)));
    }
    auto out = source_part(own(std::move(scanned.rows)));
    _io.keep_partition(key,
                       block{out.owner, out.rows, block_device(out), table_bytes(out.rows, &_ctx)});
    return out;
  }
  part eval_node(const exchange_source& n, int p) {
    int reduce = n.mode == exchange_mode::hash ? p : 0;
    auto blocks = _io.exchange_input(n.stage, reduce);
    std::vector<part> pieces;
    for (auto& b : blocks) {
      if (b.rows.num_rows() == 0) continue;
      part piece{std::move(b.owner), b.rows};
      if (on_cuda() && b.device != _device) {
        piece = own(to_device(piece.rows, _ctx));
      } else if (on_cuda()) {
        // Another worker's device memory, freed on its stream when the last owner lets go:
        // keep it until this worker's stream has finished with it.
        _borrowed.push_back(piece.owner);
      }
      pieces.push_back(std::move(piece));
    }
    if (pieces.size() == 1) return pieces.front();
    if (pieces.empty()) {
      return own(to_device(make_empty_table(n.columns.names, n.columns.types).view(), _ctx));
    }
    std::vector<table_view> views;
    for (const auto& piece : pieces) views.push_back(piece.rows);
    return own(concatenate(views, _ctx));
  }
  part eval_node(const project_node& n, int p) {
    auto in = eval(n.input, p);
    return own(project(in.rows, n.columns, _ctx));
  }
  part eval_node(const filter_node& n, int p) {
    auto in = eval(n.input, p);
    return own(filter(in.rows, n.predicate, _ctx));
  }
  part eval_node(const tokenize_node& n, int p) {
    auto in = eval(n.input, p);
    return own(tokenize(in.rows, n.column, n.output, _ctx));
  }
  part eval_node(const aggregate_node& n, int p) {
    auto in = eval(n.input, p);
    return own(group_by(in.rows, n.keys, n.aggregations, _ctx));
  }
  part eval_node(const distinct_node& n, int p) {
    auto in = eval(n.input, p);
    return own(distinct(in.rows, n.columns, _ctx));
  }
  part eval_node(const sort_node& n, int p) {
    auto in = eval(n.input, p);
    return own(sort(in.rows, n.keys, _ctx));
  }
  part eval_node(const top_k_node& n, int p) {
    auto in = eval(n.input, p);
    return own(top_k(in.rows, n.keys, n.k, _ctx));
  }
  // The planner turns repartitions into exchanges; a body never holds one.
  part eval_node(const repartition_node&, int) {
    throw logic_error("a repartition node inside a stage body");
  }
  part eval_node(const limit_node& n, int p) {
    auto in = eval(n.input, p);
    auto rows = std::min(n.count, in.rows.num_rows());
    return part{std::move(in.owner), in.rows.slice(0, rows)};
  }
  part eval_node(const join_node& n, int p) {
    auto left = eval(n.left, p);
    auto right = eval(n.right, p);
    return own(hash_join(left.rows, right.rows, n.left_keys, n.right_keys, n.kind, _ctx));
  }
  // The partition's rows as one file in the write's staging folder, and a row saying which.
  part eval_node(const dataset_sink& n, int p) {
    auto in = eval(n.input, p);
    part rows = in;
    if (on_cuda() && in.rows.num_columns() > 0 && in.rows.column(0).kind() == memory_kind::device)
      rows = own(to_host(in.rows, _ctx));
    partition_write_options o;
    o.compression = n.compression;
    o.level = n.level;
    o.row_group_rows = n.row_group_rows;
    o.sync = true;
    auto file = sink_file_name(p);
    auto info = write_partition_file(std::filesystem::path(n.staging_dir) / file, rows.rows, o);
    std::vector<column> cols;
    cols.push_back(make_column<std::int32_t>(type_id::int32, std::vector<std::int32_t>{p}));
    cols.push_back(make_string_column(std::vector<std::string>{file}));
    cols.push_back(make_column<std::int64_t>(type_id::int64, std::vector<std::int64_t>{info.rows}));
    cols.push_back(
        make_column<std::int64_t>(type_id::int64, std::vector<std::int64_t>{info.file_bytes}));
    cols.push_back(make_column<std::int64_t>(
        type_id::int64,
        std::vector<std::int64_t>{static_cast<std::int64_t>(info.footer_checksum)}));
    auto out = own(table(std::move(cols), dataset_sink::sink_columns().names));
    return on_device(std::move(out));
  }
  part eval_node(const concat_node& n, int p) {
    for (auto input : n.inputs) {
      int count = _node_partitions[static_cast<std::size_t>(input)];
      if (p < count) return eval(input, p);
      p -= count;
    }
    throw logic_error("concat: partition out of range");
  }

  // Where blocks live: the producer's memory, unless its consumers cannot read it; then pinned
  // host memory, which the device fills at full speed and the network sends without a bounce.
  part for_exchange(part p) {
    if (on_cuda() && _io.blocks_on_host()) return own(to_host(p.rows, _ctx, _io.host_staging()));
    return p;
  }
  int block_device(const part& p) const {
    return on_cuda() && p.rows.num_columns() > 0 && p.rows.column(0).kind() == memory_kind::device
               ? _device
               : -1;
  }

  // A compact copy of a block's rows in the memory they are in (see task_io::separate_blocks).
  part own_copy(const table_view& rows) {
    bool host = rows.num_columns() == 0 || rows.column(0).kind() != memory_kind::device;
    if (!host) {
      auto copy = own(concatenate({rows}, _ctx));
      _ctx.synchronize();
      return copy;
    }
    return own(copy_table(rows, on_cuda() ? _io.host_staging() : _ctx.resource()));
  }

  // Publishes the task's output. On CUDA the stream is synchronised first: consumers read
  // blocks on their own streams, and must see finished data.
  void write(part out, size_type bytes) {
    const auto& spec = _stage.output;
    switch (spec.mode) {
      case exchange_mode::hash: {
        auto split = hash_partition(out.rows, spec.keys, spec.partitions, _ctx);
        out = part{};  // the partitioned copy replaces it
        auto whole = for_exchange(own(std::move(split.rows)));
        _ctx.synchronize();
        int device = block_device(whole);
        for (int r = 0; r < spec.partitions; ++r) {
          auto rows = whole.rows.slice(split.offsets[static_cast<std::size_t>(r)],
                                       split.offsets[static_cast<std::size_t>(r) + 1]);
          auto block_bytes = table_bytes(rows, &_ctx);
          part piece{whole.owner, rows};
          if (_io.separate_blocks()) piece = own_copy(rows);
          _io.put_block(r, block{std::move(piece.owner), piece.rows, device, block_bytes});
        }
        return;
      }
      case exchange_mode::gather:
      case exchange_mode::broadcast: {
        auto whole = for_exchange(std::move(out));
        _ctx.synchronize();
        int device = block_device(whole);
        _io.put_block(0, block{std::move(whole.owner), whole.rows, device, bytes});
        return;
      }
      case exchange_mode::result: {
        // Results go to the caller in plain host memory: they must outlive the workers.
        if (on_cuda()) out = own(to_host(out.rows, _ctx));
        _io.put_result(block{std::move(out.owner), out.rows, -1, bytes});
        return;
      }
    }
  }

  context& _ctx;
  int _device;
  const stage& _stage;
  const std::vector<int>& _node_partitions;
  task_io& _io;
  std::vector<std::shared_ptr<const void>> _borrowed;
  size_type _partitions_skipped = 0;
};

void collect_inputs(const stage& s, const std::vector<int>& counts, node_id id, int p,
                    std::vector<std::pair<int, int>>& out) {
  const auto& op = s.body.nodes[static_cast<std::size_t>(id)].op;
  if (const auto* ex = std::get_if<exchange_source>(&op)) {
    std::pair<int, int> key{ex->stage, ex->mode == exchange_mode::hash ? p : 0};
    if (std::find(out.begin(), out.end(), key) == out.end()) out.push_back(key);
    return;
  }
  if (const auto* cat = std::get_if<concat_node>(&op)) {
    for (auto input : cat->inputs) {
      int count = counts[static_cast<std::size_t>(input)];
      if (p < count) return collect_inputs(s, counts, input, p, out);
      p -= count;
    }
    return;
  }
  for (auto input : inputs_of(op)) collect_inputs(s, counts, input, p, out);
}

}  // namespace

void add_label(std::vector<label_metrics>& labels, const std::string& label, size_type rows,
               size_type bytes) {
  for (auto& l : labels) {
    if (l.label == label) {
      l.rows += rows;
      l.bytes += bytes;
      return;
    }
  }
  labels.push_back({label, rows, bytes});
}

std::vector<int> node_partitions_of(const stage& s, int stage_index) {
  std::vector<int> counts;
  for (std::size_t n = 0; n < s.body.nodes.size(); ++n)
    counts.push_back(body_partitions(s.body, static_cast<node_id>(n)));
  EMBER_EXPECTS(s.body.root >= 0 && static_cast<std::size_t>(s.body.root) < counts.size(),
                invalid_input, "stage " + std::to_string(stage_index) + " has no root");
  EMBER_EXPECTS(counts[static_cast<std::size_t>(s.body.root)] == s.partitions, invalid_input,
                "stage " + std::to_string(stage_index) + " has " + std::to_string(s.partitions) +
                    " partitions but its body produces " +
                    std::to_string(counts[static_cast<std::size_t>(s.body.root)]));
  return counts;
}

std::vector<std::pair<int, int>> task_inputs(const stage& s,
                                             const std::vector<int>& node_partitions,
                                             int partition) {
  std::vector<std::pair<int, int>> out;
  collect_inputs(s, node_partitions, s.body.root, partition, out);
  return out;
}

task_output run_task(context& ctx, int device, const stage& s,
                     const std::vector<int>& node_partitions, int partition, task_io& io) {
  return task_evaluator(ctx, device, s, node_partitions, io).run(partition);
}

}  // namespace ember::detail
