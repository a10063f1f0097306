#pragma once
#include "cluster_flags.hpp"

namespace ember::cli {

/// `ember status`: the scheduler and its workers (backend, memory, tasks), as a table or JSON.
int run_status_command(const cluster_flags& cluster, bool json);

}  // namespace ember::cli
