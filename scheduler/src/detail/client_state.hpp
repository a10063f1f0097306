#pragma once
// What a client and all its datasets share: the options, the planner's settings and the local
// executor. Datasets keep it alive, so a dataset outliving its client fails cleanly instead of
// touching freed memory.
#include <atomic>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/executor.hpp>
#include <ember/scheduler/planner.hpp>
#include <memory>

namespace ember::detail {

class remote_session;

struct client_state {
  client_options options;
  planner_options planner;
  std::unique_ptr<executor> workers;       // local clusters
  std::shared_ptr<remote_session> remote;  // clients of a scheduler
  std::atomic<bool> closed{false};

  /// Plans and runs `p`. Throws ember::invalid_input once the client is shut down.
  [[nodiscard]] job_result run(const plan& p) const;
  void expect_open() const;
};

}  // namespace ember::detail
