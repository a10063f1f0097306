// One UCX node sending tables to another in this process over loopback: the transport's own
// bandwidth (bytes/s of table bodies), without scheduling, fetch requests or operators. Set
// UCX_TLS / UCX_NET_DEVICES to pick the transport; compare with `ucx_perftest -t tag_bw`.
#include <benchmark/benchmark.h>

#include <condition_variable>
#include <cstdlib>
#include <ember/host/column_factories.hpp>
#include <ember/transport/node.hpp>
#include <mutex>
#include <numeric>

namespace ember::transport {
namespace {

class counting_handler : public node_handler {
 public:
  void on_message(connection_id, std::uint16_t, std::span<const std::uint8_t>) override {}
  void on_table(connection_id, std::uint16_t, std::span<const std::uint8_t>, table) override {
    std::lock_guard lock(mutex);
    ++tables;
    cv.notify_all();
  }
  void wait_for(std::size_t n) {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return tables >= n; });
  }
  std::mutex mutex;
  std::condition_variable cv;
  std::size_t tables = 0;
};

void table_transfer(benchmark::State& state) {
  ::setenv("UCX_NET_DEVICES", "lo", 0);
  auto bytes = static_cast<std::size_t>(state.range(0));
  auto in_flight = static_cast<std::size_t>(state.range(1));
  counting_handler receiver_events, sender_events;
  node_options o;
  o.name = "receiver";
  o.shared_memory = std::getenv("EMBER_BENCH_SHM") != nullptr;
  if (std::getenv("EMBER_BENCH_POOL") != nullptr) o.receive_resource = &default_host_pool();
  node receiver(o, receiver_events);
  int port = receiver.listen("127.0.0.1", 0);
  o.name = "sender";
  node sender(o, sender_events);
  auto id = sender.connect("127.0.0.1", port);
  std::vector<std::int64_t> values(bytes / 8);
  std::iota(values.begin(), values.end(), 0);
  std::vector<column> cols;
  cols.push_back(make_column(type_id::int64, values));
  auto data = std::make_shared<const table>(std::move(cols), std::vector<std::string>{"v"});
  std::size_t sent = 0;
  for (auto _ : state) {
    for (std::size_t i = 0; i < in_flight; ++i)
      sender.send_table(id, first_application_type, {}, describe_table(data->view(), data));
    sent += in_flight;
    receiver_events.wait_for(sent);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(sent * bytes));
}
BENCHMARK(table_transfer)
    ->Args({1 << 20, 8})
    ->Args({8 << 20, 4})
    ->Args({64 << 20, 1})
    ->Args({64 << 20, 4})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ember::transport

BENCHMARK_MAIN();
