#pragma once
// What the benchmarks that start processes of their own share about their environment: the
// loopback UCX settings, a private temporary folder, and where the peers' scripts are.
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <ember/host/error.hpp>

namespace ember::cli {

/// UCX stays on loopback: otherwise it may open lanes on other interfaces for 127.0.0.1.
inline const std::vector<std::string> loopback_env = {"UCX_NET_DEVICES=lo",
                                                      "UCX_SOCKADDR_TLS_PRIORITY=tcp"};

/// Sets loopback_env in this process too (for its own clients), unless the user set them.
inline void set_loopback_env() {
  for (const auto& e : loopback_env) {
    auto eq = e.find('=');
    ::setenv(e.substr(0, eq).c_str(), e.substr(eq + 1).c_str(), 0);
  }
}

/// A folder of a bench's own (emptied if it was there), removed with everything in it when it
/// goes away. Throws ember::invalid_input naming the folder when it cannot be created.
struct private_dir {
  std::filesystem::path path;
  explicit private_dir(std::filesystem::path p) : path(std::move(p)) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    std::filesystem::create_directories(path, ec);
    EMBER_EXPECTS(!ec, invalid_input, path.string() + ": cannot create (" + ec.message() + ")");
  }
  ~private_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  private_dir(const private_dir&) = delete;
  private_dir& operator=(const private_dir&) = delete;
};

/// bench/peers/NAME of the sources: the peer scripts ship with them, and $EMBER_SOURCE_DIR points
/// elsewhere when the binary runs away from its build tree.
inline std::filesystem::path peer_script(const std::string& name) {
  const char* source_env = std::getenv("EMBER_SOURCE_DIR");
  auto source_dir = std::filesystem::path(source_env != nullptr ? source_env : EMBER_SOURCE_DIR);
  return source_dir / "bench" / "peers" / name;
}

}  // namespace ember::cli
