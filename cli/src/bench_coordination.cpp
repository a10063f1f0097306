#include "bench_env.hpp"
#include "bench_coordination.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <span>
#include <sstream>
#include <thread>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include <ember/host/error.hpp>
#include <ember/host/process.hpp>
#include <ember/scheduler/client.hpp>

#include "bench_report.hpp"
#include "bench_stats.hpp"
#include "machine_info.hpp"
#include "progress.hpp"
#include "table_printer.hpp"

namespace ember::cli {
namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t payload_bytes = 64;
constexpr int producers = 4;
constexpr int consumers = 4;
/// The coordination services' goal for a lock round trip (acquire + release), at the median.
constexpr double lock_goal_us = 100;

double micros(clock_type::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// ---- latency statistics -----------------------------------------------------------------------

/// One round of timed round trips: their rate and the distribution of their latencies.
struct latency_round {
  double per_second = 0, p50_us = 0, p99_us = 0, max_us = 0;
  std::int64_t over_50ms = 0;  ///< stalls: samples above 50 ms
};

// Nearest rank: the smallest sample with at least a fraction q of the samples at or below it.
double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

latency_round summarize_round(std::vector<double> us, double seconds) {
  std::sort(us.begin(), us.end());
  auto stalls = us.end() - std::upper_bound(us.begin(), us.end(), 50'000.0);
  return {static_cast<double>(us.size()) / seconds, percentile(us, 0.5), percentile(us, 0.99),
          us.empty() ? 0.0 : us.back(), stalls};
}

template <typename T, typename F>
auto field(const std::vector<T>& rounds, F get) {
  std::vector<std::decay_t<std::invoke_result_t<F, const T&>>> out;
  for (const auto& r : rounds) out.push_back(get(r));
  return out;
}

double median_of(const std::vector<latency_round>& rounds, double latency_round::*member) {
  return summarize(field(rounds, [&](const latency_round& r) { return r.*member; })).median;
}

nlohmann::json latency_json(const std::vector<latency_round>& rounds, const std::string& rate) {
  nlohmann::json j;
  if (!rate.empty()) j[rate] = spread(field(rounds, [](const auto& r) { return r.per_second; }));
  j["p50_us"] = spread(field(rounds, [](const auto& r) { return r.p50_us; }));
  j["p99_us"] = spread(field(rounds, [](const auto& r) { return r.p99_us; }));
  j["max_us"] = spread(field(rounds, [](const auto& r) { return r.max_us; }));
  std::int64_t stalls = 0;
  for (const auto& r : rounds) stalls += r.over_50ms;
  j["samples_over_50ms"] = stalls;
  return j;
}

// ---- the payloads -------------------------------------------------------------------------------

// Message i: its index (8 bytes, little-endian), then bytes derived from it, so that a consumer
// can check that what it got is what a producer put.
void fill_payload(std::span<std::uint8_t> out, std::uint64_t i) {
  std::uint64_t x = i * 0x9E3779B97F4A7C15ULL + 42;
  for (std::size_t b = 0; b < out.size(); ++b) {
    if (b < 8) {
      out[b] = static_cast<std::uint8_t>(i >> (8 * b));
    } else {
      x ^= x >> 33;
      x *= 0xFF51AFD7ED558CCDULL;
      out[b] = static_cast<std::uint8_t>(x >> 56);
    }
  }
}

std::optional<std::uint64_t> payload_index(std::span<const std::uint8_t> payload) {
  if (payload.size() != payload_bytes) return std::nullopt;
  std::uint64_t i = 0;
  for (std::size_t b = 0; b < 8; ++b) i |= std::uint64_t{payload[b]} << (8 * b);
  std::array<std::uint8_t, payload_bytes> expected{};
  fill_payload(expected, i);
  if (!std::equal(expected.begin(), expected.end(), payload.begin())) return std::nullopt;
  return i;
}

// ---- ember
// ----------------------------------------------------------------------------------------

struct lock_round {
  latency_round pair, acquire, release;
};

lock_round measure_lock(const client& c, const std::string& name, size_type ops, size_type warmup) {
  auto lock = c.lock(name);
  fencing_token last = 0;
  std::vector<double> pair_us, acquire_us, release_us;
  pair_us.reserve(static_cast<std::size_t>(ops));
  acquire_us.reserve(static_cast<std::size_t>(ops));
  release_us.reserve(static_cast<std::size_t>(ops));
  auto once = [&](bool timed) {
    auto t0 = clock_type::now();
    auto lease = lock.acquire(10s, 10s);
    auto t1 = clock_type::now();
    lease.release();
    auto t2 = clock_type::now();
    // Each acquire issues a newer token; one that does not grow would defeat fencing.
    EMBER_EXPECTS(lease.token() > last, error,
                  "lock " + name + ": fencing token " + std::to_string(lease.token()) +
                      " issued after " + std::to_string(last));
    last = lease.token();
    if (!timed) return;
    pair_us.push_back(micros(t2 - t0));
    acquire_us.push_back(micros(t1 - t0));
    release_us.push_back(micros(t2 - t1));
  };
  for (size_type i = 0; i < warmup; ++i) once(false);
  auto start = clock_type::now();
  for (size_type i = 0; i < ops; ++i) once(true);
  auto seconds = seconds_since(start);
  return {summarize_round(std::move(pair_us), seconds),
          summarize_round(std::move(acquire_us), seconds),
          summarize_round(std::move(release_us), seconds)};
}

latency_round measure_kv(const client& c, const std::string& key, size_type ops, size_type warmup) {
  auto kv = c.kv();
  std::vector<std::uint8_t> value(payload_bytes);
  std::vector<double> pair_us;
  pair_us.reserve(static_cast<std::size_t>(ops));
  auto once = [&](size_type i, bool timed) {
    fill_payload(value, static_cast<std::uint64_t>(i));
    auto t0 = clock_type::now();
    auto version = kv.set(key, std::span<const std::uint8_t>(value));
    auto got = kv.get(key);
    auto t1 = clock_type::now();
    EMBER_EXPECTS(got && got->version == version && got->value == value, error,
                  "kv: key " + key + " read back another value or version than was written (" +
                      std::to_string(version) + ")");
    if (timed) pair_us.push_back(micros(t1 - t0));
  };
  for (size_type i = 0; i < warmup; ++i) once(i, false);
  auto start = clock_type::now();
  for (size_type i = 0; i < ops; ++i) once(i, true);
  auto seconds = seconds_since(start);
  (void)kv.erase(key);
  return summarize_round(std::move(pair_us), seconds);
}

// The first error of any thread; the others see stopped() and return. Shared by the producer
// and consumer threads, hence the mutex.
class first_error {
 public:
  void set(std::exception_ptr e) {
    std::lock_guard guard(_mutex);
    if (!_error) _error = std::move(e);
    _stopped = true;
  }
  [[nodiscard]] bool stopped() const { return _stopped.load(); }
  void rethrow() {
    std::lock_guard guard(_mutex);
    if (_error) std::rethrow_exception(_error);
  }

 private:
  std::mutex _mutex;
  std::exception_ptr _error;
  std::atomic<bool> _stopped{false};
};

struct queue_round {
  double seconds = 0, per_second = 0;
  std::uint64_t redelivered = 0;
  /// Every put call, and every get (ack_and_get) call that returned a message, of all clients:
  /// round trips under the full load of the other clients.
  latency_round put, get;
};

queue_round measure_queue(const client& admin_client, const std::string& address,
                          const client_options& co, const std::string& name, bool durable,
                          size_type messages) {
  queue_options qo;
  qo.capacity =
      std::clamp<std::uint64_t>(static_cast<std::uint64_t>(messages), 1, max_queue_capacity);
  qo.durable = durable;
  qo.max_message_bytes = payload_bytes;
  struct drop_on_exit {
    message_queue queue;
    ~drop_on_exit() {
      try {
        queue.drop();
      } catch (...) {  // the scheduler may be gone; it was only cleanup
      }
    }
  } admin{admin_client.queue(name)};
  admin.queue.create(qo);

  auto total = static_cast<std::uint64_t>(messages);
  std::atomic<std::uint64_t> acked{0}, index_sum{0}, redelivered{0};
  std::vector<clock_type::time_point> first_put(producers);
  clock_type::time_point last_ack;  // written by the consumer whose ack was the last one
  std::latch ready(producers + consumers), finished(producers + consumers);
  first_error failure;
  std::mutex latencies_mutex;  // guards the two below: each client adds its samples at its end
  std::vector<double> put_us, get_us;
  auto add_samples = [&](std::vector<double>& into, const std::vector<double>& samples) {
    std::lock_guard lock(latencies_mutex);
    into.insert(into.end(), samples.begin(), samples.end());
  };
  // One client per thread: each producer and consumer has a connection of its own, as separate
  // processes would, and none waits behind another's call on a shared connection. Each thread
  // connects before the clock starts (the coordination connection is made on first use, hence
  // the info()) and closes its client once all are done, all at once: closing one takes a few
  // hundred milliseconds.
  auto run = [&](auto body) {
    std::optional<client> own;
    try {
      own.emplace(client::connect(address, co));
      (void)own->queue(name).info();
    } catch (...) {
      failure.set(std::current_exception());
    }
    ready.arrive_and_wait();
    if (!failure.stopped()) {
      try {
        body(own->queue(name));
      } catch (...) {
        failure.set(std::current_exception());
      }
    }
    // No client closes before the last ack: closing must not overlap the timed window.
    finished.arrive_and_wait();
  };
  auto producer = [&](int p) {
    run([&](message_queue q) {
      std::vector<std::uint8_t> payload(payload_bytes);
      auto begin = total * static_cast<std::uint64_t>(p) / producers;
      auto end = total * static_cast<std::uint64_t>(p + 1) / producers;
      std::vector<double> samples;
      samples.reserve(end - begin);
      first_put[static_cast<std::size_t>(p)] = clock_type::now();
      for (auto i = begin; i < end && !failure.stopped(); ++i) {
        fill_payload(payload, i);
        auto t0 = clock_type::now();
        (void)q.put(std::span<const std::uint8_t>(payload));
        samples.push_back(micros(clock_type::now() - t0));
      }
      add_samples(put_us, samples);
    });
  };
  auto consumer = [&] {
    run([&](message_queue q) {
      auto seen = acked.load();
      auto progress = clock_type::now();
      std::optional<received_message> done;  // acknowledged with the next get
      std::vector<double> samples;
      while (!failure.stopped() && acked.load() < total) {
        auto t0 = clock_type::now();
        auto m = done ? q.ack_and_get(*done, 100ms) : q.get(100ms);
        if (m) samples.push_back(micros(clock_type::now() - t0));
        if (done) {
          if (acked.fetch_add(1) + 1 == total) last_ack = clock_type::now();
          done.reset();
        }
        if (!m) {
          if (acked.load() != seen) {
            seen = acked.load();
            progress = clock_type::now();
          }
          EMBER_EXPECTS(seconds_since(progress) < 60, timeout,
                        "queue " + name + ": no message acknowledged for 60 s, " +
                            std::to_string(seen) + " of " + std::to_string(total) + " done");
          continue;
        }
        auto index = payload_index(m->payload);
        EMBER_EXPECTS(index && *index < total, error,
                      "queue " + name + ": message " + std::to_string(m->id) +
                          " is not one the producers put");
        if (m->deliveries > 1) ++redelivered;
        index_sum += *index;
        if (acked.load() + 1 == total) {
          q.ack(*m);  // the last one: nothing more to get
          if (acked.fetch_add(1) + 1 == total) last_ack = clock_type::now();
        } else {
          done = std::move(m);
        }
      }
      if (done) {
        q.ack(*done);
        if (acked.fetch_add(1) + 1 == total) last_ack = clock_type::now();
      }
      add_samples(get_us, samples);
    });
  };
  {
    std::vector<std::jthread> threads;
    int started = 0;
    try {
      for (; started < producers; ++started) threads.emplace_back(producer, started);
      for (; started < producers + consumers; ++started) threads.emplace_back(consumer);
    } catch (...) {
      // Threads that never started must not leave the others waiting at the latch.
      failure.set(std::current_exception());
      ready.count_down(producers + consumers - started);
      finished.count_down(producers + consumers - started);
    }
  }
  failure.rethrow();
  auto first = *std::min_element(first_put.begin(), first_put.end());
  auto seconds = std::chrono::duration<double>(last_ack - first).count();
  // Every index once: their count and sum match those of 0..total-1.
  auto expected_sum = total % 2 == 0 ? total / 2 * (total - 1) : (total - 1) / 2 * total;
  EMBER_EXPECTS(acked.load() == total && index_sum.load() == expected_sum, error,
                "queue " + name + ": the consumers acknowledged other messages than were put");
  auto info = admin.queue.info();
  EMBER_EXPECTS(info.ready == 0 && info.in_flight == 0, error,
                "queue " + name + ": " + std::to_string(info.ready) + " ready and " +
                    std::to_string(info.in_flight) + " in-flight messages left over");
  return {seconds, static_cast<double>(total) / seconds, redelivered.load(),
          summarize_round(std::move(put_us), seconds), summarize_round(std::move(get_us), seconds)};
}

// ---- peers and ceilings ---------------------------------------------------------------------

/// What one durable record costs on the filesystem of `dir`: appends of a 64-byte record to a
/// file there, each followed by fdatasync, as the scheduler's log does before it answers a call
/// that wrote (a key/value set, a durable put; a lock acquire once per block of 1024 tokens).
latency_round measure_fdatasync(const fs::path& dir, size_type n) {
  auto path = dir / "fdatasync-probe";
  struct file {
    int fd;
    ~file() {
      if (fd >= 0) ::close(fd);
    }
  } f{::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644)};
  EMBER_EXPECTS(f.fd >= 0, error, "cannot create " + path.string() + ": " + std::strerror(errno));
  std::array<std::uint8_t, payload_bytes> record{};
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(n));
  auto start = clock_type::now();
  for (size_type i = 0; i < n; ++i) {
    fill_payload(record, static_cast<std::uint64_t>(i));
    auto t0 = clock_type::now();
    EMBER_EXPECTS(
        ::write(f.fd, record.data(), record.size()) == static_cast<ssize_t>(record.size()) &&
            ::fdatasync(f.fd) == 0,
        error, "cannot append to " + path.string() + ": " + std::strerror(errno));
    us.push_back(micros(clock_type::now() - t0));
  }
  auto seconds = seconds_since(start);
  std::error_code ec;
  fs::remove(path, ec);
  return summarize_round(std::move(us), seconds);
}

std::optional<fs::path> find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  std::stringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    auto candidate = fs::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

struct socket_fd {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  socket_fd() = default;
  socket_fd(const socket_fd&) = delete;
  socket_fd& operator=(const socket_fd&) = delete;
  ~socket_fd() {
    if (fd >= 0) ::close(fd);
  }
};

sockaddr_in loopback_address(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  return a;
}

// A free TCP port on 127.0.0.1, the kernel's pick. Another process could take it before the
// peer binds it; the peer then fails to start and is reported unavailable.
int free_loopback_port() {
  socket_fd s;
  auto a = loopback_address(0);
  socklen_t length = sizeof a;
  EMBER_EXPECTS(s.fd >= 0 && ::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                    ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&a), &length) == 0,
                error, "no free TCP port on 127.0.0.1");
  return ntohs(a.sin_port);
}

// True when a server on 127.0.0.1:port answers an inline PING with +PONG.
bool redis_answers(int port) {
  socket_fd s;
  if (s.fd < 0) return false;
  timeval limit{0, 500'000};
  ::setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  auto a = loopback_address(port);
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return false;
  const std::string ping = "PING\r\n";
  if (::send(s.fd, ping.data(), ping.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(ping.size()))
    return false;
  std::array<char, 64> reply{};
  auto n = ::recv(s.fd, reply.data(), reply.size(), 0);
  return n >= 5 && std::string(reply.data(), 5) == "+PONG";
}

/// One redis-benchmark test: requests per second and, where this version reports them,
/// latencies in microseconds (-1: not reported).
struct redis_op {
  double per_second = 0, p50_us = -1, p99_us = -1, max_us = -1;
};

std::vector<std::string> csv_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream ss(line);
  for (std::string cell; std::getline(ss, cell, ',');) {
    auto first = cell.find_first_not_of(" \t\r\"");
    auto last = cell.find_last_not_of(" \t\r\"");
    cells.push_back(first == std::string::npos ? "" : cell.substr(first, last - first + 1));
  }
  return cells;
}

std::optional<double> to_number(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return v;
}

// redis-benchmark's results by test name ("SET", "LPUSH"). Its --csv output has, since Redis 7,
// a header row naming the columns (test, rps, avg/min/p50/p95/p99/max_latency_ms); older versions
// print test and rps only, without a header. Failing both, the -q lines
// ("SET: 11883.54 requests per second, p50=0.079 msec") are read.
std::map<std::string, redis_op> parse_redis_benchmark(const std::string& text) {
  std::map<std::string, redis_op> results;
  std::vector<std::string> header = {"test", "rps"};
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] != '"') continue;  // progress lines and blank lines
    auto cells = csv_cells(line);
    if (cells.size() < 2) continue;
    if (cells[0] == "test") {
      header = cells;
      continue;
    }
    auto column = [&](const std::string& name) -> std::optional<double> {
      auto at = std::find(header.begin(), header.end(), name);
      auto i = static_cast<std::size_t>(at - header.begin());
      if (at == header.end() || i >= cells.size()) return std::nullopt;
      return to_number(cells[i]);
    };
    auto rps = column("rps");
    if (!rps) continue;
    redis_op op;
    op.per_second = *rps;
    if (auto v = column("p50_latency_ms")) op.p50_us = *v * 1000;
    if (auto v = column("p99_latency_ms")) op.p99_us = *v * 1000;
    if (auto v = column("max_latency_ms")) op.max_us = *v * 1000;
    results[cells[0]] = op;
  }
  if (!results.empty()) return results;
  std::regex quiet(
      R"(([A-Z][A-Z0-9_]*)[^:\r\n]*: ([0-9.]+) requests per second(?:, p50=([0-9.]+) msec)?)");
  for (std::sregex_iterator m(text.begin(), text.end(), quiet), end; m != end; ++m) {
    redis_op op;
    op.per_second = std::stod((*m)[2].str());
    if ((*m)[3].matched) op.p50_us = std::stod((*m)[3].str()) * 1000;
    results[(*m)[1].str()] = op;
  }
  return results;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

/// A redis-server on a free loopback port without persistence, killed on destruction; or the
/// reason there is none.
class redis_peer {
 public:
  explicit redis_peer(const fs::path& dir) : _dir(dir) {
    for (const char* program : {"redis-server", "redis-benchmark"}) {
      if (!find_program(program)) {
        _status = std::string("unavailable: ") + program +
                  " is not on PATH (Debian: apt-get install redis-server redis-tools)";
        return;
      }
    }
    try {
      child_process version({"redis-server", "--version"}, dir / "redis-version");
      (void)version.wait_exit(10s);
      std::smatch m;
      auto out = version.out();
      auto v = std::regex_search(out, m, std::regex(R"(v=(\S+))")) ? m[1].str() : first_line(out);
      _port = free_loopback_port();
      _server = std::make_unique<child_process>(
          std::vector<std::string>{"redis-server", "--port", std::to_string(_port), "--bind",
                                   "127.0.0.1", "--save", "", "--appendonly", "no"},
          dir / "redis-server");
      auto deadline = clock_type::now() + 10s;
      while (!redis_answers(_port)) {
        if (auto code = _server->wait_exit(0ms))
          throw error("redis-server exited with code " + std::to_string(*code) + ": " +
                      first_line(_server->out() + _server->err()));
        if (clock_type::now() > deadline)
          throw timeout("redis-server did not answer PING on port " + std::to_string(_port) +
                        " within 10 s");
        std::this_thread::sleep_for(20ms);
      }
      _status = "redis-server " + v;
    } catch (const std::exception& e) {
      fail(e.what());
    }
  }

  [[nodiscard]] bool available() const { return _server != nullptr; }
  [[nodiscard]] const std::string& status() const { return _status; }
  [[nodiscard]] int port() const { return _port; }
  /// Stops the peer: its results in this run are not reported.
  void fail(const std::string& why) {
    _server.reset();
    _status = "unavailable: " + why;
  }

  /// redis-benchmark against this server with `args`; throws ember::error when it fails or
  /// prints nothing this parser reads.
  std::map<std::string, redis_op> benchmark(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"redis-benchmark",     "-h",    "127.0.0.1",   "-p",
                                     std::to_string(_port), "--csv", "--precision", "3"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string command;
    for (const auto& a : argv) command += (command.empty() ? "" : " ") + a;
    child_process run(argv, _dir / ("redis-benchmark-" + std::to_string(_runs++)));
    auto code = run.wait_exit(10min);
    EMBER_EXPECTS(code && *code == 0, error,
                  command +
                      (code ? " exited with code " + std::to_string(*code)
                            : std::string(" ran for more than 10 minutes")) +
                      ": " + first_line(run.err()));
    auto results = parse_redis_benchmark(run.out());
    EMBER_EXPECTS(!results.empty(), error,
                  command + ": no results in its output: " + run.out().substr(0, 200));
    return results;
  }

 private:
  fs::path _dir;
  std::string _status;
  int _port = 0;
  int _runs = 0;
  std::unique_ptr<child_process> _server;
};

/// The transport's own round trip: `ucx_perftest -t ucp_am_lat` between two processes over tcp on
/// loopback with 64-byte messages. It prints the one-way latency (half the ping-pong) at the
/// median; this returns twice that in microseconds, or empty with `note` saying why.
std::optional<double> ucx_round_trip_us(size_type iterations, const fs::path& dir,
                                        std::string& note) {
  if (!find_program("ucx_perftest")) {
    note = "ucx_perftest is not on PATH (Debian: apt-get install ucx-utils)";
    return std::nullopt;
  }
  try {
    auto port = std::to_string(free_loopback_port());
    std::vector<std::string> env = {"UCX_TLS=tcp", "UCX_NET_DEVICES=lo"};
    child_process server({"ucx_perftest", "-p", port}, dir / "perftest-server", env);
    std::this_thread::sleep_for(300ms);
    child_process client(
        {"ucx_perftest", "127.0.0.1", "-p", port, "-t", "ucp_am_lat", "-s",
         std::to_string(payload_bytes), "-n", std::to_string(iterations), "-w", "1000"},
        dir / "perftest-client", env);
    auto code = client.wait_exit(120s);
    auto out = client.out();
    std::smatch m;
    // Final: iterations, latency 50.0%ile, average, overall (usec), ...
    if (!code || *code != 0 ||
        !std::regex_search(out, m, std::regex(R"(Final:\s+\d+\s+([\d.]+))"))) {
      note = "ucx_perftest failed: " + first_line(client.err());
      return std::nullopt;
    }
    return 2 * std::stod(m[1].str());
  } catch (const std::exception& e) {
    note = std::string("ucx_perftest unavailable: ") + e.what();
    return std::nullopt;
  }
}

// ---- the report -----------------------------------------------------------------------------

std::string ratio_cell(const char* what, const nlohmann::json& ratio, const char* of = "") {
  return ratio.is_number() ? std::string(what) + " x" + format("%.2f", ratio.get<double>()) + of
                           : "n/a";
}

nlohmann::json ratio_or_null(double a, double b) {
  return a > 0 && b > 0 ? nlohmann::json(a / b) : nlohmann::json(nullptr);
}

// The common report (bench_report.hpp): a stage and latency percentiles per kind of call, the
// workload's own figures (`own`) as its details.
bench_report common_report(
    const nlohmann::json& parameters, nlohmann::json own, const std::vector<latency_round>& pairs,
    const std::vector<latency_round>& acquires, const std::vector<latency_round>& releases,
    const std::vector<latency_round>& kvs, const std::vector<queue_round>& queues,
    const std::vector<queue_round>& durable_queues, const bench_locks_options& options,
    std::chrono::steady_clock::time_point started) {
  bench_report r("locks", parameters, started);
  r.not_measured("tiers", "locks, key/value and queues hold no partitions");
  r.not_measured("shuffle", "no shuffle: clients and the scheduler only");
  r.not_measured("residency", "no partitions are looked up");
  auto seconds_of = [](const std::vector<latency_round>& rounds, double count) {
    return field(rounds, [&](const latency_round& x) { return count / x.per_second; });
  };
  auto ops = static_cast<double>(options.ops);
  constexpr auto payload = static_cast<std::int64_t>(payload_bytes);
  r.add_stage({"lock acquire+release", seconds_of(pairs, ops), options.ops, 0,
               "one client: acquire (timeout 10 s, ttl 10 s) + release; rows are pairs"});
  r.add_stage({"kv set+get", seconds_of(kvs, ops), options.ops, options.ops * 2 * payload,
               "one client: set + get of one 64-byte value; rows are pairs"});
  auto queue_stage = [&](const std::string& name, const std::vector<queue_round>& rounds) {
    r.add_stage({name, field(rounds, [](const queue_round& x) { return x.seconds; }),
                 options.messages, options.messages * payload,
                 std::to_string(producers) + " producer and " + std::to_string(consumers) +
                     " consumer clients: put; get + ack; first put to last ack"});
  };
  queue_stage("queue", queues);
  queue_stage("durable queue", durable_queues);
  auto latency = [&](const std::string& name, const std::vector<latency_round>& rounds,
                     size_type count) {
    r.add_latency({name, count, field(rounds, [](const latency_round& x) { return x.p50_us; }),
                   field(rounds, [](const latency_round& x) { return x.p99_us; }),
                   field(rounds, [](const latency_round& x) { return x.max_us; })});
  };
  latency("lock acquire+release", pairs, options.ops);
  latency("lock acquire", acquires, options.ops);
  latency("lock release", releases, options.ops);
  latency("kv set+get", kvs, options.ops);
  auto queue_latency = [&](const std::string& name, const std::vector<queue_round>& rounds) {
    latency(name + " put (8 clients)", field(rounds, [](const queue_round& x) { return x.put; }),
            options.messages);
    latency(name + " get+ack (8 clients; waits while empty)",
            field(rounds, [](const queue_round& x) { return x.get; }), options.messages);
  };
  queue_latency("queue", queues);
  queue_latency("durable queue", durable_queues);
  r.details() = std::move(own);
  return r;
}

}  // namespace

int run_bench_locks(const bench_locks_options& options) {
  const auto started = clock_type::now();
  EMBER_EXPECTS(options.ops >= 1, invalid_input,
                "--ops: needs at least 1 round trip, got " + std::to_string(options.ops));
  EMBER_EXPECTS(options.messages >= 1, invalid_input,
                "--messages: needs at least 1 message, got " + std::to_string(options.messages));
  EMBER_EXPECTS(options.rounds >= 1, invalid_input,
                "--rounds: needs at least 1, got " + std::to_string(options.rounds));
  set_loopback_env();
  auto dir = fs::temp_directory_path() / ("ember-bench-locks-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  // Removed after the processes below are gone (declared first, destroyed last).
  struct remove_dir {
    fs::path path;
    ~remove_dir() {
      if (std::getenv("EMBER_BENCH_KEEP_LOGS") != nullptr) {
        std::cerr << "bench logs kept in " << path.string() << "\n";
        return;
      }
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } cleanup{dir};

  std::unique_ptr<child_process> scheduler;
  std::string address = options.scheduler;
  if (address.empty()) {
    scheduler = std::make_unique<child_process>(
        std::vector<std::string>{current_executable().string(), "scheduler", "--listen",
                                 "127.0.0.1:0", "--data", (dir / "data").string()},
        dir / "scheduler", loopback_env);
    address = scheduler->wait_for_output("listening on (\\S+)", 30s);
  }
  client_options co;
  co.token = options.token;
  auto c = client::connect(address, co);
  redis_peer redis(dir);

  auto warmup = std::min<size_type>(1000, options.ops);
  auto tag = "ember-bench-" + std::to_string(::getpid());
  std::cout << "locks: " << options.ops << " round trips per client, " << options.messages
            << " queue messages, " << options.rounds << " rounds; scheduler " << address
            << (scheduler ? " (started here)" : "") << "; peer " << redis.status() << std::endl;

  std::vector<lock_round> locks;
  std::vector<latency_round> kvs;
  std::vector<queue_round> queues, durable_queues;
  std::vector<redis_op> sets, gets, lpushes, rpops;
  std::vector<double> ucx_round_trips;
  std::vector<latency_round> fdatasyncs;
  std::string ucx_note;
  auto ops = std::to_string(options.ops);
  auto messages = std::to_string(options.messages);
  auto size = std::to_string(payload_bytes);
  auto peer = [&](const std::vector<std::string>& args, const std::vector<std::string>& tests,
                  std::vector<std::vector<redis_op>*> into) {
    if (!redis.available()) return;
    try {
      auto results = redis.benchmark(args);
      for (std::size_t i = 0; i < tests.size(); ++i) {
        auto it = results.find(tests[i]);
        EMBER_EXPECTS(it != results.end(), error, "redis-benchmark reported no " + tests[i]);
        if (!into.empty()) into[i]->push_back(it->second);
      }
    } catch (const std::exception& e) {
      redis.fail(e.what());
    }
  };
  // Warm-ups: the scheduler's queue path, and Redis with the same commands.
  (void)measure_queue(c, address, co, tag + ".warmup", false,
                      std::min<size_type>(options.messages, 2000));
  peer({"-c", "1", "-n", std::to_string(warmup), "-d", size, "-t", "set,get,lpush,rpop"},
       {"SET", "GET", "LPUSH", "RPOP"}, {});

  // Ember and the peer alternate within each round, so that both see the same machine.
  progress bar;
  for (int round = 1; round <= options.rounds; ++round) {
    bar.update("locks round " + std::to_string(round) + ": locks, key/value", 0, 2);
    locks.push_back(measure_lock(c, tag + ".lock", options.ops, warmup));
    kvs.push_back(measure_kv(c, tag + ".key", options.ops, warmup));
    fdatasyncs.push_back(measure_fdatasync(dir, std::min<size_type>(options.ops, 1000)));
    peer({"-c", "1", "-n", ops, "-d", size, "-t", "set,get"}, {"SET", "GET"}, {&sets, &gets});
    bar.update("locks round " + std::to_string(round) + ": queues", 1, 2);
    auto suffix = ".r" + std::to_string(round);
    queues.push_back(
        measure_queue(c, address, co, tag + ".queue" + suffix, false, options.messages));
    durable_queues.push_back(
        measure_queue(c, address, co, tag + ".durable" + suffix, true, options.messages));
    peer({"-c", std::to_string(producers + consumers), "-n", messages, "-d", size, "-t",
          "lpush,rpop"},
         {"LPUSH", "RPOP"}, {&lpushes, &rpops});
    if (auto rt = ucx_round_trip_us(std::max<size_type>(options.ops, 1000), dir, ucx_note))
      ucx_round_trips.push_back(*rt);
    bar.update("locks round " + std::to_string(round) + ": queues", 2, 2);
  }
  bar.finish();

  // ---- the numbers ----
  auto pairs = field(locks, [](const lock_round& r) { return r.pair; });
  auto acquires = field(locks, [](const lock_round& r) { return r.acquire; });
  auto releases = field(locks, [](const lock_round& r) { return r.release; });
  auto lock_p50 = median_of(pairs, &latency_round::p50_us);
  auto acquire_p50 = median_of(acquires, &latency_round::p50_us);
  auto kv_p50 = median_of(kvs, &latency_round::p50_us);
  auto queue_rate = summarize(field(queues, [](const queue_round& r) { return r.per_second; }));
  auto durable_rate =
      summarize(field(durable_queues, [](const queue_round& r) { return r.per_second; }));
  auto total_redelivered = [](const std::vector<queue_round>& rounds) {
    std::uint64_t n = 0;
    for (const auto& r : rounds) n += r.redelivered;
    return n;
  };

  nlohmann::json report;
  nlohmann::json parameters = {{"ops", options.ops},
                               {"warmup_ops", warmup},
                               {"messages", options.messages},
                               {"payload_bytes", payload_bytes},
                               {"producers", producers},
                               {"consumers", consumers},
                               {"rounds", options.rounds},
                               {"lock_timeout_ms", 10'000},
                               {"lock_ttl_ms", 10'000},
                               {"scheduler", address},
                               {"scheduler_started_by_bench", scheduler != nullptr},
                               {"transport", "UCX tcp over loopback"}};
  if (scheduler) parameters["scheduler_data_dir"] = (dir / "data").string();
  auto queue_json = [&](const std::vector<queue_round>& rounds, bool durable) {
    nlohmann::json j = {
        {"what", std::to_string(producers) + " producer and " + std::to_string(consumers) +
                     " consumer clients: put; get + ack; first put to last ack"},
        {"durable", durable},
        {"messages_per_second",
         spread(field(rounds, [](const queue_round& r) { return r.per_second; }))},
        {"seconds", spread(field(rounds, [](const queue_round& r) { return r.seconds; }))},
        {"redelivered", total_redelivered(rounds)}};
    if (durable)
      j["note"] = "each put returns once its message is on disk (fsync'd in group commits)";
    return j;
  };
  auto lock_json = latency_json(pairs, "round_trips_per_second");
  lock_json["what"] = "one client: acquire(timeout 10 s, ttl 10 s) + release()";
  lock_json["acquire"] = latency_json(acquires, "");
  lock_json["release"] = latency_json(releases, "");
  auto kv_json = latency_json(kvs, "round_trips_per_second");
  kv_json["what"] = "one client: set + get of one 64-byte value";
  report["results"] = {{"lock", lock_json},
                       {"kv", kv_json},
                       {"queue", queue_json(queues, false)},
                       {"durable_queue", queue_json(durable_queues, true)}};

  // Redis pairs. With one client, a SET then a GET take one after the other: pairs/s is
  // 1 / (1/SET + 1/GET). The queue comparison uses the same formula for LPUSH + RPOP, not
  // min(LPUSH, RPOP): redis-benchmark runs the two tests one after the other, and Redis serves
  // both commands on its single thread, so with 4 producers and 4 consumers at once each message
  // would cost the server one LPUSH and one RPOP in turn; min() would credit Redis with doing
  // both at full speed in parallel (up to 2x too generous). min() is in the report too. Note
  // that RPOP is at-most-once (no ack), while an ember message costs a put, a get and an ack.
  auto pair_rate = [](const redis_op& a, const redis_op& b) {
    return a.per_second > 0 && b.per_second > 0 ? 1 / (1 / a.per_second + 1 / b.per_second) : 0.0;
  };
  std::vector<double> set_get_pairs, push_pop_pairs, push_pop_min, two_round_trips_us;
  for (std::size_t i = 0; i < sets.size() && i < gets.size(); ++i) {
    set_get_pairs.push_back(pair_rate(sets[i], gets[i]));
    two_round_trips_us.push_back(sets[i].p50_us + gets[i].p50_us);
  }
  for (std::size_t i = 0; i < lpushes.size() && i < rpops.size(); ++i) {
    push_pop_pairs.push_back(pair_rate(lpushes[i], rpops[i]));
    push_pop_min.push_back(std::min(lpushes[i].per_second, rpops[i].per_second));
  }
  auto op_json = [](const std::vector<redis_op>& rounds) {
    return nlohmann::json{
        {"ops_per_second", spread(field(rounds, [](const redis_op& r) { return r.per_second; }))},
        {"p50_us", spread(field(rounds, [](const redis_op& r) { return r.p50_us; }))},
        {"p99_us", spread(field(rounds, [](const redis_op& r) { return r.p99_us; }))},
        {"max_us", spread(field(rounds, [](const redis_op& r) { return r.max_us; }))}};
  };
  bool have_redis = redis.available() && !sets.empty() && !lpushes.empty();
  double set_p50 = 0, set_get_p50 = 0, set_get_rate = 0, push_pop_rate = 0, push_pop_min_rate = 0;
  report["peer"] = redis.status();
  if (have_redis) {
    set_p50 = summarize(field(sets, [](const redis_op& r) { return r.p50_us; })).median;
    set_get_p50 = summarize(two_round_trips_us).median;
    set_get_rate = summarize(set_get_pairs).median;
    push_pop_rate = summarize(push_pop_pairs).median;
    push_pop_min_rate = summarize(push_pop_min).median;
    report["peer_results"] = {
        {"port", redis.port()},
        {"server", "redis-server --save '' --appendonly no (no persistence), loopback TCP"},
        {"set", op_json(sets)},
        {"get", op_json(gets)},
        {"set_get_pairs_per_second", spread(set_get_pairs)},
        {"set_plus_get_p50_us", spread(two_round_trips_us)},
        {"round_trip_commands", "redis-benchmark -c 1 -n " + ops + " -d " + size + " -t set,get"},
        {"lpush", op_json(lpushes)},
        {"rpop", op_json(rpops)},
        {"lpush_rpop_pairs_per_second", spread(push_pop_pairs)},
        {"min_of_lpush_rpop_per_second", spread(push_pop_min)},
        {"queue_commands", "redis-benchmark -c " + std::to_string(producers + consumers) + " -n " +
                               messages + " -d " + size + " -t lpush,rpop"}};
  } else {
    report["peer_results"] = nullptr;
  }
  double ucx_rt = ucx_round_trips.empty() ? 0 : summarize(ucx_round_trips).median;
  auto fdatasync_p50 = median_of(fdatasyncs, &latency_round::p50_us);
  nlohmann::json ucx = {{"what", "ucx_perftest -t ucp_am_lat (round trip = 2 x one-way p50)"},
                        {"tls", "tcp"},
                        {"message_bytes", payload_bytes},
                        {"round_trip_p50_us", ucx_round_trips.empty() ? nlohmann::json(nullptr)
                                                                      : spread(ucx_round_trips)}};
  if (!ucx_note.empty()) ucx["note"] = ucx_note;
  auto fdatasync = latency_json(fdatasyncs, "");
  fdatasync["what"] = "append of a 64-byte record + fdatasync, as the scheduler's log per write";
  fdatasync["dir"] = dir.string();
  if (!scheduler) fdatasync["note"] = "this bench's temporary folder, not the scheduler's data";
  report["ceilings"] = {{"ucx_round_trip", ucx}, {"fdatasync", fdatasync}};
  // Latency ratios are ember / peer (above 1: ember slower); rate ratios ember / peer (below 1:
  // ember slower). A Redis lock is SET NX PX to acquire and one more command to release: the
  // acquire+release pair compares with SET + GET p50, acquire alone with SET p50. Fencing tokens
  // are reserved in synced blocks, so an acquire is bound by the transport round trip; a
  // key/value set+get cannot beat two round trips plus one fdatasync (the set is on disk before
  // it answers), while this Redis runs without persistence.
  report["ratios"] = {
      {"lock_p50_vs_goal_100us", lock_p50 / lock_goal_us},
      {"lock_p50_vs_redis_set_p50", ratio_or_null(lock_p50, set_p50)},
      {"lock_p50_vs_redis_set_plus_get_p50", ratio_or_null(lock_p50, set_get_p50)},
      {"lock_acquire_p50_vs_redis_set_p50", ratio_or_null(acquire_p50, set_p50)},
      {"lock_acquire_p50_vs_ucx_round_trip", ratio_or_null(acquire_p50, ucx_rt)},
      {"kv_p50_vs_ucx_round_trips_plus_fdatasync",
       ratio_or_null(kv_p50, ucx_rt > 0 ? 2 * ucx_rt + fdatasync_p50 : 0.0)},
      {"kv_p50_vs_redis_set_plus_get_p50", ratio_or_null(kv_p50, set_get_p50)},
      {"queue_vs_redis_lpush_rpop_pairs", ratio_or_null(queue_rate.median, push_pop_rate)},
      {"queue_vs_redis_min_of_lpush_rpop", ratio_or_null(queue_rate.median, push_pop_min_rate)},
      {"durable_queue_vs_queue", ratio_or_null(durable_rate.median, queue_rate.median)}};
  const auto& ratios = report["ratios"];

  // ---- the table ----
  auto us = [](double v) { return v > 0 ? format("%.1f", v) : std::string("n/a"); };
  auto rate = [](double v, const char* unit) {
    return v > 0 ? format("%.0f", v) + " " + unit : std::string("n/a");
  };
  auto na = [&](const std::string& cell) { return have_redis ? cell : std::string("n/a"); };
  auto median = [](const std::vector<latency_round>& r, double latency_round::*m) {
    return median_of(r, m);
  };
  std::string peers = std::to_string(producers) + "+" + std::to_string(consumers) + " clients";
  std::vector<std::vector<std::string>> rows = {
      {"lock acquire+release, 1 client", rate(median(pairs, &latency_round::per_second), "/s"),
       us(lock_p50), us(median(pairs, &latency_round::p99_us)),
       us(median(pairs, &latency_round::max_us)), na("SET+GET " + rate(set_get_rate, "/s")),
       na(us(set_get_p50)), ratio_cell("p50", ratios["lock_p50_vs_redis_set_plus_get_p50"])},
      {"  acquire alone", "", us(acquire_p50), us(median(acquires, &latency_round::p99_us)),
       us(median(acquires, &latency_round::max_us)),
       na("SET " +
          rate(summarize(field(sets, [](const redis_op& r) { return r.per_second; })).median,
               "/s")),
       na(us(set_p50)), ratio_cell("p50", ratios["lock_acquire_p50_vs_redis_set_p50"])},
      {"kv set+get, 1 client", rate(median(kvs, &latency_round::per_second), "/s"), us(kv_p50),
       us(median(kvs, &latency_round::p99_us)), us(median(kvs, &latency_round::max_us)),
       na("SET+GET " + rate(set_get_rate, "/s")), na(us(set_get_p50)),
       ratio_cell("p50", ratios["kv_p50_vs_redis_set_plus_get_p50"])},
      {"queue, " + peers, rate(queue_rate.median, "msg/s"), "", "", "",
       na("LPUSH+RPOP " + rate(push_pop_rate, "msg/s")), "",
       ratio_cell("rate", ratios["queue_vs_redis_lpush_rpop_pairs"])},
      {"durable queue, " + peers, rate(durable_rate.median, "msg/s"), "", "", "",
       "(Redis not durable)", "",
       ratio_cell("rate", ratios["durable_queue_vs_queue"], " of non-durable")},
      {"UCX am round trip (ceiling)", "", us(ucx_rt), "", "", "", "",
       ratio_cell("acquire p50", ratios["lock_acquire_p50_vs_ucx_round_trip"])},
      {"64-byte append + fdatasync", "", us(fdatasync_p50),
       us(median(fdatasyncs, &latency_round::p99_us)),
       us(median(fdatasyncs, &latency_round::max_us)), "", "",
       ratio_cell("kv set+get p50", ratios["kv_p50_vs_ucx_round_trips_plus_fdatasync"],
                  " of both")}};
  std::cout << "\n";
  print_cells({"measure", "ember (median)", "p50 us", "p99 us", "max us", "redis (median)",
               "redis p50 us", "ratio"},
              rows, std::cout);
  std::cout << "\nlock acquire+release p50 " << us(lock_p50) << " us: x"
            << format("%.2f", lock_p50 / lock_goal_us) << " the goal of "
            << format("%.0f", lock_goal_us) << " us\n"
            << "peer: " << redis.status() << "\n"
            << "ratio: latencies ember/other (above 1: ember slower), rates ember/other (below "
               "1: ember slower); a queue message is a put and an ack_and_get (two round trips) in "
               "ember, LPUSH + RPOP in "
               "Redis\n"
            << "fencing tokens are reserved in synced blocks of 1024, so an acquire rarely "
               "waits for the disk; a key/value set does (one fdatasync); this Redis does not "
               "persist\n"
            << "durable queue: each put returns once its message is on disk (fsync'd in group "
               "commits)\n";
  if (!ucx_note.empty()) std::cout << "ceiling: " << ucx_note << "\n";
  auto stalls = [](const std::vector<latency_round>& r) {
    std::int64_t n = 0;
    for (const auto& x : r) n += x.over_50ms;
    return n;
  };
  if (auto n = stalls(pairs) + stalls(kvs); n > 0)
    std::cout << "lock and key/value round trips over 50 ms: " << n << "\n";
  auto common = common_report(parameters, report, pairs, acquires, releases, kvs, queues,
                              durable_queues, options, started);
  // A scheduler alone: the coordination services need no workers.
  common.set_cluster({{"kind", scheduler ? "local-processes" : "scheduler"},
                      {"address", address},
                      {"transport", scheduler ? "UCX tcp over loopback" : "UCX tcp"},
                      {"workers", nlohmann::json::array()}});
  if (have_redis) {
    common.add_comparison({"lock acquire+release", "redis SET + GET p50 (one client)", "peer",
                           "p50_us", lock_p50, set_get_p50});
    common.add_comparison({"lock acquire+release", "redis SET p50 (acquire alone)", "peer",
                           "p50_us", acquire_p50, set_p50});
    common.add_comparison(
        {"kv set+get", "redis SET + GET p50 (one client)", "peer", "p50_us", kv_p50, set_get_p50});
    common.add_comparison({"queue", "redis LPUSH + RPOP pairs (8 clients)", "peer",
                           "messages_per_second", queue_rate.median, push_pop_rate});
  } else {
    common.not_measured("redis", redis.status());
  }
  if (ucx_rt > 0) {
    common.add_comparison({"lock acquire+release", "UCX active-message round trip (acquire p50)",
                           "ceiling", "p50_us", acquire_p50, ucx_rt});
    common.add_comparison({"kv set+get", "2 UCX round trips + 1 fdatasync", "ceiling", "p50_us",
                           kv_p50, 2 * ucx_rt + fdatasync_p50});
  } else {
    common.not_measured("ucx_perftest", ucx_note);
  }
  if (fdatasync_p50 > 0)
    common.add_comparison({"durable queue", "the non-durable queue", "ceiling",
                           "messages_per_second", durable_rate.median, queue_rate.median});
  common.print_summary(std::cout);
  common.write(options.json_path, std::cout);
  return 0;
}

}  // namespace ember::cli
