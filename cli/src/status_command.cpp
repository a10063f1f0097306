#include "status_command.hpp"

#include <iostream>

#include <nlohmann/json.hpp>

#include "table_printer.hpp"

namespace ember::cli {
namespace {

std::string mib(std::uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

}  // namespace

int run_status_command(const cluster_flags& cluster, bool json) {
  auto c = cluster.make_client({});
  auto s = c.status();
  if (json) {
    nlohmann::json out;
    out["scheduler"] = s.scheduler;
    out["running_jobs"] = s.running_jobs;
    out["finished_jobs"] = s.finished_jobs;
    out["tasks_done"] = s.tasks_done;
    out["workers"] = nlohmann::json::array();
    for (const auto& w : s.workers) {
      out["workers"].push_back({{"id", w.id},
                                {"name", w.name},
                                {"address", w.address},
                                {"backend", w.backend},
                                {"device", w.device},
                                {"description", w.description},
                                {"alive", w.alive},
                                {"heartbeat_age_ms", w.heartbeat_age_ms},
                                {"slots", w.slots},
                                {"running_tasks", w.running_tasks},
                                {"queued_tasks", w.queued_tasks},
                                {"assigned_tasks", w.assigned_tasks},
                                {"memory_limit_bytes", w.memory_limit},
                                {"memory_used_bytes", w.memory_used},
                                {"memory_peak_bytes", w.memory_peak},
                                {"block_bytes", w.block_bytes},
                                {"pid", w.pid}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << s.scheduler << "\n";
  std::cout << s.running_jobs << " running job(s), " << s.finished_jobs << " finished, "
            << s.tasks_done << " tasks done\n\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& w : s.workers) {
    rows.push_back({std::to_string(w.id), w.alive ? "alive" : "dead", w.backend, w.address,
                    std::to_string(w.running_tasks) + "/" + std::to_string(w.slots),
                    std::to_string(w.queued_tasks), mib(w.memory_used),
                    w.memory_limit ? mib(w.memory_limit) : "unlimited", mib(w.block_bytes),
                    w.description});
  }
  print_cells({"worker", "state", "backend", "address", "running", "queued", "memory used",
               "budget/slot", "blocks", "device"},
              rows, std::cout);
  return 0;
}

}  // namespace ember::cli
