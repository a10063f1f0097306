// The deployment scripts as a cluster runs them: docker/entrypoint.sh, configured only by EMBER_*
// variables and a token file, starts a scheduler and three workers on three hosts (network
// namespaces joined by a bridge); a job runs, a worker is stopped and started again, the cluster
// reports three live workers and the health checks pass, and a job runs again.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/paths.hpp"
#include "common/processes.hpp"
#include "common/temp_dir.hpp"

namespace ember {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

fs::path entrypoint() { return test::source_dir() / "docker" / "entrypoint.sh"; }

// Hosts a (10.77.0.1: the bridge, the scheduler and worker 0), b (10.77.0.2) and c (10.77.0.3),
// joined by veth pairs to a bridge in a. The addresses exist only inside these namespaces, so
// nothing on the machine can clash with them. Deleted again in the destructor, even when the
// test fails.
class three_hosts {
 public:
  explicit three_hosts(const fs::path& dir) : _prefix("emd" + std::to_string(::getpid() % 100000)) {
    std::string p = _prefix;
    std::string script = "set -e\n";
    for (auto n : {"a", "b", "c"}) {
      script += "ip netns add " + p + n + "\n";
      script += "ip -n " + p + n + " link set lo up\n";
    }
    script += "ip -n " + p + "a link add br0 type bridge\n";
    script += "ip -n " + p + "a addr add 10.77.0.1/24 dev br0\n";
    script += "ip -n " + p + "a link set br0 up\n";
    int host = 2;
    for (auto n : {"b", "c"}) {
      auto peer = std::string("v") + n;
      script += "ip link add " + peer + " netns " + p + "a type veth peer name veth0 netns " + p +
                n + "\n";
      script += "ip -n " + p + "a link set " + peer + " master br0 up\n";
      script +=
          "ip -n " + p + n + " addr add 10.77.0." + std::to_string(host++) + "/24 dev veth0\n";
      script += "ip -n " + p + n + " link set veth0 up\n";
    }
    auto script_file = dir / "namespaces.sh";
    auto log = dir / "namespaces.log";
    std::ofstream(script_file) << script;
    ok = test::shell("sh " + script_file.string() + " > " + log.string() + " 2>&1") == 0;
    if (!ok) {
      error = test::read_file(log);
      cleanup();
    }
  }
  ~three_hosts() { cleanup(); }
  three_hosts(const three_hosts&) = delete;
  three_hosts& operator=(const three_hosts&) = delete;

  /// The argv prefix that runs a program on host `n` ("a", "b" or "c").
  [[nodiscard]] std::vector<std::string> on(const std::string& n) const {
    return {"ip", "netns", "exec", _prefix + n};
  }

  bool ok = false;
  std::string error;  ///< what `ip` said when the namespaces could not be made

 private:
  void cleanup() {
    for (auto n : {"a", "b", "c"}) test::shell("ip netns del " + _prefix + n + " > /dev/null 2>&1");
  }
  std::string _prefix;
};

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct finished {
  int code = -1;  ///< -1: still running at the deadline (then killed)
  std::string out, err;
};

class deploy_cluster : public ::testing::Test {
 protected:
  static constexpr const char* scheduler_address = "10.77.0.1:4242";

  void SetUp() override {
    std::ofstream(token_file()) << "deploy-cluster-test-token\n";
    const char* path = std::getenv("PATH");
    // The entrypoint runs `ember` from PATH, as in the images; the build's comes first.
    // UCX_* emptied: a loopback-only setting from the caller would cut the namespaces off.
    _env = {"PATH=" + test::ember_executable().parent_path().string() + ":" +
                (path != nullptr ? path : "/usr/bin:/bin:/usr/sbin:/sbin"),
            "UCX_NET_DEVICES=",
            "UCX_SOCKADDR_TLS_PRIORITY=",
            "EMBER_LISTEN=",
            "EMBER_DATA=",
            "EMBER_SCHEDULER=",
            "EMBER_WORKER_NAME=",
            "EMBER_TOKEN_FILE=" + token_file().string()};
  }

  [[nodiscard]] fs::path token_file() const { return _dir.path() / "token"; }

  std::vector<std::string> scheduler_env() const {
    return concat(_env, {"EMBER_LISTEN=" + std::string(scheduler_address),
                         "EMBER_DATA=" + (_dir.path() / "scheduler-data").string(),
                         "EMBER_HEARTBEAT_MS=100"});
  }
  std::vector<std::string> worker_env(int i) const {
    return concat(_env,
                  {"EMBER_SCHEDULER=" + std::string(scheduler_address), "EMBER_BACKEND=cpu",
                   "EMBER_SLOTS=1", "EMBER_CPU_THREADS=1", "EMBER_WORKER_NAME=" + worker_name(i),
                   "EMBER_SPILL_DIR=" + (_dir.path() / ("spill" + std::to_string(i))).string(),
                   "EMBER_RECONNECT_TIMEOUT_MS=5000"});
  }
  static std::string worker_name(int i) { return "deploy-worker-" + std::to_string(i); }
  static std::string host_of_worker(int i) { return std::string(1, static_cast<char>('a' + i)); }

  /// Starts worker `i` on its host through the entrypoint; waits until it has registered.
  std::unique_ptr<test::child_process> start_worker(const three_hosts& hosts, int i) {
    auto p = std::make_unique<test::child_process>(
        concat(hosts.on(host_of_worker(i)), {entrypoint().string(), "worker"}),
        _dir.path() / ("worker" + std::to_string(i) + "." + std::to_string(++_runs)),
        worker_env(i));
    p->wait_for_output("ember (worker \\d+)", 30s);
    return p;
  }

  /// Runs `argv` to the end (at most `limit`) and returns its exit code and output.
  finished run(const std::vector<std::string>& argv, const std::vector<std::string>& env,
               std::chrono::milliseconds limit) {
    test::child_process p(argv, _dir.path() / ("run." + std::to_string(++_runs)), env);
    auto code = p.wait_exit(limit);
    return {code.value_or(-1), p.out(), p.err()};
  }

  /// `ember status --json` from host `n`; an empty object when the scheduler does not answer.
  nlohmann::json status(const three_hosts& hosts, const std::string& n) {
    auto r = run(
        concat(hosts.on(n), {test::ember_executable().string(), "status", "--json", "--scheduler",
                             scheduler_address, "--token-file", token_file().string()}),
        _env, 10s);
    if (r.code != 0) return nlohmann::json::object();
    return nlohmann::json::parse(r.out.substr(r.out.find('{')), nullptr, false);
  }

  static std::vector<std::string> alive_workers(const nlohmann::json& s) {
    std::vector<std::string> names;
    if (!s.is_object() || !s.contains("workers")) return names;
    for (const auto& w : s["workers"])
      if (w.value("alive", false)) names.push_back(w.value("name", std::string()));
    std::sort(names.begin(), names.end());
    return names;
  }

  /// Polls `ember status` until exactly `want` is the set of live workers, or `limit` passes.
  std::vector<std::string> wait_for_alive(const three_hosts& hosts,
                                          const std::vector<std::string>& want,
                                          std::chrono::milliseconds limit) {
    auto deadline = clock_type::now() + limit;
    std::vector<std::string> now;
    do {
      now = alive_workers(status(hosts, "b"));
      if (now == want) break;
      std::this_thread::sleep_for(100ms);
    } while (clock_type::now() < deadline);
    return now;
  }

  /// Word count of data/garden.txt through the entrypoint's pass-through, from host `n`; returns
  /// the result CSV. Client commands take the token as a flag (they do not read EMBER_*).
  std::string run_wordcount(const three_hosts& hosts, const std::string& n,
                            const std::string& label, const std::string& logs) {
    auto csv = _dir.path() / ("wordcount-" + label + ".csv");
    auto r = run(concat(hosts.on(n), {entrypoint().string(), "ember", "run", "wordcount", "--input",
                                      (test::source_dir() / "data" / "garden.txt").string(),
                                      "--scheduler", scheduler_address, "--token-file",
                                      token_file().string(), "--quiet", "--output", csv.string()}),
                 _env, 30s);
    EXPECT_EQ(r.code, 0) << label << ": " << r.out << r.err << logs;
    EXPECT_NE(r.out.find("on 3 cpu worker(s) of " + std::string(scheduler_address)),
              std::string::npos)
        << label << ": " << r.out;
    return test::read_file(csv);
  }

  test::temp_dir _dir{"ember-deploy"};
  std::vector<std::string> _env;
  int _runs = 0;
};

TEST_F(deploy_cluster, TheEntrypointRefusesAnOpenSchedulerWithoutAToken) {
  auto env = concat(_env, {"EMBER_TOKEN_FILE=", "EMBER_LISTEN=0.0.0.0:0",
                           "EMBER_DATA=" + (_dir.path() / "data").string()});
  auto r = run({entrypoint().string(), "scheduler"}, env, 10s);
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("not a loopback address"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("EMBER_TOKEN_FILE"), std::string::npos) << r.err;
  r = run({entrypoint().string(), "worker"}, _env, 10s);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("EMBER_SCHEDULER"), std::string::npos) << r.err;
}

TEST_F(deploy_cluster, AJobRunsAWorkerRestartsAndTheClusterIsHealthyAgain) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "creating network namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)";
  three_hosts hosts(_dir.path());
  if (!hosts.ok) GTEST_SKIP() << "cannot create network namespaces here: " << hosts.error;
  auto started = clock_type::now();

  // Declared after the namespaces: the processes die before their hosts are deleted.
  test::child_process scheduler(concat(hosts.on("a"), {entrypoint().string(), "scheduler"}),
                                _dir.path() / "scheduler", scheduler_env());
  EXPECT_EQ(scheduler.wait_for_output("listening on (\\S+)", 30s), scheduler_address);
  std::vector<std::unique_ptr<test::child_process>> workers;
  for (int i = 0; i < 3; ++i) workers.push_back(start_worker(hosts, i));
  auto logs = [&] {
    std::string s = "\n--- scheduler:\n" + scheduler.err();
    for (std::size_t i = 0; i < workers.size(); ++i)
      s += "--- worker " + std::to_string(i) + ":\n" + workers[i]->err();
    return s;
  };
  std::vector<std::string> all = {worker_name(0), worker_name(1), worker_name(2)};
  ASSERT_EQ(wait_for_alive(hosts, all, 20s), all) << logs();

  // The same job on the embedded cluster is the reference.
  auto reference_csv = _dir.path() / "wordcount-reference.csv";
  auto ref = run({test::ember_executable().string(), "run", "wordcount", "--input",
                  (test::source_dir() / "data" / "garden.txt").string(), "--quiet", "--output",
                  reference_csv.string()},
                 _env, 30s);
  ASSERT_EQ(ref.code, 0) << ref.err;
  auto reference = test::read_file(reference_csv);
  ASSERT_FALSE(reference.empty());
  EXPECT_EQ(run_wordcount(hosts, "c", "first", logs()), reference);

  // Stop worker 1 (host b) as a container runtime does, and start it again.
  workers[1]->signal(SIGTERM);
  auto code = workers[1]->wait_exit(15s);
  ASSERT_TRUE(code.has_value()) << "worker 1 ignored SIGTERM" << logs();
  EXPECT_EQ(*code, 0) << logs();
  std::vector<std::string> two = {worker_name(0), worker_name(2)};
  EXPECT_EQ(wait_for_alive(hosts, two, 15s), two) << logs();
  workers[1] = start_worker(hosts, 1);
  ASSERT_EQ(wait_for_alive(hosts, all, 20s), all) << logs();

  // The images' health checks agree.
  auto health_scheduler = run(concat(hosts.on("a"), {entrypoint().string(), "health", "scheduler"}),
                              scheduler_env(), 15s);
  EXPECT_EQ(health_scheduler.code, 0) << health_scheduler.err;
  auto health_worker =
      run(concat(hosts.on("b"), {entrypoint().string(), "health", "worker"}), worker_env(1), 15s);
  EXPECT_EQ(health_worker.code, 0) << health_worker.err;
  auto missing = worker_env(1);
  missing.push_back("EMBER_WORKER_NAME=no-such-worker");
  auto health_missing =
      run(concat(hosts.on("b"), {entrypoint().string(), "health", "worker"}), missing, 15s);
  EXPECT_EQ(health_missing.code, 1) << health_missing.err;
  EXPECT_NE(health_missing.err.find("no-such-worker"), std::string::npos) << health_missing.err;

  EXPECT_EQ(run_wordcount(hosts, "b", "after-restart", logs()), reference);
  EXPECT_LT(clock_type::now() - started, 60s);
}

}  // namespace
}  // namespace ember
