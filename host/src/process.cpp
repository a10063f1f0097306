#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ember/host/error.hpp>
#include <ember/host/process.hpp>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

extern char** environ;

namespace ember {

std::string read_file_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::filesystem::path current_executable() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : p;
}

child_process::child_process(std::vector<std::string> argv, const std::filesystem::path& log_prefix,
                             const std::vector<std::string>& extra_env)
    : _out(log_prefix.string() + ".out"), _err(log_prefix.string() + ".err") {
  EMBER_EXPECTS(!argv.empty(), invalid_input, "child_process: no program given");
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  for (const auto& e : extra_env) {
    auto key = e.substr(0, e.find('=') + 1);
    std::erase_if(env, [&](const std::string& x) { return x.rfind(key, 0) == 0; });
    if (e.back() != '=') env.push_back(e);
  }
  std::vector<char*> args, envp;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, _out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, _err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int rc = posix_spawnp(&_pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw error("cannot start " + argv[0] + ": " + std::strerror(rc));
}

child_process::~child_process() {
  if (_pid > 0 && !_exit_code) {
    ::kill(_pid, SIGKILL);
    int status = 0;
    ::waitpid(_pid, &status, 0);
  }
}

void child_process::signal(int sig) const noexcept {
  if (_pid > 0 && !_exit_code) ::kill(_pid, sig);
}

std::optional<int> child_process::wait_exit(std::chrono::milliseconds limit) {
  if (_exit_code) return _exit_code;
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    if (::waitpid(_pid, &status, WNOHANG) == _pid) {
      _exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return _exit_code;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string child_process::out() const { return read_file_text(_out); }
std::string child_process::err() const { return read_file_text(_err); }

std::string child_process::wait_for_output(const std::string& pattern,
                                           std::chrono::milliseconds limit) {
  std::regex re(pattern);
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    std::smatch m;
    auto text = out();
    if (std::regex_search(text, m, re)) return m.size() > 1 ? m[1].str() : m[0].str();
    if (wait_exit(std::chrono::milliseconds(0))) {
      throw error("pid " + std::to_string(_pid) + " exited with code " +
                  std::to_string(*_exit_code) + " before printing '" + pattern + "'; stderr:\n" +
                  err());
    }
    if (std::chrono::steady_clock::now() > deadline) {
      throw timeout("pid " + std::to_string(_pid) + " did not print '" + pattern + "' within " +
                    std::to_string(limit.count()) + " ms; stderr:\n" + err());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace ember
