#include "progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace ember::cli {

progress::progress() : _tty(isatty(STDERR_FILENO) != 0) {}

void progress::update(const std::string& step, long long done, long long total) {
  std::lock_guard lock(_mutex);
  int percent = total > 0 ? static_cast<int>(100 * done / total) : 100;
  auto now = std::chrono::steady_clock::now();
  bool new_step = step != _step;
  if (new_step && _tty && !_step.empty()) std::fputc('\n', stderr);
  if (_tty) {
    // Redraw at most every 50 ms, and always at the end of a step.
    if (!new_step && percent != 100 && now - _last_draw < std::chrono::milliseconds(50)) return;
    constexpr int width = 30;
    int filled = percent * width / 100;
    std::fprintf(stderr, "\r%-28.28s [%.*s%*s] %3d%% (%lld/%lld)", step.c_str(), filled,
                 "##############################", width - filled, "", percent, done, total);
    std::fflush(stderr);
  } else if (new_step || percent == 100) {
    if (new_step || percent != _last_percent)
      std::fprintf(stderr, "%s: %lld/%lld\n", step.c_str(), done, total);
  }
  _step = step;
  _last_percent = percent;
  _last_draw = now;
}

void progress::finish() {
  std::lock_guard lock(_mutex);
  if (_tty && !_step.empty()) std::fputc('\n', stderr);
  _step.clear();
  _last_percent = -1;
}

}  // namespace ember::cli
