#pragma once
// `ember data`: the datasets of a local storage root (dataset_store.hpp) from the shell: import
// CSV or text files as a new version, export a version as CSV, list, show, peek at and remove
// datasets. Every command takes --root DIR (default $EMBER_DATA_ROOT) and --json (one JSON value
// on stdout). `import --lock NAME` fences its commit with a lock of the scheduler (acquired
// before the write, or the caller's with --token N): the token is recorded in the manifest, and a
// token older than the one the current version was committed with is refused.
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace ember::cli {

/// The `data` command group and its flags, added to an app before it parses.
class data_commands {
 public:
  /// Adds `data` and its subcommands to `app`, which must outlive this object.
  explicit data_commands(CLI::App& app);
  ~data_commands();
  data_commands(const data_commands&) = delete;
  data_commands& operator=(const data_commands&) = delete;

  /// Runs the data command the app parsed: its exit code, or std::nullopt when the command line
  /// chose another command. Throws ember::invalid_input for bad flags, no storage root, an
  /// unknown dataset or a malformed input file (file:line); ember::error on I/O failure (main()
  /// turns them into messages and exit codes).
  [[nodiscard]] std::optional<int> run();

  /// The flags of every command (defined in the .cpp).
  struct state;

 private:
  std::unique_ptr<state> _state;
};

}  // namespace ember::cli
