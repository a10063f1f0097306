#include "machine_info.hpp"

#include <fstream>
#include <string>
#include <thread>

#include <ember/config.hpp>
#include <ember/git_revision.hpp>

namespace ember::cli {

nlohmann::json machine_info(const context& ctx) {
  std::string cpu = "unknown";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  return nlohmann::json{
      {"git_revision", EMBER_GIT_REVISION},
      {"ember_version", EMBER_VERSION},
      {"cpu", cpu},
      {"hardware_threads", std::thread::hardware_concurrency()},
      {"backend", std::string(to_string(ctx.kind()))},
      {"device", ctx.description()},
      {"cuda_backend_built", EMBER_WITH_CUDA != 0},
      {"cuda_available", cuda_available()},
      {"compiler", std::string("g++ ") + __VERSION__},
  };
}

nlohmann::json host_machine_info() {
  context_options o;
  o.backend = backend_choice::cpu;
  o.cpu_threads = 1;
  auto ctx = context::create(o);
  return machine_info(*ctx);
}

}  // namespace ember::cli
