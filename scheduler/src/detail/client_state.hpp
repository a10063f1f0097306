#pragma once
// What a client and all its datasets share: the options, the planner's settings and the local
// executor. Datasets keep it alive, so a dataset outliving its client fails cleanly instead of
// touching freed memory.
#include <atomic>
#include <ember/scheduler/cache.hpp>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/executor.hpp>
#include <ember/scheduler/planner.hpp>
#include <ember/scheduler/scheduler_service.hpp>
#include <memory>
#include <mutex>

namespace ember::detail {

class remote_session;
class coordination_session;

struct client_state {
  client_options options;
  planner_options planner;
  std::unique_ptr<executor> workers;       // local clusters
  std::shared_ptr<remote_session> remote;  // clients of a scheduler
  std::atomic<bool> closed{false};

  client_state() = default;
  ~client_state();
  client_state(const client_state&) = delete;
  client_state& operator=(const client_state&) = delete;

  /// The coordination connection, made on first use (to an in-process scheduler for a local
  /// client, started then too).
  [[nodiscard]] std::shared_ptr<coordination_session> coordination();

  /// The named cache's home, made on first use.
  [[nodiscard]] std::shared_ptr<cache_backend> cache();

  /// Plans and runs `p`. Throws ember::invalid_input once the client is shut down.
  [[nodiscard]] job_result run(const plan& p) const;
  void expect_open() const;

 private:
  std::mutex _coordination_mutex;
  std::unique_ptr<scheduler_service> _embedded_scheduler;  // local clients
  std::shared_ptr<coordination_session> _coordination;
  std::shared_ptr<cache_backend> _cache;
};

}  // namespace ember::detail
