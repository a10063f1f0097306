// Micro benchmarks of single operators on one context, per backend. Inputs are generated with
// fixed seeds; each benchmark reports rows/s and bytes/s, and the memcpy benchmark of the same
// bytes is the ceiling to read them against. The CUDA variants skip without a usable device.
#include <cstring>
#include <numeric>
#include <random>

#include <benchmark/benchmark.h>

#include <ember/cuda/context.hpp>
#include <ember/cuda/expression.hpp>
#include <ember/cuda/groupby.hpp>
#include <ember/cuda/join.hpp>
#include <ember/cuda/partition.hpp>
#include <ember/cuda/sort.hpp>
#include <ember/host/column_factories.hpp>

namespace {
using namespace ember;

std::unique_ptr<context> make(backend_kind kind, benchmark::State& state) {
  if (kind == backend_kind::cuda && !cuda_available()) {
    state.SkipWithError(("CUDA unavailable: " + cuda_unavailable_reason()).c_str());
    return nullptr;
  }
  context_options o;
  o.backend = kind == backend_kind::cuda ? backend_choice::cuda : backend_choice::cpu;
  return context::create(o);
}

table int_table(size_type rows, std::int64_t distinct, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::int64_t> k(rows), v(rows);
  for (size_type i = 0; i < rows; ++i) {
    k[i] = distinct > 0 ? static_cast<std::int64_t>(rng() % distinct)
                        : static_cast<std::int64_t>(rng());
    v[i] = static_cast<std::int64_t>(rng() % 1000);
  }
  std::vector<column> cols;
  cols.push_back(make_column<std::int64_t>(type_id::int64, k));
  cols.push_back(make_column<std::int64_t>(type_id::int64, v));
  return table(std::move(cols), {"k", "v"});
}

template <class F>
void run(benchmark::State& state, backend_kind kind, size_type rows, std::int64_t distinct, F op) {
  auto ctx = make(kind, state);
  if (!ctx) return;
  auto input = to_device(int_table(rows, distinct, 1).view(), *ctx);
  for (auto _ : state) {
    auto out = op(input.view(), *ctx);
    ctx->synchronize();
    benchmark::DoNotOptimize(out.num_rows());
  }
  state.SetItemsProcessed(state.iterations() * rows);
  state.SetBytesProcessed(state.iterations() * rows * 16);
  state.counters["peak_device_tier_bytes"] = static_cast<double>(ctx->resource().peak());
}

void memcpy_ceiling(benchmark::State& state) {
  size_type bytes = state.range(0) * 16;
  std::vector<char> a(bytes, 1), b(bytes);
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), a.size());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}

void group_by_sum(benchmark::State& state, backend_kind kind) {
  run(state, kind, state.range(0), state.range(1), [](const table_view& t, context& ctx) {
    return group_by(t, {"k"}, {{aggregation_kind::sum, "v", "s"}}, ctx);
  });
}
void sort_int64(benchmark::State& state, backend_kind kind) {
  run(state, kind, state.range(0), 0,
      [](const table_view& t, context& ctx) { return sort(t, {{"k"}}, ctx); });
}
void filter_gt(benchmark::State& state, backend_kind kind) {
  run(state, kind, state.range(0), 0, [](const table_view& t, context& ctx) {
    return filter(t, col("v") > lit(std::int64_t{500}), ctx);
  });
}
void partition_16(benchmark::State& state, backend_kind kind) {
  run(state, kind, state.range(0), 0,
      [](const table_view& t, context& ctx) { return hash_partition(t, {"k"}, 16, ctx).rows; });
}
void join_inner(benchmark::State& state, backend_kind kind) {
  auto ctx = make(kind, state);
  if (!ctx) return;
  size_type rows = state.range(0);
  auto left = to_device(int_table(rows, rows / 10, 2).view(), *ctx);
  std::vector<std::int64_t> rk(rows / 10);
  std::iota(rk.begin(), rk.end(), 0);
  std::vector<column> cols;
  cols.push_back(make_column<std::int64_t>(type_id::int64, rk));
  cols.push_back(make_column<std::int64_t>(type_id::int64, rk));
  auto right = to_device(table(std::move(cols), {"k", "p"}).view(), *ctx);
  for (auto _ : state) {
    auto out = hash_join(left.view(), right.view(), {"k"}, {"k"}, join_kind::inner, *ctx);
    ctx->synchronize();
    benchmark::DoNotOptimize(out.num_rows());
  }
  state.SetItemsProcessed(state.iterations() * (rows + rows / 10));
}

constexpr std::int64_t M = 1'000'000;
BENCHMARK(memcpy_ceiling)->Arg(4 * M)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(group_by_sum, cpu, backend_kind::cpu)
    ->Args({4 * M, M / 5})
    ->Args({4 * M, 100})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(group_by_sum, cuda, backend_kind::cuda)
    ->Args({4 * M, M / 5})
    ->Args({4 * M, 100})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(sort_int64, cpu, backend_kind::cpu)
    ->Arg(4 * M)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(sort_int64, cuda, backend_kind::cuda)
    ->Arg(4 * M)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(filter_gt, cpu, backend_kind::cpu)
    ->Arg(4 * M)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(filter_gt, cuda, backend_kind::cuda)
    ->Arg(4 * M)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(partition_16, cpu, backend_kind::cpu)
    ->Arg(4 * M)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(partition_16, cuda, backend_kind::cuda)
    ->Arg(4 * M)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(join_inner, cpu, backend_kind::cpu)
    ->Arg(4 * M)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(join_inner, cuda, backend_kind::cuda)
    ->Arg(4 * M)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
