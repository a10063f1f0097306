#pragma once
// Real processes for integration tests: a child_process that is always killed and reaped when
// it goes out of scope (even when a test fails), and a local_cluster of an `ember scheduler` and
// N `ember worker` processes, optionally inside network namespaces.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
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

#include "common/paths.hpp"

extern char** environ;

namespace ember::test {

/// The whole text of a file ("" when missing).
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A folder that is removed with everything in it when the object goes away.
class temp_dir {
 public:
  explicit temp_dir(const std::string& prefix) {
    std::random_device rd;
    _path = std::filesystem::temp_directory_path() /
            (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(_path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(_path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return _path; }

 private:
  std::filesystem::path _path;
};

/// A child process with stdout and stderr in files. Killed (SIGKILL) and reaped on destruction.
class child_process {
 public:
  child_process(std::vector<std::string> argv, const std::filesystem::path& log_prefix,
                const std::vector<std::string>& extra_env = {})
      : _out(log_prefix.string() + ".out"), _err(log_prefix.string() + ".err") {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, _out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, _err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
    for (const auto& e : extra_env) {
      auto key = e.substr(0, e.find('=') + 1);
      std::erase_if(env, [&](const std::string& x) { return x.rfind(key, 0) == 0; });
      if (e.back() != '=') env.push_back(e);  // "NAME=" removes NAME
    }
    std::vector<char*> args, envp;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    int rc = posix_spawnp(&_pid, args[0], &actions, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  }
  ~child_process() {
    if (_pid > 0 && !_exit_code) {
      ::kill(_pid, SIGKILL);
      int status = 0;
      ::waitpid(_pid, &status, 0);
    }
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  [[nodiscard]] pid_t pid() const { return _pid; }
  void signal(int sig) const { ::kill(_pid, sig); }
  /// The exit code once the process has exited (128 + signal when killed), within `limit`.
  std::optional<int> wait_exit(std::chrono::milliseconds limit) {
    if (_exit_code) return _exit_code;
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      int status = 0;
      if (::waitpid(_pid, &status, WNOHANG) == _pid) {
        _exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return _exit_code;
      }
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  [[nodiscard]] std::string out() const { return read_file(_out); }
  [[nodiscard]] std::string err() const { return read_file(_err); }
  /// Waits until stdout matches `pattern`; returns the first capture group (or the match).
  std::string wait_for_output(const std::string& pattern, std::chrono::milliseconds limit) {
    std::regex re(pattern);
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      std::smatch m;
      auto text = out();
      if (std::regex_search(text, m, re)) return m.size() > 1 ? m[1].str() : m[0].str();
      if (wait_exit(std::chrono::milliseconds(0)) || std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("no '" + pattern + "' in the output of pid " +
                                 std::to_string(_pid) + "; stderr:\n" + err());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

 private:
  pid_t _pid = -1;
  std::string _out, _err;
  std::optional<int> _exit_code;
};

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
  std::vector<std::string> worker_args;  ///< more flags for every worker
};

class local_cluster {
 public:
  explicit local_cluster(const cluster_spec& spec) : _dir("ember-cluster"), _spec(spec) {
    if (!spec.token.empty()) {
      std::ofstream(token_file()) << spec.token << "\n";
    }
    std::vector<std::string> sched = {ember_executable().string(), "scheduler", "--listen",
                                      spec.listen_host + ":0", "--data", (_dir.path() / "data").string(),
                                      "--heartbeat-ms", std::to_string(spec.heartbeat_ms)};
    add_common(sched);
    _scheduler = std::make_unique<child_process>(wrapped(0, sched), _dir.path() / "scheduler", spec.env);
    address = _scheduler->wait_for_output("listening on (\\S+)", std::chrono::seconds(30));
    for (int i = 0; i < spec.workers; ++i) start_worker();
  }

  /// Starts one more worker (waits until it has registered).
  child_process& start_worker() {
    auto i = _workers.size();
    std::vector<std::string> w = {ember_executable().string(), "worker", "--scheduler", address,
                                  "--slots", std::to_string(_spec.slots), "--cpu-threads", "1"};
    w.insert(w.end(), _spec.worker_args.begin(), _spec.worker_args.end());
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
};

}  // namespace ember::test
