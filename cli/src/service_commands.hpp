#pragma once
// `ember scheduler` and `ember worker`: long-running services that stop cleanly on SIGINT or
// SIGTERM.
#include <string>

#include <ember/scheduler/scheduler_service.hpp>
#include <ember/scheduler/worker_service.hpp>

namespace ember::cli {

/// Serves until SIGINT/SIGTERM. Returns the exit code.
int run_scheduler_command(const scheduler_service_options& options);
/// Serves until SIGINT/SIGTERM (exit 0) or until the scheduler is lost (exit 3).
int run_worker_command(worker_service_options options);

}  // namespace ember::cli
