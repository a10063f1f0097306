#pragma once
// The flags every client command shares (--scheduler, --token-file, --shared-memory) and the
// client they make: a connection to that scheduler, or the embedded local cluster without one.
#include <string>

#include <CLI/CLI.hpp>

#include <ember/scheduler/client.hpp>

namespace ember::cli {

struct cluster_flags {
  std::string scheduler;
  std::string token_file;
  bool shared_memory = false;

  /// Adds the flags to `cmd`.
  void add_to(CLI::App& cmd);
  /// client::connect(scheduler) when --scheduler was given, else client::local(options).
  [[nodiscard]] client make_client(client_options options) const;
};

/// "auto", "ucx" or "nccl". Throws ember::invalid_input listing them.
[[nodiscard]] exchange_choice parse_exchange(const std::string& text);

/// The token in `path` (surrounding whitespace dropped). Throws ember::invalid_input naming the
/// file when it cannot be read or is empty.
[[nodiscard]] std::string read_token_file(const std::string& path);

}  // namespace ember::cli
