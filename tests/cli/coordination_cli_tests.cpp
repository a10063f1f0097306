// `ember lock`, `ember queue`, `ember topic` and `ember kv` as scripts use them: real `ember`
// processes against one real scheduler process, JSON on stdout, messages and exit codes.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/paths.hpp"
#include "common/processes.hpp"
#include "common/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct run_result {
  int status = -1;
  std::string out;  // stdout
  std::string err;  // stderr
  [[nodiscard]] nlohmann::json json() const { return nlohmann::json::parse(out); }
  [[nodiscard]] std::string both() const { return "stdout: " + out + "\nstderr: " + err; }
};

class coordination_cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ember::test::cluster_spec spec;
    spec.workers = 0;
    _cluster = std::make_unique<ember::test::local_cluster>(spec);
  }
  static void TearDownTestSuite() { _cluster.reset(); }

  /// Runs `ember ARGS --scheduler <the test's scheduler>` through the shell (ARGS is shell
  /// text), with `stdin_text` on its standard input. ember_raw: without --scheduler, after the
  /// shell's variable assignments `env`.
  run_result ember(const std::string& args, const std::string& stdin_text = "") {
    // Before a `--` that starts a command to run: after it, the flag would be the command's.
    auto flag = " --scheduler " + _cluster->address;
    auto dashes = args.find(" -- ");
    return ember_raw(dashes == std::string::npos
                         ? args + flag
                         : args.substr(0, dashes) + flag + args.substr(dashes),
                     stdin_text);
  }
  run_result ember_raw(const std::string& args, const std::string& stdin_text = "",
                       const std::string& env = "") {
    auto in = _dir.write("stdin", stdin_text);
    auto err = _dir.path() / "stderr";
    std::string cmd = env + " " + ember::test::ember_executable().string() + " " + args + " <" +
                      in.string() + " 2>" + err.string();
    run_result r;
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    while (std::size_t n = fread(buf, 1, sizeof(buf), p)) r.out.append(buf, n);
    int status = pclose(p);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.err = ember::test::read_file(err);
    return r;
  }
  /// `ember ARGS` as a background process (killed when the test ends).
  std::unique_ptr<ember::child_process> ember_background(std::vector<std::string> args,
                                                         const std::string& log_name) {
    args.insert(args.begin(), ember::test::ember_executable().string());
    args.push_back("--scheduler");
    args.push_back(_cluster->address);
    return std::make_unique<ember::child_process>(args, _dir.path() / log_name);
  }

  static std::unique_ptr<ember::test::local_cluster> _cluster;
  ember::test::temp_dir _dir{"ember-coordination-cli"};
};

std::unique_ptr<ember::test::local_cluster> coordination_cli::_cluster;

TEST_F(coordination_cli, kv_set_get_cas_ls_and_rm_round_trip_as_json) {
  auto set = ember("kv set cli.kv.a 'first value' --json");
  ASSERT_EQ(set.status, 0) << set.both();
  EXPECT_EQ(set.json()["version"], 1);
  ASSERT_EQ(ember("kv set cli.kv.b other --json").status, 0);

  auto get = ember("kv get cli.kv.a --json");
  ASSERT_EQ(get.status, 0) << get.both();
  EXPECT_EQ(get.json()["value"], "first value");
  EXPECT_EQ(get.json()["version"], 1);
  auto plain = ember("kv get cli.kv.a");
  EXPECT_EQ(plain.out, "first value\n");

  auto cas = ember("kv cas cli.kv.a 1 second --json");
  ASSERT_EQ(cas.status, 0) << cas.both();
  EXPECT_TRUE(cas.json()["swapped"].get<bool>());
  EXPECT_EQ(cas.json()["version"], 2);
  auto stale = ember("kv cas cli.kv.a 1 third --json");
  EXPECT_EQ(stale.status, 1) << stale.both();
  EXPECT_FALSE(stale.json()["swapped"].get<bool>());
  EXPECT_EQ(stale.json()["version"], 2);
  EXPECT_NE(stale.err.find("ember: error: key 'cli.kv.a' is at version 2, not at version 1"),
            std::string::npos)
      << stale.err;
  EXPECT_EQ(ember("kv get cli.kv.a").out, "second\n");
  auto create = ember("kv cas cli.kv.c 0 new --json");
  ASSERT_EQ(create.status, 0) << create.both();
  EXPECT_EQ(create.json()["version"], 1);

  auto ls = ember("kv ls cli.kv. --json");
  ASSERT_EQ(ls.status, 0) << ls.both();
  auto keys = ls.json();
  ASSERT_EQ(keys.size(), 3u) << ls.out;
  EXPECT_EQ(keys[0]["key"], "cli.kv.a");
  EXPECT_EQ(keys[0]["version"], 2);
  EXPECT_EQ(keys[2]["key"], "cli.kv.c");
  auto table = ember("kv ls cli.kv.");
  EXPECT_NE(table.out.find("cli.kv.b"), std::string::npos) << table.out;

  auto wrong_rm = ember("kv rm cli.kv.a --version 1");
  EXPECT_EQ(wrong_rm.status, 1) << wrong_rm.both();
  EXPECT_NE(wrong_rm.err.find("is at version 2"), std::string::npos) << wrong_rm.err;
  ASSERT_EQ(ember("kv rm cli.kv.a --version 2").status, 0);
  auto gone = ember("kv get cli.kv.a");
  EXPECT_EQ(gone.status, 1) << gone.both();
  EXPECT_NE(gone.err.find("ember: error: no key 'cli.kv.a'"), std::string::npos) << gone.err;
}

TEST_F(coordination_cli, queue_create_put_get_and_ls) {
  ASSERT_EQ(ember("queue create cli.q --capacity 10 --visibility-ms 5000").status, 0);
  auto put = ember("queue put cli.q 'message one' --json");
  ASSERT_EQ(put.status, 0) << put.both();
  auto first_id = put.json()["id"].get<std::uint64_t>();
  auto file = _dir.write("payload", "from a file");
  ASSERT_EQ(ember("queue put cli.q --file " + file.string()).status, 0);
  ASSERT_EQ(ember("queue put cli.q", "from stdin").status, 0);

  auto ls = ember("queue ls --json");
  ASSERT_EQ(ls.status, 0) << ls.both();
  bool listed = false;
  for (const auto& q : ls.json()) {
    if (q["name"] != "cli.q") continue;
    listed = true;
    EXPECT_EQ(q["ready"], 3);
    EXPECT_EQ(q["capacity"], 10);
    EXPECT_EQ(q["visibility_ms"], 5000);
  }
  EXPECT_TRUE(listed) << ls.out;

  auto one = ember("queue get cli.q");
  ASSERT_EQ(one.status, 0) << one.both();
  EXPECT_EQ(one.out, "message one\n");
  auto two = ember("queue get cli.q --count 5 --timeout-ms 300 --json");
  ASSERT_EQ(two.status, 0) << two.both();
  auto messages = two.json();
  ASSERT_EQ(messages.size(), 2u) << two.out;
  EXPECT_EQ(messages[0]["payload"], "from a file");
  EXPECT_EQ(messages[1]["payload"], "from stdin");
  EXPECT_GT(messages[0]["id"].get<std::uint64_t>(), first_id);
  EXPECT_EQ(messages[0]["deliveries"], 1);

  auto empty = ember("queue get cli.q --timeout-ms 100");
  EXPECT_EQ(empty.status, 1) << empty.both();
  EXPECT_NE(empty.err.find("ember: error: no message on queue 'cli.q' within 100 ms"),
            std::string::npos)
      << empty.err;
  auto table = ember("queue ls");
  EXPECT_NE(table.out.find("cli.q"), std::string::npos) << table.out;

  // --no-ack: the message goes back to the queue after its visibility timeout.
  ASSERT_EQ(ember("queue create cli.q.redeliver --visibility-ms 200").status, 0);
  ASSERT_EQ(ember("queue put cli.q.redeliver again").status, 0);
  ASSERT_EQ(ember("queue get cli.q.redeliver --no-ack").status, 0);
  auto again = ember("queue get cli.q.redeliver --timeout-ms 5000 --json");
  ASSERT_EQ(again.status, 0) << again.both();
  EXPECT_EQ(again.json()[0]["deliveries"], 2);

  ASSERT_EQ(ember("queue drop cli.q").status, 0);
  auto dropped = ember("queue put cli.q late");
  EXPECT_EQ(dropped.status, 2) << dropped.both();
  EXPECT_NE(dropped.err.find("cli.q"), std::string::npos) << dropped.err;
}

TEST_F(coordination_cli, a_lock_held_by_one_invocation_shows_in_another) {
  auto holder = ember_background({"lock", "acquire", "cli.lock", "--hold-ms", "20000"}, "holder");
  auto token = holder->wait_for_output("token\\s+(\\d+)", 15s);
  auto ls = ember("lock ls cli.lock --json");
  ASSERT_EQ(ls.status, 0) << ls.both();
  auto locks = ls.json();
  ASSERT_EQ(locks.size(), 1u) << ls.out;
  ASSERT_EQ(locks[0]["holders"].size(), 1u) << ls.out;
  EXPECT_EQ(std::to_string(locks[0]["holders"][0]["token"].get<std::uint64_t>()), token);
  EXPECT_GT(locks[0]["holders"][0]["expires_in_ms"].get<std::int64_t>(), 0);
  auto table = ember("lock ls");
  EXPECT_NE(table.out.find("cli.lock"), std::string::npos) << table.out;

  auto busy = ember("lock acquire cli.lock --timeout-ms 200");
  EXPECT_EQ(busy.status, 1) << busy.both();
  EXPECT_NE(busy.err.find("lock 'cli.lock' was not acquired within 200 ms: held by"),
            std::string::npos)
      << busy.err;

  // SIGTERM: the holder releases before it exits.
  holder->signal(SIGTERM);
  EXPECT_EQ(holder->wait_exit(10s), 128 + SIGTERM) << holder->err();
  auto after = ember("lock ls cli.lock --json");
  ASSERT_EQ(after.status, 0) << after.both();
  EXPECT_TRUE(after.json()[0]["holders"].empty()) << after.out;
}

TEST_F(coordination_cli, a_command_runs_while_holding_and_stale_tokens_are_refused) {
  auto run = ember(
      "lock acquire cli.cmd --ttl-ms 3000 -- sh -c 'echo \"$EMBER_LOCK_NAME $EMBER_LOCK_TOKEN "
      "$EMBER_LOCK_OWNER\"; exit 3'");
  EXPECT_EQ(run.status, 3) << run.both();
  std::istringstream words(run.out);
  std::string name, token, owner;
  words >> name >> token >> owner;
  EXPECT_EQ(name, "cli.cmd");
  EXPECT_FALSE(owner.empty()) << run.out;
  ASSERT_FALSE(token.empty()) << run.out;
  EXPECT_GT(std::stoull(token), 0u);

  // Released after the command: a detached lease with a newer token follows at once.
  auto detached = ember("lock acquire cli.cmd --timeout-ms 0 --json");
  ASSERT_EQ(detached.status, 0) << detached.both();
  auto lease = detached.json();
  EXPECT_GT(lease["token"].get<std::uint64_t>(), std::stoull(token));
  auto ls = ember("lock ls cli.cmd --json");
  ASSERT_EQ(ls.json()[0]["holders"].size(), 1u) << ls.out;
  EXPECT_EQ(ls.json()[0]["holders"][0]["owner"], lease["owner"]);

  // Writes fenced with the old token are refused; with the holder's token they go through.
  auto stale = ember("kv set cli.fenced v --lock cli.cmd --token " + token);
  EXPECT_EQ(stale.status, 2) << stale.both();
  EXPECT_NE(stale.err.find("ember: error: "), std::string::npos) << stale.err;
  EXPECT_NE(stale.err.find("stale"), std::string::npos) << stale.err;
  auto fresh = ember("kv set cli.fenced v --lock cli.cmd --token " +
                     std::to_string(lease["token"].get<std::uint64_t>()));
  EXPECT_EQ(fresh.status, 0) << fresh.both();

  auto release =
      ember("lock release cli.cmd --owner " + lease["owner"].get<std::string>() + " --json");
  ASSERT_EQ(release.status, 0) << release.both();
  EXPECT_TRUE(ember("lock ls cli.cmd --json").json()[0]["holders"].empty());
  auto again = ember("lock release cli.cmd --owner " + lease["owner"].get<std::string>());
  EXPECT_EQ(again.status, 2) << again.both();

  auto missing = ember("lock acquire cli.cmd -- /nonexistent/ember-command");
  EXPECT_EQ(missing.status, 127) << missing.both();
  EXPECT_NE(missing.err.find("cannot run '/nonexistent/ember-command'"), std::string::npos)
      << missing.err;
}

TEST_F(coordination_cli, a_subscriber_in_the_background_receives_what_is_published) {
  auto sub = ember_background(
      {"topic", "sub", "cli.topic", "--count", "2", "--timeout-ms", "20000"}, "sub");
  // A topic keeps no messages for later subscribers: publish until this one is there.
  bool reached = false;
  for (int i = 0; i < 100 && !reached; ++i) {
    auto pub = ember("topic pub cli.topic first --json");
    ASSERT_EQ(pub.status, 0) << pub.both();
    reached = pub.json()["subscribers"].get<std::uint64_t>() == 1;
    if (!reached) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(reached) << sub->err();
  ASSERT_EQ(ember("topic pub cli.topic", "second").status, 0);
  EXPECT_EQ(sub->wait_exit(15s), 0) << sub->err();
  EXPECT_EQ(sub->out(), "first\nsecond\n");

  auto idle = ember("topic sub cli.topic.idle --timeout-ms 100 --count 1");
  EXPECT_EQ(idle.status, 1) << idle.both();
  EXPECT_NE(idle.err.find("0 of 1 message(s)"), std::string::npos) << idle.err;
}

TEST_F(coordination_cli, bad_input_gets_a_clear_message_and_exit_status) {
  ASSERT_EQ(ember("queue create cli.bad").status, 0);
  struct bad {
    std::string args, message;
    int status = 2;
  };
  for (const auto& b : {
           bad{"queue put cli.nosuch x", "cli.nosuch"},
           bad{"queue get cli.nosuch --timeout-ms 10", "cli.nosuch"},
           bad{"queue get cli.bad --timeout-ms -5", "--timeout-ms: negative"},
           bad{"queue get cli.bad --count 0", "--count: must be at least 1"},
           bad{"queue put cli.bad x --file /nonexistent", "MESSAGE or --file, not both"},
           bad{"queue put cli.bad --file /nonexistent/ember-file", "cannot read"},
           bad{"queue create cli.bad2 --capacity -3", "negative"},
           bad{"lock acquire cli.bad --timeout-ms -1", "--timeout-ms: negative"},
           bad{"lock acquire cli.bad --ttl-ms 0", "--ttl-ms: must be positive"},
           bad{"lock acquire cli.bad --hold-ms 10 -- true", "--hold-ms or a COMMAND"},
           bad{"topic sub cli.bad --buffer 0", "--buffer: must be 1..1000000"},
           bad{"kv set k v --lock cli.bad", "--lock and --token go together"},
           bad{"kv set k v --token-file /nonexistent/token", "cannot read the token file"},
       }) {
    auto r = ember(b.args);
    EXPECT_EQ(r.status, b.status) << b.args << ": " << r.both();
    EXPECT_NE(r.err.find("ember: error: "), std::string::npos) << b.args << ": " << r.err;
    EXPECT_NE(r.err.find(b.message), std::string::npos) << b.args << ": " << r.err;
  }
  auto unreachable = ember_raw("kv get k --scheduler 127.0.0.1:1");
  EXPECT_EQ(unreachable.status, 1) << unreachable.both();
  EXPECT_NE(unreachable.err.find("127.0.0.1:1"), std::string::npos) << unreachable.err;
  // $EMBER_SCHEDULER is the default scheduler.
  auto from_env = ember_raw("queue ls --json", "", "EMBER_SCHEDULER=" + _cluster->address);
  ASSERT_EQ(from_env.status, 0) << from_env.both();
  EXPECT_NE(from_env.out.find("cli.bad"), std::string::npos) << from_env.out;
}

}  // namespace
