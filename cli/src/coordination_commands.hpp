#pragma once
// `ember lock`, `ember queue`, `ember topic` and `ember kv`: the scheduler's coordination services
// (coordination_client.hpp) from the shell. Every command talks to a running scheduler
// (--scheduler, default $EMBER_SCHEDULER or 127.0.0.1:4242); --json prints one JSON value on
// stdout (`topic sub --json`: one object per line, as messages come).
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace ember::cli {

/// The four command groups and their flags, added to an app before it parses.
class coordination_commands {
 public:
  /// Adds `lock`, `queue`, `topic` and `kv` to `app`, which must outlive this object.
  explicit coordination_commands(CLI::App& app);
  ~coordination_commands();
  coordination_commands(const coordination_commands&) = delete;
  coordination_commands& operator=(const coordination_commands&) = delete;

  /// Runs the coordination command the app parsed: its exit code, or std::nullopt when the
  /// command line chose another command. Throws ember::invalid_input for bad flags, an unknown
  /// queue, a stale fencing token...; ember::timeout or ember::transport_error when the
  /// scheduler does not answer (main() turns them into messages and exit codes).
  [[nodiscard]] std::optional<int> run();

  /// The flags of every command (defined in the .cpp).
  struct state;

 private:
  std::unique_ptr<state> _state;
};

}  // namespace ember::cli
