#pragma once
// Real processes for integration tests: child processes (ember::child_process, always killed and
// reaped when they go out of scope, even when a test fails), and a local_cluster of an `ember
// scheduler` and N `ember worker` processes, optionally inside network namespaces.
#include <algorithm>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <ember/host/process.hpp>

#include "common/paths.hpp"
#include "common/temp_dir.hpp"

namespace ember::test {

/// The whole text of a file ("" when missing).
inline std::string read_file(const std::filesystem::path& p) { return read_file_text(p); }

using ember::child_process;

/// Runs a shell command; returns its exit status.
inline int shell(const std::string& command) {
  int rc = std::system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/// An `ember scheduler` and `workers` `ember worker` processes. `wrap` runs a process inside
/// something (e.g. {"ip", "netns", "exec", "ns1"}); one per process: index 0 is the scheduler,
/// 1..N the workers (empty: none).
struct cluster_spec {
  int workers = 3;
  std::string listen_host = "127.0.0.1";
  std::string token;  ///< written to a token file when not empty
  bool shared_memory = false;
  std::vector<std::vector<std::string>> wrap;
  std::vector<std::string> env;
  int heartbeat_ms = 100;
  int slots = 1;
  std::vector<std::string> worker_args;     ///< more flags for every worker
  std::vector<std::string> scheduler_args;  ///< more flags for the scheduler
};

class local_cluster {
 public:
  explicit local_cluster(const cluster_spec& spec) : _dir("ember-cluster"), _spec(spec) {
    if (!spec.token.empty()) {
      std::ofstream(token_file()) << spec.token << "\n";
    }
    auto sched = scheduler_argv(spec.listen_host + ":0");
    _scheduler =
        std::make_unique<child_process>(wrapped(0, sched), _dir.path() / "scheduler", spec.env);
    address = _scheduler->wait_for_output("listening on (\\S+)", std::chrono::seconds(30));
    for (int i = 0; i < spec.workers; ++i) start_worker();
  }

  /// Kills the scheduler (SIGKILL) and starts a new one on the same address and data folder.
  void restart_scheduler() {
    _scheduler->signal(SIGKILL);
    (void)_scheduler->wait_exit(std::chrono::seconds(10));
    auto sched = scheduler_argv(address);
    _scheduler = std::make_unique<child_process>(
        wrapped(0, sched), _dir.path() / ("scheduler." + std::to_string(++_restarts)), _spec.env);
    _scheduler->wait_for_output("listening on (\\S+)", std::chrono::seconds(30));
  }

  /// Starts one more worker (waits until it has registered).
  child_process& start_worker() {
    auto i = _workers.size();
    std::vector<std::string> w = {ember_executable().string(),
                                  "worker",
                                  "--scheduler",
                                  address,
                                  "--slots",
                                  std::to_string(_spec.slots),
                                  "--cpu-threads",
                                  "1"};
    w.insert(w.end(), _spec.worker_args.begin(), _spec.worker_args.end());
    // CPU workers unless the test asks for a backend: results are compared exactly with the
    // embedded CPU run, and on a GPU machine `auto` would pick CUDA, whose float sums differ in
    // the last bits (the GPU tests compare within a tolerance).
    if (std::find(w.begin(), w.end(), "--backend") == w.end()) {
      w.push_back("--backend");
      w.push_back("cpu");
    }
    add_common(w);
    _workers.push_back(std::make_unique<child_process>(
        wrapped(i + 1, w), _dir.path() / ("worker" + std::to_string(i)), _spec.env));
    _workers.back()->wait_for_output("ember (worker \\d+)", std::chrono::seconds(30));
    return *_workers.back();
  }

  [[nodiscard]] child_process& scheduler() { return *_scheduler; }
  [[nodiscard]] child_process& worker(std::size_t i) { return *_workers.at(i); }
  [[nodiscard]] std::size_t num_workers() const { return _workers.size(); }
  [[nodiscard]] std::filesystem::path token_file() const { return _dir.path() / "token"; }
  [[nodiscard]] const std::filesystem::path& dir() const { return _dir.path(); }
  /// Everything the processes wrote to stderr, for failure messages.
  [[nodiscard]] std::string logs() const {
    std::string s = "--- scheduler:\n" + _scheduler->err();
    for (std::size_t i = 0; i < _workers.size(); ++i)
      s += "--- worker " + std::to_string(i) + ":\n" + _workers[i]->err();
    return s;
  }

  std::string address;

 private:
  std::vector<std::string> scheduler_argv(const std::string& listen) const {
    std::vector<std::string> sched = {ember_executable().string(),
                                      "scheduler",
                                      "--listen",
                                      listen,
                                      "--data",
                                      (_dir.path() / "data").string(),
                                      "--heartbeat-ms",
                                      std::to_string(_spec.heartbeat_ms)};
    sched.insert(sched.end(), _spec.scheduler_args.begin(), _spec.scheduler_args.end());
    add_common(sched);
    return sched;
  }
  void add_common(std::vector<std::string>& argv) const {
    if (!_spec.token.empty()) {
      argv.push_back("--token-file");
      argv.push_back(token_file().string());
    }
    if (_spec.shared_memory) argv.push_back("--shared-memory");
  }
  std::vector<std::string> wrapped(std::size_t i, std::vector<std::string> argv) const {
    if (i >= _spec.wrap.size() || _spec.wrap[i].empty()) return argv;
    auto out = _spec.wrap[i];
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

  temp_dir _dir;
  cluster_spec _spec;
  std::unique_ptr<child_process> _scheduler;
  std::vector<std::unique_ptr<child_process>> _workers;
  int _restarts = 0;
};

}  // namespace ember::test
