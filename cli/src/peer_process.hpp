#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace ember::cli {

/// A child process spoken to in lines over its stdin/stdout (the benchmark peers: a Python
/// process running DuckDB). Every read has a deadline, so a stuck peer fails the benchmark with
/// ember::timeout instead of hanging it. The child is killed and reaped on destruction.
class peer_process {
 public:
  /// Starts `argv[0]` with the arguments. Throws ember::invalid_input when it cannot start.
  explicit peer_process(const std::vector<std::string>& argv);
  ~peer_process();
  peer_process(const peer_process&) = delete;
  peer_process& operator=(const peer_process&) = delete;

  void send_line(const std::string& line);
  /// The next line the peer prints (without the newline). Throws ember::timeout when none
  /// arrives in time, ember::error when the peer exits.
  [[nodiscard]] std::string read_line(std::chrono::seconds timeout);

 private:
  int _pid = -1;
  int _to_child = -1;
  int _from_child = -1;
  std::string _pending;
  std::string _name;
};

}  // namespace ember::cli
