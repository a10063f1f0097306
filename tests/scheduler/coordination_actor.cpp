// A client process for coordination_cluster_tests: it plays one role against a real scheduler
// and reports on stdout (one line per event, flushed), so the test can kill, pause and resume it.
//
//   holder ADDR LOCK TTL_MS                 acquire, print "token T", hold (renewing) until killed
//   committer ADDR LOCK KEY TTL_MS ROUNDS   per round: acquire, print "token T ROUND", wait for
//                                           SIGUSR1, write KEY fenced by T, print
//                                           "commit ROUND ok" or "commit ROUND rejected: ..."
//   counter ADDR LOCK KEY SECONDS           increment KEY under the lock until SECONDS pass,
//                                           print "done N" (N: increments that were accepted)
//   consumer ADDR QUEUE IDLE_MS             get, print "got PAYLOAD", ack; exit after IDLE_MS
//                                           without a message
//   hoarder ADDR QUEUE N                    get N messages, print "held PAYLOAD", never ack,
//                                           wait to be killed
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <ember/host/error.hpp>
#include <ember/scheduler/client.hpp>
#include <iostream>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

void say(const std::string& line) {
  std::cout << line << std::endl;  // flushed: the test reads the file as it grows
}

ember::client connect(const std::string& address) {
  ember::client_options o;
  o.reconnect_timeout = 30s;
  return ember::client::connect(address, o);
}

int holder(const std::string& address, const std::string& lock, int ttl_ms) {
  auto c = connect(address);
  auto l = c.lock(lock).acquire(30s, milliseconds(ttl_ms));
  say("token " + std::to_string(l.token()));
  for (;;) std::this_thread::sleep_for(1s);
}

int committer(const std::string& address, const std::string& lock, const std::string& key,
              int ttl_ms, int rounds) {
  // SIGUSR1 is blocked in every thread (the client's threads inherit the mask) and taken here.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  auto c = connect(address);
  auto kv = c.kv();
  for (int round = 1; round <= rounds; ++round) {
    auto l = c.lock(lock).acquire(30s, milliseconds(ttl_ms));
    auto token = l.token();
    say("token " + std::to_string(token) + " " + std::to_string(round));
    int sig = 0;
    sigwait(&set, &sig);
    try {
      kv.set(key, "written by the paused holder", ember::fence{lock, token});
      say("commit " + std::to_string(round) + " ok");
    } catch (const ember::invalid_input& e) {
      say("commit " + std::to_string(round) + " rejected: " + e.what());
    }
    try {
      l.release();
    } catch (const ember::invalid_input&) {
      // It lost the lease while paused: nothing to give back.
    }
  }
  return 0;
}

int counter(const std::string& address, const std::string& lock, const std::string& key,
            int seconds) {
  auto c = connect(address);
  auto kv = c.kv();
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  long done = 0;
  while (std::chrono::steady_clock::now() < until) {
    auto l = c.lock(lock).acquire(30s, 5s);
    auto current = kv.get(key);
    long n = current ? std::stol(current->text()) : 0;
    try {
      kv.set(key, std::to_string(n + 1), ember::fence{lock, l.token()});
      ++done;
    } catch (const ember::invalid_input& e) {
      std::cerr << "refused: " << e.what() << std::endl;
    }
    l.release();
  }
  say("done " + std::to_string(done));
  return 0;
}

int consumer(const std::string& address, const std::string& queue, int idle_ms) {
  auto c = connect(address);
  auto q = c.queue(queue);
  for (;;) {
    auto m = q.get(milliseconds(idle_ms));
    if (!m) break;
    say("got " + std::string(m->payload.begin(), m->payload.end()));
    q.ack(*m);
  }
  say("idle");
  return 0;
}

int hoarder(const std::string& address, const std::string& queue, int n) {
  auto c = connect(address);
  auto q = c.queue(queue);
  for (int i = 0; i < n; ++i) {
    auto m = q.get(30s);
    if (!m) break;
    say("held " + std::string(m->payload.begin(), m->payload.end()));
  }
  say("hoarding");
  for (;;) std::this_thread::sleep_for(1s);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  try {
    if (a.size() == 4 && a[0] == "holder") return holder(a[1], a[2], std::stoi(a[3]));
    if (a.size() == 6 && a[0] == "committer")
      return committer(a[1], a[2], a[3], std::stoi(a[4]), std::stoi(a[5]));
    if (a.size() == 5 && a[0] == "counter") return counter(a[1], a[2], a[3], std::stoi(a[4]));
    if (a.size() == 4 && a[0] == "consumer") return consumer(a[1], a[2], std::stoi(a[3]));
    if (a.size() == 4 && a[0] == "hoarder") return hoarder(a[1], a[2], std::stoi(a[3]));
  } catch (const std::exception& e) {
    std::cerr << "actor: " << e.what() << std::endl;
    return 1;
  }
  std::cerr << "usage: see the comment at the top of coordination_actor.cpp" << std::endl;
  return 2;
}
