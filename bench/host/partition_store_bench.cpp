// Spill and unspill throughput of the partition store on the CPU backend, each beside its ceiling
// measured in the same run on the same bytes (a table of int64, float64 and string columns,
// about 256 MiB, generated with a fixed seed):
//   memcpy_ceiling            memcpy of the table's buffers into warm memory: the ceiling of
//                             device -> host spill and host -> device unspill (the CPU backend's
//                             device tier is host memory)
//   spill_device_to_host      partition_store::spill_all(device)
//   unspill_host_to_device    partition_store::acquire(key, device)
//   file_write_ceiling        write() of one buffer holding the same bytes to a new file in the
//                             spill folder, no fsync (spill files are not synced either)
//   file_read_ceiling         read() of that file into warm memory
//   spill_host_to_disk        partition_store::spill_all(host)
//   unspill_disk_to_host      partition_store::acquire(key, host)
// Both tiers allocate from default_host_pool() (as a CPU worker's tiers do), so spills reuse warm
// blocks; memcpy_fresh_destination shows what a copy into memory never touched before costs.
// The spill folder lies under the system's temporary folder (EMBER_BENCH_SPILL_DIR overrides).
// Run with --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true and compare the
// medians' bytes_per_second.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ember/host/buffer.hpp>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/memory_resource.hpp>
#include <ember/host/partition_store.hpp>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bench_tier_input.hpp"

namespace ember {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t target_bytes = std::size_t{256} << 20;

using cli::pieces_of;

// The table of `ember bench cache` (bench_tier_input.hpp), made once.
const cli::tier_input& data() {
  static const cli::tier_input d = cli::make_tier_input(static_cast<size_type>(target_bytes));
  return d;
}

// True when `t` holds exactly the input's bytes.
bool same_bytes(const table_view& t) {
  const auto& d = data();
  if (t.num_rows() != d.rows.num_rows() || t.names() != d.rows.names()) return false;
  auto got = pieces_of(t);
  if (got.size() != d.pieces.size()) return false;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i].second != d.pieces[i].second ||
        std::memcmp(got[i].first, d.pieces[i].first, got[i].second) != 0)
      return false;
  return true;
}

const fs::path& bench_dir() {
  static const fs::path dir = [] {
    const char* env = std::getenv("EMBER_BENCH_SPILL_DIR");
    fs::path p = env != nullptr && *env != '\0'
                     ? fs::path(env)
                     : fs::temp_directory_path() /
                           ("ember-partition-store-bench-" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p;
  }();
  return dir;
}

struct tiers {
  tracking_resource device{default_host_pool(), "device tier"};
  tracking_resource host{default_host_pool(), "host tier"};
};

partition_store_options options_for(tiers& t) {
  partition_store_options o;
  o.device = &t.device;
  o.host = &t.host;
  o.spill_dir = bench_dir() / "spill";
  o.name = "bench store";
  return o;
}

void report(benchmark::State& state, const tiers* t = nullptr) {
  state.SetBytesProcessed(state.iterations() * data().bytes);
  state.counters["MiB"] = static_cast<double>(data().bytes) / (1 << 20);
  if (t != nullptr) {
    state.counters["device_peak_MiB"] = static_cast<double>(t->device.peak()) / (1 << 20);
    state.counters["host_peak_MiB"] = static_cast<double>(t->host.peak()) / (1 << 20);
  }
}

void check(benchmark::State& state, bool ok, const char* what) {
  if (!ok) state.SkipWithError(what);
}

// ---- memory ------------------------------------------------------------------------------------

void memcpy_ceiling(benchmark::State& state) {
  const auto& d = data();
  buffer dst(static_cast<std::size_t>(d.bytes), default_host_pool());
  std::memset(dst.data(), 0, dst.size());
  for (auto _ : state) {
    auto* out = static_cast<char*>(dst.data());
    for (const auto& [p, n] : d.pieces) {
      std::memcpy(out, p, n);
      out += n;
    }
    benchmark::ClobberMemory();
  }
  report(state);
}

void memcpy_fresh_destination(benchmark::State& state) {
  const auto& d = data();
  for (auto _ : state) {
    buffer dst(static_cast<std::size_t>(d.bytes), default_host_resource());
    auto* out = static_cast<char*>(dst.data());
    for (const auto& [p, n] : d.pieces) {
      std::memcpy(out, p, n);
      out += n;
    }
    benchmark::ClobberMemory();
    state.PauseTiming();
    dst = buffer{};
    state.ResumeTiming();
  }
  report(state);
}

void spill_device_to_host(benchmark::State& state) {
  const auto& d = data();
  tiers t;
  partition_store store(options_for(t));
  store.put("p", copy_table(d.rows.view(), t.device), memory_tier::device, d.bytes);
  (void)store.spill_all(memory_tier::device);  // warm-up round trip
  (void)store.acquire("p");
  for (auto _ : state) {
    auto moved = store.spill_all(memory_tier::device);
    state.PauseTiming();
    check(state, moved > 0 && store.find("p")->tier == memory_tier::host, "nothing spilled");
    (void)store.acquire("p", memory_tier::device);
    state.ResumeTiming();
  }
  (void)store.spill_all(memory_tier::device);
  auto h = store.acquire("p", memory_tier::host);
  check(state, h && h->tier() == memory_tier::host && same_bytes(h->rows()), "rows differ");
  report(state, &t);
}

void unspill_host_to_device(benchmark::State& state) {
  const auto& d = data();
  tiers t;
  partition_store store(options_for(t));
  store.put("p", copy_table(d.rows.view(), t.device), memory_tier::device, d.bytes);
  (void)store.spill_all(memory_tier::device);
  (void)store.acquire("p");  // warm-up round trip
  (void)store.spill_all(memory_tier::device);
  for (auto _ : state) {
    auto h = store.acquire("p", memory_tier::device);
    state.PauseTiming();
    check(state, h && h->tier() == memory_tier::device, "not unspilled");
    h.reset();
    (void)store.spill_all(memory_tier::device);
    state.ResumeTiming();
  }
  auto h = store.acquire("p", memory_tier::device);
  check(state, h && same_bytes(h->rows()), "rows differ");
  report(state, &t);
}

// ---- files -------------------------------------------------------------------------------------

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    auto w = ::write(fd, p, n);
    if (w <= 0) throw error("write failed: " + std::string(std::strerror(errno)));
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void read_all(int fd, char* p, std::size_t n) {
  while (n > 0) {
    auto r = ::read(fd, p, n);
    if (r <= 0) throw error("read failed: " + std::string(std::strerror(errno)));
    p += r;
    n -= static_cast<std::size_t>(r);
  }
}

buffer contiguous_input() {
  const auto& d = data();
  buffer src(static_cast<std::size_t>(d.bytes), default_host_pool());
  auto* out = static_cast<char*>(src.data());
  for (const auto& [p, n] : d.pieces) {
    std::memcpy(out, p, n);
    out += n;
  }
  return src;
}

void file_write_ceiling(benchmark::State& state) {
  auto src = contiguous_input();
  auto path = bench_dir() / "plain-file";
  for (auto _ : state) {
    int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) throw error(path.string() + ": cannot create: " + std::strerror(errno));
    write_all(fd, static_cast<const char*>(src.data()), src.size());
    ::close(fd);
    state.PauseTiming();
    fs::remove(path);  // a spill writes a new file too
    state.ResumeTiming();
  }
  report(state);
}

void file_read_ceiling(benchmark::State& state) {
  auto src = contiguous_input();
  auto path = bench_dir() / "plain-file";
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  write_all(fd, static_cast<const char*>(src.data()), src.size());
  ::close(fd);
  buffer dst(src.size(), default_host_pool());
  std::memset(dst.data(), 0, dst.size());
  for (auto _ : state) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw error(path.string() + ": cannot open: " + std::strerror(errno));
    read_all(fd, static_cast<char*>(dst.data()), dst.size());
    ::close(fd);
    benchmark::ClobberMemory();
  }
  check(state, std::memcmp(src.data(), dst.data(), src.size()) == 0, "file differs");
  fs::remove(path);
  report(state);
}

void spill_host_to_disk(benchmark::State& state) {
  const auto& d = data();
  tiers t;
  partition_store store(options_for(t));
  store.put("p", copy_table(d.rows.view(), t.host), memory_tier::host, d.bytes);
  (void)store.spill_all(memory_tier::host);  // warm-up round trip
  (void)store.acquire("p", memory_tier::host);
  for (auto _ : state) {
    auto moved = store.spill_all(memory_tier::host);
    state.PauseTiming();
    check(state, moved > 0 && store.find("p")->tier == memory_tier::disk, "nothing spilled");
    (void)store.acquire("p", memory_tier::host);
    state.ResumeTiming();
  }
  (void)store.spill_all(memory_tier::host);
  auto h = store.acquire("p", memory_tier::host);
  check(state, h && h->tier() == memory_tier::host && same_bytes(h->rows()), "rows differ");
  state.counters["file_MiB"] = static_cast<double>(store.stats().spilled_to_disk_bytes) /
                               static_cast<double>(store.stats().spills) / (1 << 20);
  report(state, &t);
}

void unspill_disk_to_host(benchmark::State& state) {
  const auto& d = data();
  tiers t;
  partition_store store(options_for(t));
  store.put("p", copy_table(d.rows.view(), t.host), memory_tier::host, d.bytes);
  (void)store.spill_all(memory_tier::host);
  (void)store.acquire("p", memory_tier::host);  // warm-up round trip
  (void)store.spill_all(memory_tier::host);
  for (auto _ : state) {
    auto h = store.acquire("p", memory_tier::host);
    state.PauseTiming();
    check(state, h && h->tier() == memory_tier::host, "not unspilled");
    h.reset();
    (void)store.spill_all(memory_tier::host);
    state.ResumeTiming();
  }
  auto h = store.acquire("p", memory_tier::host);
  check(state, h && same_bytes(h->rows()), "rows differ");
  report(state, &t);
}

#define EMBER_STORE_BENCH(f) \
  BENCHMARK(f)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5)
EMBER_STORE_BENCH(memcpy_ceiling);
EMBER_STORE_BENCH(memcpy_fresh_destination);
EMBER_STORE_BENCH(spill_device_to_host);
EMBER_STORE_BENCH(unspill_host_to_device);
EMBER_STORE_BENCH(file_write_ceiling);
EMBER_STORE_BENCH(file_read_ceiling);
EMBER_STORE_BENCH(spill_host_to_disk);
EMBER_STORE_BENCH(unspill_disk_to_host);

}  // namespace
}  // namespace ember

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  (void)ember::data();  // generated once, before any timing
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  if (std::getenv("EMBER_BENCH_SPILL_DIR") == nullptr)
    std::filesystem::remove_all(ember::bench_dir(), ec);
  return 0;
}
