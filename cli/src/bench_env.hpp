#pragma once
// What the benchmarks that start processes of their own share about their environment.
#include <cstdlib>
#include <string>
#include <vector>

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

}  // namespace ember::cli
