#pragma once
#include <chrono>
#include <mutex>
#include <string>

namespace ember::cli {

/// Progress of long commands on stderr: a redrawn bar on a terminal, plain lines otherwise (so
/// logs and CI output stay readable). Thread-safe: tasks report from worker threads.
class progress {
 public:
  progress();
  /// Reports `done` of `total` units of the named step.
  void update(const std::string& step, long long done, long long total);
  /// Ends the current bar (a newline on a terminal).
  void finish();

 private:
  bool _tty;
  std::mutex _mutex;  // guards everything below: updates arrive from several worker threads
  std::string _step;
  int _last_percent = -1;
  std::chrono::steady_clock::time_point _last_draw{};
};

}  // namespace ember::cli
