#pragma once
// `ember cache`: the cluster's named cache from the shell. `ls` lists its entries (worker, tier,
// bytes, rows, pins, last use; lost entries with the reason), `ls --all` every partition of the
// scheduler's residency catalog; `put KEY FILE.csv` stores a CSV file's rows, `get KEY` prints
// them (or writes them as CSV with --output), `rm KEY` removes the entry. Every command takes the
// cluster flags of `ember status` (--scheduler, --token-file; without --scheduler, an embedded
// local cluster whose cache starts empty) and --json (one JSON value on stdout).
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace ember::cli {

/// The `cache` command group and its flags, added to an app before it parses.
class cache_commands {
 public:
  /// Adds `cache` and its subcommands to `app`, which must outlive this object.
  explicit cache_commands(CLI::App& app);
  ~cache_commands();
  cache_commands(const cache_commands&) = delete;
  cache_commands& operator=(const cache_commands&) = delete;

  /// Runs the cache command the app parsed: its exit code, or std::nullopt when the command line
  /// chose another command. Throws ember::invalid_input for a key with no entry or a malformed
  /// CSV file (main() exits 2), ember::data_lost for an entry lost with its worker,
  /// ember::transport_error or ember::timeout when the scheduler cannot be reached (exit 1).
  [[nodiscard]] std::optional<int> run();

  /// The flags of every command (defined in the .cpp).
  struct state;

 private:
  std::unique_ptr<state> _state;
};

}  // namespace ember::cli
