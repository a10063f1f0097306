#include "peer_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <ember/host/error.hpp>

namespace ember::cli {

peer_process::peer_process(const std::vector<std::string>& argv) : _name(argv.at(0)) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
    throw error(std::string("cannot create pipes for ") + _name + ": " + std::strerror(errno));
  // The exec status travels back over a close-on-exec pipe: EOF means exec succeeded.
  int status_pipe[2];
  if (pipe2(status_pipe, O_CLOEXEC) != 0)
    throw error(std::string("cannot create a pipe: ") + std::strerror(errno));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  _pid = fork();
  if (_pid < 0) throw error(std::string("cannot fork: ") + std::strerror(errno));
  if (_pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    execvp(args[0], args.data());
    int e = errno;
    (void)!write(status_pipe[1], &e, sizeof(e));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(status_pipe[1]);
  _to_child = in[1];
  _from_child = out[0];
  int child_errno = 0;
  ssize_t got = read(status_pipe[0], &child_errno, sizeof(child_errno));
  close(status_pipe[0]);
  if (got == static_cast<ssize_t>(sizeof(child_errno))) {
    waitpid(_pid, nullptr, 0);
    _pid = -1;
    throw invalid_input("cannot start '" + _name + "': " + std::strerror(child_errno));
  }
  signal(SIGPIPE, SIG_IGN);
}

peer_process::~peer_process() {
  if (_to_child >= 0) close(_to_child);
  if (_from_child >= 0) close(_from_child);
  if (_pid > 0) {
    // Closing stdin asks the peer to quit; give it a moment before the kill.
    for (int i = 0; i < 50; ++i) {
      if (waitpid(_pid, nullptr, WNOHANG) == _pid) return;
      usleep(20'000);
    }
    kill(_pid, SIGKILL);
    waitpid(_pid, nullptr, 0);
  }
}

void peer_process::send_line(const std::string& line) {
  std::string data = line + "\n";
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(_to_child, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw error("cannot write to " + _name + ": " + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
}

std::string peer_process::read_line(std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    auto nl = _pending.find('\n');
    if (nl != std::string::npos) {
      std::string line = _pending.substr(0, nl);
      _pending.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      throw ember::timeout(_name + " sent no answer within " + std::to_string(limit.count()) +
                           " s");
    pollfd p{_from_child, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) continue;
    char buf[4096];
    ssize_t n = read(_from_child, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw error(_name + " exited before answering");
    _pending.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace ember::cli
