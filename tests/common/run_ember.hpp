#pragma once
// Runs the `ember` executable as a real process through the shell, for the CLI tests.
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "common/paths.hpp"

namespace ember::test {

struct run_result {
  int status;          ///< the exit status, -1 when it did not exit normally
  std::string output;  ///< stdout and stderr together
};

/// `ember ARGS`; `env` ("NAME=value ...") is set for it alone.
inline run_result run_ember(const std::string& args, const std::string& env = "") {
  std::string cmd = env + " " + ember_executable().string() + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  while (std::size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace ember::test
