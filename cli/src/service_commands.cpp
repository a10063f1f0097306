#include "service_commands.hpp"

#include <csignal>
#include <optional>
#include <iostream>
#include <stop_token>
#include <thread>

#include <ember/host/log.hpp>

namespace ember::cli {
namespace {

std::stop_source& stop_requests() {
  static std::stop_source source;
  return source;
}

// A signal handler may only touch lock-free atomics; a watcher thread turns the flag into a
// stop request.
volatile std::sig_atomic_t signalled = 0;
extern "C" void on_signal(int) { signalled = 1; }

std::jthread watch_signals() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  return std::jthread([](std::stop_token self) {
    while (!self.stop_requested()) {
      if (signalled) {
        stop_requests().request_stop();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
}

}  // namespace

int run_scheduler_command(const scheduler_service_options& options) {
  auto watcher = watch_signals();
  scheduler_service service(options);
  // Scripts wait for this line (and tests read the port from it).
  if (auto recovery = service.recovery(); !recovery.empty()) std::cout << recovery << "\n";
  if (auto metrics = service.metrics_url(); !metrics.empty())
    std::cout << "ember scheduler metrics on " << metrics << "\n";
  std::cout << "ember scheduler listening on " << service.address() << std::endl;
  service.run(stop_requests().get_token());
  logger().info("scheduler stopping");
  service.stop();
  return 0;
}

int run_worker_command(worker_service_options options) {
  auto watcher = watch_signals();
  options.stop = stop_requests().get_token();
  std::optional<worker_service> started;
  try {
    started.emplace(options);
  } catch (const cancelled&) {
    return 0;  // SIGTERM while waiting for the scheduler
  }
  auto& service = *started;
  if (auto metrics = service.metrics_url(); !metrics.empty())
    std::cout << "ember worker metrics on " << metrics << "\n";
  std::cout << "ember " << service.description() << std::endl;
  bool requested = service.run(stop_requests().get_token());
  service.stop();
  if (!requested) {
    std::cerr << "ember: worker: lost the scheduler at " << options.scheduler << "\n";
    return 3;
  }
  return 0;
}

}  // namespace ember::cli
