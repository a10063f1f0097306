#pragma once
// Child processes with their output in files: used by `ember bench` to start a cluster of its
// own and by the integration tests. A child_process is always killed (SIGKILL) and reaped when it
// goes out of scope, so a failing caller never leaves processes behind.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ember {

class child_process {
 public:
  /// Starts argv[0] (searched on PATH) with `argv`, stdout in `log_prefix`.out and stderr in
  /// `log_prefix`.err. `extra_env` entries "NAME=value" set or replace variables; "NAME=" removes
  /// one. Throws ember::error when the program cannot be started.
  child_process(std::vector<std::string> argv, const std::filesystem::path& log_prefix,
                const std::vector<std::string>& extra_env = {});
  /// SIGKILL and reap, unless it has exited already. Never throws.
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  [[nodiscard]] pid_t pid() const noexcept { return _pid; }
  void signal(int sig) const noexcept;
  /// The exit code once the process has exited (128 + the signal when killed), waiting at most
  /// `limit`; std::nullopt while it runs.
  std::optional<int> wait_exit(std::chrono::milliseconds limit);
  /// What it has written so far.
  [[nodiscard]] std::string out() const;
  [[nodiscard]] std::string err() const;
  /// Waits until stdout matches the regular expression `pattern` and returns its first capture
  /// group (or the whole match). Throws ember::timeout after `limit`, or ember::error when the
  /// process exits first; both quote its stderr.
  std::string wait_for_output(const std::string& pattern, std::chrono::milliseconds limit);

 private:
  pid_t _pid = -1;
  std::string _out, _err;
  std::optional<int> _exit_code;
};

/// The whole text of a file ("" when it cannot be read).
[[nodiscard]] std::string read_file_text(const std::filesystem::path& path);

/// The path of the running executable (/proc/self/exe).
[[nodiscard]] std::filesystem::path current_executable();

}  // namespace ember
