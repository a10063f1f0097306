#include "machine_info.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include <ember/config.hpp>
#include <ember/git_revision.hpp>
#include <ember/transport/nccl.hpp>
#include <ember/transport/node.hpp>

namespace ember::cli {
namespace {

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

std::string os_name() {
  utsname u{};
  if (uname(&u) != 0) return "unknown";
  return std::string(u.sysname) + " " + u.release + " " + u.machine;
}

std::int64_t physical_memory() {
  auto pages = sysconf(_SC_PHYS_PAGES);
  auto page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<std::int64_t>(pages) * page : 1;
}

nlohmann::json version_or_null(int version) {
  auto text = cuda_version_text(version);
  return text.empty() ? nlohmann::json(nullptr) : nlohmann::json(text);
}

}  // namespace

nlohmann::json machine_info(const context& ctx) {
  auto cuda = query_cuda_environment();
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& d : cuda.devices)
    gpus.push_back({{"name", d.name},
                    {"memory_bytes", d.memory_bytes},
                    {"compute_capability",
                     std::to_string(d.compute_major) + "." + std::to_string(d.compute_minor)}});
  auto nccl = transport::nccl_version();
  nlohmann::json info{
      {"git_revision", EMBER_GIT_REVISION},
      {"ember_version", EMBER_VERSION},
      {"compiler", std::string("g++ ") + __VERSION__},
      {"os", os_name()},
      {"cpu", cpu_model()},
      {"hardware_threads", std::thread::hardware_concurrency()},
      {"memory_bytes", physical_memory()},
      {"backend", std::string(to_string(ctx.kind()))},
      {"device", ctx.description()},
      {"cuda_backend_built", EMBER_WITH_CUDA != 0},
      {"cuda_available", cuda_available()},
      {"gpus", gpus},
      {"cuda_toolkit_version", version_or_null(cuda.toolkit_version)},
      {"cuda_runtime_version", version_or_null(cuda.runtime_version)},
      {"cuda_driver_version", version_or_null(cuda.driver_version)},
      {"ucx_version", transport::ucx_version()},
      {"nccl_version", nccl.empty() ? nlohmann::json(nullptr) : nlohmann::json(nccl)},
  };
  if (gpus.empty()) info["gpu_note"] = cuda_unavailable_reason();
  return info;
}

nlohmann::json host_machine_info() {
  context_options o;
  o.backend = backend_choice::cpu;
  o.cpu_threads = 1;
  auto ctx = context::create(o);
  return machine_info(*ctx);
}

}  // namespace ember::cli
