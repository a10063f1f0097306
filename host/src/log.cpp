#include <ember/host/log.hpp>

#include <cstdlib>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace ember {

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = spdlog::stderr_color_mt("ember");
    const char* level = std::getenv("EMBER_LOG_LEVEL");
    l->set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::warn);
    l->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] [%t] %v");
    return l;
  }();
  return *instance;
}

}  // namespace ember
