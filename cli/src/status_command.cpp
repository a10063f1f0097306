#include "status_command.hpp"

#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "table_printer.hpp"

namespace ember::cli {
namespace {

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", fraction * 100.0);
  return buf;
}

nlohmann::json tiers_json(const worker_status_info& w) {
  auto out = nlohmann::json::array();
  for (const auto& t : w.tiers)
    out.push_back({{"tier", t.tier},
                   {"used_bytes", t.used},
                   {"peak_bytes", t.peak},
                   {"limit_bytes", t.limit},
                   {"partitions", t.partitions},
                   {"partition_bytes", t.partition_bytes}});
  return out;
}

void print_json(const cluster_status& s) {
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
                              {"pid", w.pid},
                              {"tiers", tiers_json(w)},
                              {"spilled_to_host_bytes", w.spilled_to_host_bytes},
                              {"spilled_to_disk_bytes", w.spilled_to_disk_bytes},
                              {"unspilled_bytes", w.unspilled_bytes},
                              {"spills", w.spills},
                              {"unspills", w.unspills},
                              {"spill_seconds", w.spill_seconds},
                              {"unspill_seconds", w.unspill_seconds},
                              {"hits", w.hits},
                              {"tier_hits", w.tier_hits},
                              {"misses", w.misses},
                              {"hit_rate", w.hit_rate()},
                              {"corrupt_spills", w.corrupt_spills},
                              {"held_back_tasks", w.held_back_tasks}});
  }
  std::cout << out.dump(2) << "\n";
}

}  // namespace

std::string human_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  static constexpr const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes) / 1024.0;
  std::size_t unit = 0;
  // Rounding to one decimal must not print "1024.0 KiB".
  while (value >= 1023.95 && unit + 1 < std::size(units)) {
    value /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %s", value, units[unit]);
  return buf;
}

int run_status_command(const cluster_flags& cluster, bool json) {
  auto c = cluster.make_client({});
  auto s = c.status();
  if (json) {
    print_json(s);
    return 0;
  }
  auto size = [](std::int64_t bytes) {
    return human_bytes(bytes > 0 ? static_cast<std::uint64_t>(bytes) : 0);
  };
  std::cout << s.scheduler << "\n";
  std::cout << s.running_jobs << " running job(s), " << s.finished_jobs << " finished, "
            << s.tasks_done << " tasks done\n\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& w : s.workers) {
    rows.push_back({std::to_string(w.id), w.alive ? "alive" : "dead", w.backend, w.address,
                    std::to_string(w.running_tasks) + "/" + std::to_string(w.slots),
                    std::to_string(w.queued_tasks), std::to_string(w.held_back_tasks),
                    human_bytes(w.memory_used),
                    w.memory_limit ? human_bytes(w.memory_limit) : "unlimited",
                    human_bytes(w.block_bytes), w.description});
  }
  print_cells({"worker", "state", "backend", "address", "running", "queued", "held back",
               "memory used", "device budget", "blocks", "device"},
              rows, std::cout);

  std::vector<std::vector<std::string>> tiers;
  for (const auto& w : s.workers)
    for (const auto& t : w.tiers)
      tiers.push_back({std::to_string(w.id), t.tier, human_bytes(t.used), human_bytes(t.peak),
                       t.limit ? human_bytes(t.limit) : "unlimited", std::to_string(t.partitions),
                       size(t.partition_bytes)});
  if (!tiers.empty()) {
    std::cout << "\nmemory tiers\n";
    print_cells({"worker", "tier", "used", "peak", "budget", "partitions", "partition bytes"},
                tiers, std::cout);
  }

  // The partition store's traffic: what moved down a tier and back, and how lookups fared
  // (workers without a store to report, like the embedded cluster's, have no tiers either).
  if (!tiers.empty()) {
    std::vector<std::vector<std::string>> traffic;
    for (const auto& w : s.workers)
      traffic.push_back(
          {std::to_string(w.id), size(w.spilled_to_host_bytes), size(w.spilled_to_disk_bytes),
           size(w.unspilled_bytes), std::to_string(w.spills) + "/" + std::to_string(w.unspills),
           std::to_string(w.hits) + "/" + std::to_string(w.misses),
           w.hits + w.misses ? percent(w.hit_rate()) : "-", std::to_string(w.corrupt_spills)});
    std::cout << "\nspilling and lookups\n";
    print_cells({"worker", "spilled to host", "spilled to disk", "unspilled", "spills/unspills",
                 "hits/misses", "hit rate", "corrupt spills"},
                traffic, std::cout);
  }
  return 0;
}

}  // namespace ember::cli
