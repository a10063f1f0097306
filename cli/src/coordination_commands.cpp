#include "coordination_commands.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <ember/host/error.hpp>
#include <ember/scheduler/client.hpp>

#include "cluster_flags.hpp"
#include "size_parser.hpp"
#include "table_printer.hpp"

extern char** environ;

namespace ember::cli {

using std::chrono::milliseconds;

struct coordination_commands::state {
  // Flags every command has. Only one command runs, so they all bind the same fields.
  std::string scheduler;
  std::string token_file;
  bool json = false;

  CLI::App* lock_acquire = nullptr;
  CLI::App* lock_release = nullptr;
  CLI::App* lock_ls = nullptr;
  CLI::App* queue_create = nullptr;
  CLI::App* queue_put = nullptr;
  CLI::App* queue_get = nullptr;
  CLI::App* queue_ls = nullptr;
  CLI::App* queue_drop = nullptr;
  CLI::App* topic_pub = nullptr;
  CLI::App* topic_sub = nullptr;
  CLI::App* kv_get = nullptr;
  CLI::App* kv_set = nullptr;
  CLI::App* kv_cas = nullptr;
  CLI::App* kv_rm = nullptr;
  CLI::App* kv_ls = nullptr;

  // Positionals and flags of the commands (each command reads the ones it declared).
  std::string name;  // lock, queue or topic name; key/value key; `ls` filter or prefix
  std::string text;  // message or value
  std::string file;
  std::string owner;
  std::int64_t ttl_ms = 10'000;
  std::int64_t timeout_ms = 10'000;
  std::int64_t permits = 1;
  std::int64_t hold_ms = 0;
  std::vector<std::string> command;
  std::string capacity;
  bool durable = false;
  std::int64_t visibility_ms = queue_options{}.visibility_timeout.count();
  std::string max_message_bytes;
  std::int64_t count = 1;      // queue get
  std::int64_t sub_count = 0;  // topic sub
  bool no_ack = false;
  std::int64_t buffer = 1024;
  std::string fence_lock;
  std::int64_t fence_token = 0;
  std::int64_t version = 0;
};

namespace {

// ---- flags and output ---------------------------------------------------------------------------

std::string default_scheduler() {
  const char* env = std::getenv("EMBER_SCHEDULER");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string("127.0.0.1:4242");
}

void add_common(CLI::App& cmd, coordination_commands::state& s) {
  cmd.add_option("--scheduler", s.scheduler,
                 "HOST:PORT of the scheduler (default: $EMBER_SCHEDULER, else 127.0.0.1:4242)");
  cmd.add_option("--token-file", s.token_file, "File holding the cluster token");
  cmd.add_flag("--json", s.json, "Print JSON on stdout");
}

milliseconds non_negative_ms(std::int64_t ms, const std::string& flag) {
  EMBER_EXPECTS(ms >= 0, invalid_input, flag + ": negative (" + std::to_string(ms) + " ms)");
  return milliseconds(ms);
}

client connect(const coordination_commands::state& s) {
  client_options options;
  if (!s.token_file.empty()) options.token = read_token_file(s.token_file);
  return client::connect(s.scheduler, options);
}

// Payloads are bytes; JSON shows them as text, invalid UTF-8 replaced.
void print_json(const nlohmann::json& value, int indent = 2) {
  std::cout << value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  std::cout.flush();
}

std::string as_text(const std::vector<std::uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }

// One message a line: the payload, and a newline unless it ends with one already.
void print_line(const std::string& payload) {
  std::cout << payload;
  if (payload.empty() || payload.back() != '\n') std::cout << '\n';
  std::cout.flush();
}

std::string read_all(std::istream& in) {
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// MESSAGE when given, else --file's bytes when given, else stdin.
std::string message_bytes(const coordination_commands::state& s, const CLI::App& cmd) {
  bool has_text = cmd.count("message") > 0;
  EMBER_EXPECTS(!(has_text && !s.file.empty()), invalid_input, "give MESSAGE or --file, not both");
  if (has_text) return s.text;
  if (!s.file.empty()) {
    std::ifstream in(s.file, std::ios::binary);
    EMBER_EXPECTS(in.good(), invalid_input, "--file: cannot read " + s.file);
    return read_all(in);
  }
  return read_all(std::cin);
}

std::string seconds_text(std::int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

std::optional<fence> fence_flags(const coordination_commands::state& s, const CLI::App& cmd) {
  bool has_token = cmd.count("--token") > 0;
  EMBER_EXPECTS(has_token == !s.fence_lock.empty(), invalid_input,
                "--lock and --token go together");
  if (!has_token) return std::nullopt;
  EMBER_EXPECTS(s.fence_token >= 0, invalid_input,
                "--token: negative (" + std::to_string(s.fence_token) + ")");
  return fence{s.fence_lock, static_cast<fencing_token>(s.fence_token)};
}

// ---- signals while a lock is held ---------------------------------------------------------------

// SIGINT, SIGTERM and SIGHUP while ember holds a lock for a command or --hold-ms: the command gets
// them (unless the terminal sent them to its process group already) and ember releases the lock
// before it exits, instead of leaving the lease to run out.
volatile std::sig_atomic_t g_signal = 0;
std::atomic<pid_t> g_child{-1};
static_assert(std::atomic<pid_t>::is_always_lock_free);

extern "C" void on_lock_signal(int sig, siginfo_t* info, void*) {
  g_signal = sig;
  pid_t child = g_child.load();
  // si_code > 0: the kernel sent it (a terminal's Ctrl-C), to the child's process group too.
  if (child > 0 && info != nullptr && info->si_code <= 0) ::kill(child, sig);
}

class signal_relay {
 public:
  signal_relay() {
    for (std::size_t i = 0; i < std::size(_signals); ++i) {
      struct sigaction old {};
      ::sigaction(_signals[i], nullptr, &old);
      // A signal ignored when ember started (nohup, a background job) stays ignored.
      if (old.sa_handler == SIG_IGN) continue;
      struct sigaction act {};
      act.sa_sigaction = on_lock_signal;
      act.sa_flags = SA_SIGINFO | SA_RESTART;
      sigemptyset(&act.sa_mask);
      if (::sigaction(_signals[i], &act, &_old[i]) == 0) _installed[i] = true;
    }
  }
  ~signal_relay() {
    for (std::size_t i = 0; i < std::size(_signals); ++i)
      if (_installed[i]) ::sigaction(_signals[i], &_old[i], nullptr);
  }
  signal_relay(const signal_relay&) = delete;
  signal_relay& operator=(const signal_relay&) = delete;

 private:
  static constexpr int _signals[3] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction _old[3]{};
  bool _installed[3] = {false, false, false};
};

// Runs `argv` with `env` added to this environment; its exit status (128 + the signal when one
// killed it), 127 when it could not be found, 126 when it could not be started.
int run_while_holding(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  std::vector<std::string> entries;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    bool replaced = false;
    for (const auto& mine : env)
      if (entry.compare(0, mine.find('=') + 1, mine, 0, mine.find('=') + 1) == 0) replaced = true;
    if (!replaced) entries.push_back(std::move(entry));
  }
  entries.insert(entries.end(), env.begin(), env.end());
  std::vector<char*> envp, args;
  for (auto& e : entries) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& a : argv_copy) args.push_back(a.data());
  args.push_back(nullptr);

  // The child starts with no signal blocked, whatever the thread that spawns it blocks.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::cout.flush();
  if (g_signal != 0) return 128 + g_signal;
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], nullptr, &attr, args.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    std::cerr << "ember: error: cannot run '" << argv[0] << "': " << std::strerror(rc) << "\n";
    return rc == ENOENT ? 127 : 126;
  }
  g_child.store(pid);
  // A signal that came while it started still reaches it.
  if (g_signal != 0) ::kill(pid, g_signal);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_child.store(-1);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// ---- lock ---------------------------------------------------------------------------------------

nlohmann::json lease_json(const lease& l) {
  return {{"name", l.name()},
          {"owner", l.owner()},
          {"token", l.token()},
          {"ttl_ms", static_cast<std::int64_t>(l.ttl().count())}};
}

// Gives the lock back after --hold-ms or a command: empty when it was still held, else what
// to tell the user (a renewal failed: the scheduler expired the lease).
std::optional<std::string> release_after_use(lease& l) {
  bool held = l.held();
  try {
    l.release();
  } catch (const invalid_input&) {
    held = false;
  }
  if (held) return std::nullopt;
  return "the lease on lock '" + l.name() + "' (owner " + l.owner() + ", token " +
         std::to_string(l.token()) +
         ") expired before its release: writes fenced with its token may have been refused";
}

// ember::timeout for a lock not acquired in time, naming its holders.
timeout lock_timeout(const client& c, const std::string& name, milliseconds waited) {
  std::string message =
      "lock '" + name + "' was not acquired within " + std::to_string(waited.count()) + " ms";
  for (const auto& info : c.locks()) {
    if (info.name != name || info.holders.empty()) continue;
    message += ": held by";
    for (std::size_t i = 0; i < info.holders.size(); ++i) {
      const auto& h = info.holders[i];
      message += (i == 0 ? " " : ", ") + h.owner + " (token " + std::to_string(h.token) +
                 ", expires in " + seconds_text(h.expires_in_ms) + ")";
    }
  }
  return timeout(message);
}

int lock_acquire(const coordination_commands::state& s) {
  auto wait = non_negative_ms(s.timeout_ms, "--timeout-ms");
  EMBER_EXPECTS(s.ttl_ms > 0, invalid_input,
                "--ttl-ms: must be positive (" + std::to_string(s.ttl_ms) + " ms)");
  EMBER_EXPECTS(s.permits >= 1 && s.permits <= 1'000'000, invalid_input,
                "--permits: must be 1..1000000 (" + std::to_string(s.permits) + ")");
  bool hold = s.lock_acquire->count("--hold-ms") > 0;
  auto hold_for = hold ? non_negative_ms(s.hold_ms, "--hold-ms") : milliseconds(0);
  EMBER_EXPECTS(!(hold && !s.command.empty()), invalid_input,
                "give --hold-ms or a COMMAND, not both");

  auto c = connect(s);
  auto acquired =
      c.lock(s.name, static_cast<int>(s.permits)).try_acquire(wait, milliseconds(s.ttl_ms));
  if (!acquired) throw lock_timeout(c, s.name, wait);
  lease& l = *acquired;
  // From here a signal releases the lock before ember exits (a Ctrl-C while waiting for the
  // lock just ends the wait).
  std::optional<signal_relay> relay;
  if (hold || !s.command.empty()) relay.emplace();

  if (!s.command.empty()) {
    // The command's stdout is ember's: nothing else is printed there.
    int status = run_while_holding(
        s.command, {"EMBER_LOCK_NAME=" + l.name(), "EMBER_LOCK_TOKEN=" + std::to_string(l.token()),
                    "EMBER_LOCK_OWNER=" + l.owner(), "EMBER_SCHEDULER=" + s.scheduler});
    if (auto lost = release_after_use(l)) std::cerr << "ember: warning: " << *lost << "\n";
    return status;
  }

  if (s.json) {
    auto out = lease_json(l);
    if (hold)
      out["hold_ms"] = static_cast<std::int64_t>(hold_for.count());
    else
      out["detached"] = true;
    print_json(out);
  } else {
    std::cout << "acquired lock " << l.name() << "\nowner  " << l.owner() << "\ntoken  "
              << l.token() << "\n";
    if (hold)
      std::cout << "holding it for " << hold_for.count() << " ms\n";
    else
      std::cout << "the lease stays until its ttl of " << l.ttl().count()
                << " ms runs out or `ember lock release " << l.name() << " --owner " << l.owner()
                << "`\n";
    std::cout.flush();
  }
  if (!hold) {
    l.detach();
    return 0;
  }
  auto until = std::chrono::steady_clock::now() + hold_for;
  while (g_signal == 0 && l.held() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::min(milliseconds(50), hold_for));
  if (auto lost = release_after_use(l)) throw error(*lost);
  if (g_signal != 0) return 128 + g_signal;
  if (!s.json) std::cout << "released lock " << l.name() << "\n";
  return 0;
}

int lock_release(const coordination_commands::state& s) {
  auto c = connect(s);
  c.lock(s.name).release(s.owner);
  if (s.json)
    print_json({{"name", s.name}, {"owner", s.owner}, {"released", true}});
  else
    std::cout << "released lock " << s.name << " (owner " << s.owner << ")\n";
  return 0;
}

int lock_ls(const coordination_commands::state& s) {
  auto c = connect(s);
  auto locks = c.locks();
  std::erase_if(locks, [&](const lock_info& l) { return !s.name.empty() && l.name != s.name; });
  if (s.json) {
    auto out = nlohmann::json::array();
    for (const auto& l : locks) {
      auto holders = nlohmann::json::array();
      for (const auto& h : l.holders)
        holders.push_back(
            {{"owner", h.owner}, {"token", h.token}, {"expires_in_ms", h.expires_in_ms}});
      out.push_back({{"name", l.name},
                     {"permits", l.permits},
                     {"holders", holders},
                     {"waiters", l.waiters},
                     {"newest_token", l.newest_token}});
    }
    print_json(out);
    return 0;
  }
  if (locks.empty()) {
    std::cout << (s.name.empty() ? "no locks\n" : "no lock " + s.name + "\n");
    return 0;
  }
  // One row per holder; a lock nobody holds gets one row of its own.
  std::vector<std::vector<std::string>> rows;
  for (const auto& l : locks) {
    std::vector<std::string> tail = {std::to_string(l.waiters), std::to_string(l.newest_token)};
    if (l.holders.empty()) {
      rows.push_back({l.name, std::to_string(l.permits), "-", "-", "-", tail[0], tail[1]});
      continue;
    }
    for (const auto& h : l.holders)
      rows.push_back({l.name, std::to_string(l.permits), h.owner, std::to_string(h.token),
                      seconds_text(h.expires_in_ms), tail[0], tail[1]});
  }
  print_cells({"lock", "permits", "holder", "token", "expires in", "waiters", "newest token"}, rows,
              std::cout);
  return 0;
}

// ---- queue --------------------------------------------------------------------------------------

nlohmann::json queue_json(const queue_info& q) {
  return {{"name", q.name},
          {"capacity", q.options.capacity},
          {"durable", q.options.durable},
          {"visibility_ms", static_cast<std::int64_t>(q.options.visibility_timeout.count())},
          {"max_message_bytes", q.options.max_message_bytes},
          {"ready", q.ready},
          {"in_flight", q.in_flight},
          {"bytes", q.bytes},
          {"accepted", q.accepted},
          {"acked", q.acked},
          {"redelivered", q.redelivered}};
}

int queue_create(const coordination_commands::state& s) {
  queue_options options;
  if (!s.capacity.empty())
    options.capacity = static_cast<std::uint64_t>(parse_count(s.capacity, "--capacity"));
  options.durable = s.durable;
  options.visibility_timeout = non_negative_ms(s.visibility_ms, "--visibility-ms");
  if (!s.max_message_bytes.empty())
    options.max_message_bytes =
        static_cast<std::uint64_t>(parse_size(s.max_message_bytes, "--max-message-bytes"));
  auto c = connect(s);
  auto q = c.queue(s.name);
  q.create(options);
  if (s.json)
    print_json(queue_json(q.info()));
  else
    std::cout << "queue " << s.name << " (capacity " << options.capacity
              << (options.durable ? ", durable" : "") << ")\n";
  return 0;
}

int queue_put(const coordination_commands::state& s) {
  auto wait = non_negative_ms(s.timeout_ms, "--timeout-ms");
  auto payload = message_bytes(s, *s.queue_put);
  auto c = connect(s);
  auto id = c.queue(s.name).put(payload, wait);
  if (s.json)
    print_json({{"queue", s.name}, {"id", id}, {"bytes", payload.size()}});
  else
    std::cout << "put message " << id << " on queue " << s.name << "\n";
  return 0;
}

int queue_get(const coordination_commands::state& s) {
  auto wait = non_negative_ms(s.timeout_ms, "--timeout-ms");
  EMBER_EXPECTS(s.count >= 1, invalid_input,
                "--count: must be at least 1 (" + std::to_string(s.count) + ")");
  auto c = connect(s);
  auto q = c.queue(s.name);
  // Acknowledged only once printed: a consumer killed in between leaves them to be delivered
  // again after the visibility timeout.
  std::vector<received_message> got;
  auto out = nlohmann::json::array();
  while (static_cast<std::int64_t>(got.size()) < s.count) {
    auto m = q.get(wait);
    if (!m) break;
    if (s.json) {
      out.push_back(
          {{"id", m->id}, {"deliveries", m->deliveries}, {"payload", as_text(m->payload)}});
    } else {
      print_line(as_text(m->payload));
      if (!s.no_ack) q.ack(*m);
    }
    got.push_back(std::move(*m));
  }
  if (got.empty())
    throw timeout("no message on queue '" + s.name + "' within " + std::to_string(wait.count()) +
                  " ms");
  if (s.json) {
    print_json(out);
    if (!s.no_ack)
      for (const auto& m : got) q.ack(m);
  }
  return 0;
}

int queue_ls(const coordination_commands::state& s) {
  auto c = connect(s);
  auto queues = c.queues();
  if (s.json) {
    auto out = nlohmann::json::array();
    for (const auto& q : queues) out.push_back(queue_json(q));
    print_json(out);
    return 0;
  }
  if (queues.empty()) {
    std::cout << "no queues\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  rows.reserve(queues.size());
  for (const auto& q : queues)
    rows.push_back({q.name, q.options.durable ? "yes" : "no", std::to_string(q.ready),
                    std::to_string(q.in_flight), std::to_string(q.options.capacity),
                    std::to_string(q.bytes), std::to_string(q.accepted), std::to_string(q.acked),
                    std::to_string(q.redelivered),
                    seconds_text(q.options.visibility_timeout.count())});
  print_cells({"queue", "durable", "ready", "in flight", "capacity", "bytes", "accepted", "acked",
               "redelivered", "visibility"},
              rows, std::cout);
  return 0;
}

int queue_drop(const coordination_commands::state& s) {
  auto c = connect(s);
  c.queue(s.name).drop();
  if (s.json)
    print_json({{"queue", s.name}, {"dropped", true}});
  else
    std::cout << "dropped queue " << s.name << "\n";
  return 0;
}

// ---- topic --------------------------------------------------------------------------------------

int topic_pub(const coordination_commands::state& s) {
  auto payload = message_bytes(s, *s.topic_pub);
  auto c = connect(s);
  auto reached = c.topic(s.name).publish(payload);
  if (s.json)
    print_json({{"topic", s.name}, {"subscribers", reached}});
  else
    std::cout << "published to " << reached << " subscriber(s) of topic " << s.name << "\n";
  return 0;
}

int topic_sub(const coordination_commands::state& s) {
  EMBER_EXPECTS(s.sub_count >= 0, invalid_input,
                "--count: negative (" + std::to_string(s.sub_count) + ")");
  EMBER_EXPECTS(s.buffer >= 1 && s.buffer <= 1'000'000, invalid_input,
                "--buffer: must be 1..1000000 (" + std::to_string(s.buffer) + ")");
  bool idle_limit = s.topic_sub->count("--timeout-ms") > 0;
  auto wait = idle_limit ? non_negative_ms(s.timeout_ms, "--timeout-ms") : milliseconds(1000);
  auto c = connect(s);
  auto sub = c.topic(s.name).subscribe(static_cast<std::uint32_t>(s.buffer));
  std::int64_t received = 0;
  while (s.sub_count == 0 || received < s.sub_count) {
    auto m = sub.next(wait);
    if (!m) {
      if (idle_limit) break;
      continue;
    }
    ++received;
    if (m->lost_before > 0)
      std::cerr << "ember: topic " << s.name << ": lost " << m->lost_before
                << " message(s) before this one (the subscriber's buffer of " << s.buffer
                << " was full)\n";
    if (s.json)
      print_json({{"topic", m->topic}, {"payload", m->text()}, {"lost_before", m->lost_before}},
                 -1);
    else
      print_line(m->text());
  }
  if (sub.lost() > 0)
    std::cerr << "ember: topic " << s.name << ": " << sub.lost() << " message(s) lost in all\n";
  if (s.sub_count > 0 && received < s.sub_count)
    throw timeout("topic '" + s.name + "': " + std::to_string(received) + " of " +
                  std::to_string(s.sub_count) + " message(s), then none within " +
                  std::to_string(wait.count()) + " ms");
  return 0;
}

// ---- key/value ----------------------------------------------------------------------------------

// "absent" or "at version V", for messages about a write that did not happen.
std::string current_state(const client& c, const std::string& key, std::uint64_t& version) {
  auto item = c.kv().get(key);
  version = item ? item->version : 0;
  return item ? "is at version " + std::to_string(item->version) : "does not exist (version 0)";
}

int kv_get(const coordination_commands::state& s) {
  auto c = connect(s);
  auto item = c.kv().get(s.name);
  if (!item) throw error("no key '" + s.name + "'");
  if (s.json)
    print_json({{"key", item->key}, {"version", item->version}, {"value", item->text()}});
  else
    print_line(item->text());
  return 0;
}

int kv_set(const coordination_commands::state& s) {
  auto guard = fence_flags(s, *s.kv_set);
  auto c = connect(s);
  auto version = c.kv().set(s.name, s.text, guard);
  if (s.json)
    print_json({{"key", s.name}, {"version", version}});
  else
    std::cout << "set " << s.name << " (version " << version << ")\n";
  return 0;
}

int kv_cas(const coordination_commands::state& s) {
  EMBER_EXPECTS(s.version >= 0, invalid_input,
                "EXPECTED_VERSION: negative (" + std::to_string(s.version) + ")");
  auto guard = fence_flags(s, *s.kv_cas);
  auto expected = static_cast<std::uint64_t>(s.version);
  auto c = connect(s);
  std::span<const std::uint8_t> value(reinterpret_cast<const std::uint8_t*>(s.text.data()),
                                      s.text.size());
  auto version = c.kv().compare_and_set(s.name, expected, value, guard);
  if (version) {
    if (s.json)
      print_json({{"key", s.name}, {"swapped", true}, {"version", *version}});
    else
      std::cout << "set " << s.name << " (version " << *version << ")\n";
    return 0;
  }
  std::uint64_t current = 0;
  auto state = current_state(c, s.name, current);
  if (s.json) print_json({{"key", s.name}, {"swapped", false}, {"version", current}});
  throw error("key '" + s.name + "' " + state + ", not at version " + std::to_string(expected) +
              ": not set");
}

int kv_rm(const coordination_commands::state& s) {
  std::optional<std::uint64_t> expected;
  if (s.kv_rm->count("--version") > 0) {
    EMBER_EXPECTS(s.version >= 0, invalid_input,
                  "--version: negative (" + std::to_string(s.version) + ")");
    expected = static_cast<std::uint64_t>(s.version);
  }
  auto guard = fence_flags(s, *s.kv_rm);
  auto c = connect(s);
  if (c.kv().erase(s.name, expected, guard)) {
    if (s.json)
      print_json({{"key", s.name}, {"removed", true}});
    else
      std::cout << "removed " << s.name << "\n";
    return 0;
  }
  std::uint64_t current = 0;
  auto state = current_state(c, s.name, current);
  if (s.json) print_json({{"key", s.name}, {"removed", false}, {"version", current}});
  throw error("key '" + s.name + "' " + state +
              (expected ? ", not at version " + std::to_string(*expected) : std::string()) +
              ": not removed");
}

int kv_ls(const coordination_commands::state& s) {
  auto c = connect(s);
  auto items = c.kv().list(s.name);
  if (s.json) {
    auto out = nlohmann::json::array();
    for (const auto& item : items) out.push_back({{"key", item.key}, {"version", item.version}});
    print_json(out);
    return 0;
  }
  if (items.empty()) {
    std::cout << (s.name.empty() ? "no keys\n" : "no keys starting with " + s.name + "\n");
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  rows.reserve(items.size());
  for (const auto& item : items) rows.push_back({item.key, std::to_string(item.version)});
  print_cells({"key", "version"}, rows, std::cout);
  return 0;
}

}  // namespace

// ---- the command tree ---------------------------------------------------------------------------

coordination_commands::coordination_commands(CLI::App& app) : _state(std::make_unique<state>()) {
  auto& s = *_state;
  s.scheduler = default_scheduler();
  auto leaf = [&](CLI::App* group, const char* name, const char* help) {
    auto* cmd = group->add_subcommand(name, help);
    add_common(*cmd, s);
    return cmd;
  };

  auto* lock = app.add_subcommand("lock", "Locks and semaphores with fencing tokens");
  lock->require_subcommand(1);
  s.lock_acquire = leaf(lock, "acquire",
                        "Acquire a lock; run COMMAND while holding it, or hold it --hold-ms, or "
                        "leave the lease until its ttl");
  s.lock_acquire->add_option("name", s.name, "The lock")->required();
  s.lock_acquire->add_option("--ttl-ms", s.ttl_ms, "Lease length, renewed while held")
      ->capture_default_str();
  s.lock_acquire->add_option("--timeout-ms", s.timeout_ms, "How long to wait for it")
      ->capture_default_str();
  s.lock_acquire->add_option("--permits", s.permits, "Holders at once (a semaphore when > 1)")
      ->capture_default_str();
  s.lock_acquire->add_option("--hold-ms", s.hold_ms, "Hold it this long, then release");
  s.lock_acquire->add_option("command", s.command,
                             "After --: run this while holding the lock, with EMBER_LOCK_NAME, "
                             "EMBER_LOCK_TOKEN and EMBER_LOCK_OWNER set; exit with its status");
  s.lock_release = leaf(lock, "release", "Release a lease by its owner");
  s.lock_release->add_option("name", s.name, "The lock")->required();
  s.lock_release->add_option("--owner", s.owner, "The lease's owner (from `lock acquire`)")
      ->required();
  s.lock_ls = leaf(lock, "ls", "Locks, their holders and waiters");
  s.lock_ls->add_option("name", s.name, "Only this lock");

  auto* queue = app.add_subcommand("queue", "Named bounded FIFO queues");
  queue->require_subcommand(1);
  s.queue_create = leaf(queue, "create", "Create a queue (again with the same options: no-op)");
  s.queue_create->add_option("name", s.name, "The queue")->required();
  s.queue_create->add_option("--capacity", s.capacity, "Messages it holds at most (default 10000)");
  s.queue_create->add_flag("--durable", s.durable, "Keep its messages across scheduler restarts");
  s.queue_create
      ->add_option("--visibility-ms", s.visibility_ms,
                   "Redeliver a message not acknowledged this long after its delivery")
      ->capture_default_str();
  s.queue_create->add_option("--max-message-bytes", s.max_message_bytes,
                             "Largest message, e.g. 4096 or 1MiB (default 1 MiB)");
  s.queue_put = leaf(queue, "put", "Append a message: MESSAGE, --file or stdin");
  s.queue_put->add_option("name", s.name, "The queue")->required();
  s.queue_put->add_option("message", s.text, "The message text");
  s.queue_put->add_option("--file", s.file, "Send this file's bytes");
  s.queue_put->add_option("--timeout-ms", s.timeout_ms, "How long to wait for room")
      ->capture_default_str();
  s.queue_get = leaf(queue, "get", "Take messages, print them a line each, acknowledge them");
  s.queue_get->add_option("name", s.name, "The queue")->required();
  s.queue_get->add_option("--timeout-ms", s.timeout_ms, "How long to wait for each message")
      ->capture_default_str();
  s.queue_get->add_option("--count", s.count, "Messages to take at most")->capture_default_str();
  s.queue_get->add_flag("--no-ack", s.no_ack,
                        "Do not acknowledge (redelivered after the visibility timeout)");
  s.queue_ls = leaf(queue, "ls", "Queues and their messages");
  s.queue_drop = leaf(queue, "drop", "Delete a queue and its messages");
  s.queue_drop->add_option("name", s.name, "The queue")->required();

  auto* topic = app.add_subcommand("topic", "Publish/subscribe topics");
  topic->require_subcommand(1);
  s.topic_pub = leaf(topic, "pub", "Publish a message: MESSAGE or stdin");
  s.topic_pub->add_option("name", s.name, "The topic")->required();
  s.topic_pub->add_option("message", s.text, "The message text");
  s.topic_sub = leaf(topic, "sub", "Print a topic's messages a line each as they come");
  s.topic_sub->add_option("name", s.name, "The topic")->required();
  s.topic_sub->add_option("--count", s.sub_count, "Stop after this many messages (0: never)");
  s.topic_sub->add_option("--timeout-ms", s.timeout_ms, "Stop after this long without a message");
  s.topic_sub->add_option("--buffer", s.buffer, "Messages buffered before the oldest is lost")
      ->capture_default_str();

  auto* kv = app.add_subcommand("kv", "The versioned key/value store");
  kv->require_subcommand(1);
  auto add_fence = [&](CLI::App* cmd) {
    cmd->add_option("--lock", s.fence_lock, "Fence the write with this lock's token");
    cmd->add_option("--token", s.fence_token, "The fencing token (with --lock)");
  };
  s.kv_get = leaf(kv, "get", "Print a key's value");
  s.kv_get->add_option("key", s.name, "The key")->required();
  s.kv_set = leaf(kv, "set", "Write a key");
  s.kv_set->add_option("key", s.name, "The key")->required();
  s.kv_set->add_option("value", s.text, "The value")->required();
  add_fence(s.kv_set);
  s.kv_cas = leaf(kv, "cas", "Write a key if it is at EXPECTED_VERSION (0: absent)");
  s.kv_cas->add_option("key", s.name, "The key")->required();
  s.kv_cas->add_option("expected_version", s.version, "The version it must be at")->required();
  s.kv_cas->add_option("value", s.text, "The value")->required();
  add_fence(s.kv_cas);
  s.kv_rm = leaf(kv, "rm", "Remove a key");
  s.kv_rm->add_option("key", s.name, "The key")->required();
  s.kv_rm->add_option("--version", s.version, "Only when at this version");
  add_fence(s.kv_rm);
  s.kv_ls = leaf(kv, "ls", "Keys and their versions");
  s.kv_ls->add_option("prefix", s.name, "Only keys starting with this");
}

coordination_commands::~coordination_commands() = default;

std::optional<int> coordination_commands::run() {
  auto& s = *_state;
  if (*s.lock_acquire) return lock_acquire(s);
  if (*s.lock_release) return lock_release(s);
  if (*s.lock_ls) return lock_ls(s);
  if (*s.queue_create) return queue_create(s);
  if (*s.queue_put) return queue_put(s);
  if (*s.queue_get) return queue_get(s);
  if (*s.queue_ls) return queue_ls(s);
  if (*s.queue_drop) return queue_drop(s);
  if (*s.topic_pub) return topic_pub(s);
  if (*s.topic_sub) return topic_sub(s);
  if (*s.kv_get) return kv_get(s);
  if (*s.kv_set) return kv_set(s);
  if (*s.kv_cas) return kv_cas(s);
  if (*s.kv_rm) return kv_rm(s);
  if (*s.kv_ls) return kv_ls(s);
  return std::nullopt;
}

}  // namespace ember::cli
