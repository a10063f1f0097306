// A real cluster: an `ember scheduler` process and `ember worker` processes on 127.0.0.1 (UCX
// over tcp, and with shared memory allowed), and across three network namespaces. Every
// built-in job must give exactly the embedded run's result (same partition count), a worker
// killed mid-job must not change the answer or hang the job, and the cluster must keep serving.
#include <gtest/gtest.h>

#include <chrono>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/io.hpp>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/jobs.hpp>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "common/backends.hpp"
#include "common/processes.hpp"
#include "common/tables.hpp"

namespace ember {
namespace {

using namespace std::chrono_literals;
using test::cluster_spec;
using test::local_cluster;

// Loopback tests keep UCX on lo (it may otherwise open lanes on other interfaces).
const std::vector<std::string> loopback_env = {
    "UCX_NET_DEVICES=lo", "UCX_SOCKADDR_TLS_PRIORITY=tcp", "EMBER_LOG_LEVEL=info"};

void use_loopback_env() {
  for (const auto& e : loopback_env) {
    auto eq = e.find('=');
    ::setenv(e.substr(0, eq).c_str(), e.substr(eq + 1).c_str(), 1);
  }
}

job_options options_for(const std::string& job) {
  job_options o;
  o.rows = 120'000;
  if (job == "wordcount") {
    for (const auto* f : {"garden.txt", "harbour.txt", "machines.txt"})
      o.inputs.push_back(test::source_dir() / "data" / f);
  }
  return o;
}

// The embedded cluster with the same partitioning as `workers` remote workers.
table embedded_result(const std::string& job, int workers) {
  client_options co;
  co.workers = workers;
  co.backend = backend_choice::cpu;
  co.cpu_threads = 1;
  auto local = client::local(co);
  return run_job(local, job, options_for(job)).result;
}

void expect_same(const table& got, const table& want) {
  EXPECT_EQ(got.view().names(), want.view().names());
  ASSERT_EQ(got.num_rows(), want.num_rows());
  EXPECT_TRUE(test::rows_of(got.view()) == test::rows_of(want.view()));
}

void run_every_job(const local_cluster& cluster, client_options co = {}) {
  auto c = client::connect(cluster.address, co);
  EXPECT_EQ(c.num_workers(), static_cast<int>(cluster.num_workers()));
  for (const auto& job : job_names()) {
    SCOPED_TRACE(job);
    auto remote = run_job(c, job, options_for(job));
    EXPECT_GT(remote.result.num_rows(), 0);
    expect_same(remote.result, embedded_result(job, static_cast<int>(cluster.num_workers())));
  }
}

class cluster_test : public ::testing::Test {
 protected:
  void SetUp() override { use_loopback_env(); }
};

TEST_F(cluster_test, EveryBuiltInJobMatchesTheEmbeddedRunOverTcp) {
  cluster_spec spec;
  spec.env = loopback_env;
  local_cluster cluster(spec);
  run_every_job(cluster);
}

TEST_F(cluster_test, EveryBuiltInJobMatchesTheEmbeddedRunWithSharedMemory) {
  cluster_spec spec;
  spec.env = loopback_env;
  spec.shared_memory = true;
  local_cluster cluster(spec);
  client_options co;
  co.shared_memory = true;
  run_every_job(cluster, co);
}

TEST_F(cluster_test, InMemoryTablesAndRelativePathsTravelToTheWorkers) {
  cluster_spec spec;
  spec.env = loopback_env;
  spec.workers = 2;
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  client_options lo;
  lo.workers = 2;
  lo.backend = backend_choice::cpu;
  auto local = client::local(lo);
  auto query = [](client& on) {
    std::vector<std::int64_t> keys, values;
    for (int i = 0; i < 5000; ++i) {
      keys.push_back(i % 37);
      values.push_back(i);
    }
    std::vector<column> cols;
    cols.push_back(make_column(type_id::int64, keys));
    cols.push_back(make_column(type_id::int64, values));
    return on.from_table(table(std::move(cols), {"k", "v"}))
        .group_by({"k"}, {{aggregation_kind::sum, "v", "total"}})
        .sort({{"k"}})
        .collect();
  };
  expect_same(query(c), query(local));
  // A relative path is made absolute by the client: the workers run in other folders.
  auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(test::source_dir());
  auto remote_lines = c.read_text({"data/garden.txt"}).collect();
  auto local_lines = local.read_text({"data/garden.txt"}).collect();
  std::filesystem::current_path(cwd);
  expect_same(remote_lines, local_lines);
}

TEST_F(cluster_test, LocalBlocksAreTakenByReferenceAndOnlyTheRestCrossesUcx) {
  for (int workers : {1, 3}) {
    SCOPED_TRACE(workers);
    cluster_spec spec;
    spec.env = loopback_env;
    spec.workers = workers;
    local_cluster cluster(spec);
    auto c = client::connect(cluster.address);
    auto r = c.generate("keyed", 300'000, 7, 300'000)
                 .repartition({"key"})
                 .group_by({}, {{aggregation_kind::count_all, "", "rows"}})
                 .run();
    EXPECT_EQ(r.result.view().column(0).data<std::int64_t>()[0], 300'000);
    const auto& map = r.metrics.stages.at(0);
    const auto& reduce = r.metrics.stages.at(1);
    EXPECT_GT(map.bytes_out, 0);
    if (workers == 1) {
      EXPECT_EQ(reduce.bytes_fetched, 0);  // every block was the worker's own
    } else {
      // Blocks cross UCX only between workers: some do, never all (the reducers' own stay).
      EXPECT_GT(reduce.bytes_fetched, 0);
      EXPECT_LT(reduce.bytes_fetched, map.bytes_out);
      EXPECT_GT(reduce.fetch_seconds, 0.0);
    }
    EXPECT_EQ(r.metrics.retried_tasks, 0);
  }
}

TEST_F(cluster_test, ShuffleBytesAreReportedPerLinkBetweenWorkers) {
  cluster_spec spec;
  spec.env = loopback_env;
  spec.workers = 3;
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  std::set<int> ids;
  for (const auto& w : c.status().workers) ids.insert(w.id);
  ASSERT_EQ(ids.size(), 3u);
  auto r = c.generate("keyed", 300'000, 7, 300'000)
               .repartition({"key"})
               .group_by({}, {{aggregation_kind::count_all, "", "rows"}})
               .run();
  EXPECT_EQ(r.result.view().column(0).data<std::int64_t>()[0], 300'000);
  EXPECT_TRUE(r.metrics.stages.at(0).links.empty());  // the map stage fetched nothing
  const auto& reduce = r.metrics.stages.at(1);
  ASSERT_FALSE(reduce.links.empty());
  size_type sum = 0;
  for (std::size_t i = 0; i < reduce.links.size(); ++i) {
    const auto& l = reduce.links[i];
    SCOPED_TRACE(std::to_string(l.from_worker) + " -> " + std::to_string(l.to_worker));
    EXPECT_NE(l.from_worker, l.to_worker);
    EXPECT_TRUE(ids.contains(l.from_worker));
    EXPECT_TRUE(ids.contains(l.to_worker));
    EXPECT_GT(l.bytes, 0);
    EXPECT_GT(l.seconds, 0.0);
    EXPECT_LE(l.seconds, reduce.fetch_seconds);
    if (i > 0) {
      const auto& p = reduce.links[i - 1];
      EXPECT_LT(std::pair(p.from_worker, p.to_worker), std::pair(l.from_worker, l.to_worker));
    }
    sum += l.bytes;
  }
  EXPECT_EQ(sum, reduce.bytes_fetched);
}

TEST_F(cluster_test, StatusListsWorkersAndNoticesADeadOne) {
  cluster_spec spec;
  spec.env = loopback_env;
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  auto s = c.status();
  ASSERT_EQ(s.workers.size(), 3u);
  for (const auto& w : s.workers) {
    EXPECT_TRUE(w.alive);
    EXPECT_EQ(w.backend, "cpu");
    EXPECT_GT(w.pid, 0);
  }
  cluster.worker(1).signal(SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  int alive = 3;
  while (alive == 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    alive = c.num_workers();
  }
  EXPECT_EQ(alive, 2);
}

TEST_F(cluster_test, DeadWorkersLeaveTheStatusAfterTheirRetention) {
  cluster_spec spec;
  spec.env = loopback_env;
  spec.workers = 2;
  spec.scheduler_args = {"--dead-worker-retention-ms", "500"};
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  cluster.worker(0).signal(SIGKILL);
  // Listed as dead first, then gone.
  bool seen_dead = false;
  auto deadline = std::chrono::steady_clock::now() + 15s;
  std::size_t listed = 2;
  while (std::chrono::steady_clock::now() < deadline) {
    auto s = c.status();
    listed = s.workers.size();
    for (const auto& w : s.workers) seen_dead |= !w.alive;
    if (seen_dead && listed == 1) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(seen_dead);
  EXPECT_EQ(listed, 1u);
}

TEST_F(cluster_test, APlanOverTheMessageLimitIsRefusedByTheClient) {
  cluster_spec spec;
  spec.env = loopback_env;
  spec.workers = 1;
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  // 300 MB of booleans travel inside the plan: over the 256 MiB message limit.
  std::vector<std::uint8_t> flags(300'000'000, 1);
  std::vector<column> cols;
  cols.push_back(make_column(type_id::bool8, flags));
  flags = {};
  auto big = c.from_table(table(std::move(cols), {"flag"}));
  try {
    (void)big.collect();
    FAIL() << "an oversized plan was sent";
  } catch (const invalid_input& e) {
    EXPECT_NE(std::string(e.what()).find("message limit"), std::string::npos) << e.what();
  }
  // The connection is untouched: the next job runs.
  expect_same(run_job(c, "sort", options_for("sort")).result, embedded_result("sort", 1));
}

TEST_F(cluster_test, AWorkerKilledMidJobDoesNotChangeTheResult) {
  cluster_spec spec;
  spec.env = loopback_env;
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  job_options o;
  o.rows = 3'000'000;
  auto want = [&] {
    client_options co;
    co.workers = 3;
    co.backend = backend_choice::cpu;
    co.cpu_threads = 1;
    auto local = client::local(co);
    return run_job(local, "groupby", o).result;
  }();
  std::thread killer([&] {
    std::this_thread::sleep_for(400ms);
    cluster.worker(0).signal(SIGKILL);
  });
  auto started = std::chrono::steady_clock::now();
  try {
    auto got = run_job(c, "groupby", o);
    expect_same(got.result, want);
  } catch (const error& e) {
    // Allowed, if it says why: but never a hang.
    EXPECT_NE(std::string(e.what()).find("worker"), std::string::npos) << e.what();
  }
  killer.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 30s) << cluster.logs();
  // The cluster keeps serving on the remaining workers.
  expect_same(run_job(c, "wordcount", options_for("wordcount")).result,
              embedded_result("wordcount", 2));
}

TEST_F(cluster_test, ATaskErrorFailsTheJobWithItsTypeAndTheClusterServesOn) {
  cluster_spec spec;
  spec.env = loopback_env;
  spec.worker_args = {"--device-memory-limit", "8MB"};
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  // 2M rows do not fit in a worker's 8 MB budget: the task fails inside its operator.
  job_options big;
  big.rows = 2'000'000;
  try {
    (void)run_job(c, "groupby", big);
    FAIL() << "a job ran past its workers' memory budget";
  } catch (const out_of_memory& e) {
    EXPECT_NE(std::string(e.what()).find("failed on worker"), std::string::npos) << e.what();
  }
  expect_same(run_job(c, "wordcount", options_for("wordcount")).result,
              embedded_result("wordcount", 3));
}

TEST_F(cluster_test, WrongTokenIsRefusedAndOffLoopbackNeedsAToken) {
  cluster_spec spec;
  spec.env = loopback_env;
  spec.token = "cluster-secret";
  spec.workers = 1;
  local_cluster cluster(spec);
  client_options co;
  co.token = "guess";
  try {
    (void)client::connect(cluster.address, co);
    FAIL() << "a wrong token was accepted";
  } catch (const transport_error& e) {
    EXPECT_NE(std::string(e.what()).find("wrong cluster token"), std::string::npos) << e.what();
  }
  co.token = "cluster-secret";
  auto c = client::connect(cluster.address, co);
  expect_same(run_job(c, "join", options_for("join")).result, embedded_result("join", 1));

  test::temp_dir dir("ember-open");
  test::child_process open({test::ember_executable().string(), "scheduler", "--listen", "0.0.0.0:0",
                            "--data", dir.path().string()},
                           dir.path() / "open");
  auto code = open.wait_exit(20s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_NE(open.err().find("--token-file"), std::string::npos) << open.err();
}

TEST_F(cluster_test, APausedWorkerIsDeclaredDeadAndRejoinsWhenItWakes) {
  cluster_spec spec;
  spec.env = loopback_env;
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  cluster.worker(2).signal(SIGSTOP);
  // Heartbeats every 100 ms; eight missed ones make it dead.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.num_workers() == 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  EXPECT_EQ(c.num_workers(), 2);
  expect_same(run_job(c, "join", options_for("join")).result, embedded_result("join", 2));
  // Woken up, it finds the scheduler has closed its connection, and joins again as a new member.
  cluster.worker(2).signal(SIGCONT);
  deadline = std::chrono::steady_clock::now() + 15s;
  while (c.num_workers() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  ASSERT_EQ(c.num_workers(), 3) << cluster.logs();
  expect_same(run_job(c, "join", options_for("join")).result, embedded_result("join", 3));
}

TEST_F(cluster_test, WorkersAndClientsRejoinARestartedScheduler) {
  cluster_spec spec;
  spec.env = loopback_env;
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  expect_same(run_job(c, "sort", options_for("sort")).result, embedded_result("sort", 3));
  cluster.restart_scheduler();
  // The same client reaches the new scheduler by itself.
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (c.num_workers() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  ASSERT_EQ(c.num_workers(), 3) << cluster.logs();
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_FALSE(cluster.worker(i).wait_exit(0ms).has_value()) << cluster.logs();
  expect_same(run_job(c, "groupby", options_for("groupby")).result, embedded_result("groupby", 3));
}

TEST_F(cluster_test, SigtermStopsAWorkerAndTheSchedulerCleanly) {
  cluster_spec spec;
  spec.env = loopback_env;
  spec.worker_args = {"--reconnect-timeout-ms", "1000"};
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  expect_same(run_job(c, "groupby", options_for("groupby")).result, embedded_result("groupby", 3));
  cluster.worker(0).signal(SIGTERM);
  auto code = cluster.worker(0).wait_exit(15s);
  ASSERT_TRUE(code.has_value()) << cluster.logs();
  EXPECT_EQ(*code, 0) << cluster.logs();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.num_workers() == 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  EXPECT_EQ(c.num_workers(), 2);
  cluster.scheduler().signal(SIGTERM);
  code = cluster.scheduler().wait_exit(15s);
  ASSERT_TRUE(code.has_value()) << cluster.logs();
  EXPECT_EQ(*code, 0) << cluster.logs();
  // The remaining workers lose their scheduler, wait a second for it to come back, and leave
  // with status 3.
  for (std::size_t i = 1; i < 3; ++i) {
    code = cluster.worker(i).wait_exit(15s);
    ASSERT_TRUE(code.has_value()) << cluster.logs();
    EXPECT_EQ(*code, 3);
  }
}

TEST_F(cluster_test, ForcingTheNcclExchangeOnCpuWorkersFailsClearly) {
  cluster_spec spec;
  spec.env = loopback_env;
  spec.workers = 2;
  local_cluster cluster(spec);
  client_options co;
  co.exchange = exchange_choice::nccl;
  auto c = client::connect(cluster.address, co);
  try {
    (void)run_job(c, "groupby", options_for("groupby"));
    FAIL() << "the NCCL exchange ran on CPU workers";
  } catch (const invalid_input& e) {
    std::string what = e.what();
    bool named = what.find("needs every worker on a GPU") != std::string::npos ||
                 what.find("built without NCCL") != std::string::npos;
    EXPECT_TRUE(named) << what;
  }
  // `auto` picks UCX for CPU workers.
  co.exchange = exchange_choice::automatic;
  auto a = client::connect(cluster.address, co);
  expect_same(run_job(a, "groupby", options_for("groupby")).result, embedded_result("groupby", 2));
}

// Numbers compare within a relative 1e-9 (a GPU sums in another order), everything else exactly.
void expect_close(const table& got, const table& want) {
  ASSERT_EQ(got.view().names(), want.view().names());
  ASSERT_EQ(got.num_rows(), want.num_rows());
  auto g = test::rows_of(got.view());
  auto w = test::rows_of(want.view());
  for (std::size_t r = 0; r < g.size(); ++r) {
    for (std::size_t c = 0; c < g[r].size(); ++c) {
      if (g[r][c].type() == type_id::float64 && g[r][c].valid() && w[r][c].valid()) {
        auto a = g[r][c].as_float(), b = w[r][c].as_float();
        EXPECT_NEAR(a, b, 1e-9 * std::max(1.0, std::abs(b))) << "row " << r << " column " << c;
      } else {
        EXPECT_TRUE(g[r][c] == w[r][c]) << "row " << r << " column " << c;
      }
    }
  }
}

// On a GPU machine: one CUDA worker whose shuffles go through a one-rank NCCL communicator, and
// two CUDA workers on the same GPU whose shuffles go over UCX, both equal to the CPU result.
TEST_F(cluster_test, GpuWorkersShuffleOverNcclAndUcxLikeTheCpu) {
  if (!cuda_available()) {
    if (test::gpu_required()) FAIL() << "EMBER_REQUIRE_GPU=1 but: " << cuda_unavailable_reason();
    GTEST_SKIP() << "no usable GPU: " << cuda_unavailable_reason();
  }
  struct path {
    int workers;
    exchange_choice exchange;
  };
  for (auto [workers, exchange] : {path{1, exchange_choice::nccl}, path{2, exchange_choice::ucx}}) {
    SCOPED_TRACE(workers);
    cluster_spec spec;
    spec.env = loopback_env;
    spec.workers = workers;
    spec.worker_args = {"--backend", "cuda", "--gpu", "0"};
    local_cluster cluster(spec);
    client_options co;
    co.exchange = exchange;
    auto c = client::connect(cluster.address, co);
    EXPECT_EQ(c.backend(), backend_kind::cuda);
    for (const auto* job : {"groupby", "join", "sort", "wordcount"}) {
      SCOPED_TRACE(job);
      expect_close(run_job(c, job, options_for(job)).result, embedded_result(job, workers));
    }
  }
}

TEST_F(cluster_test, AJobWithoutWorkersFailsClearly) {
  cluster_spec spec;
  spec.env = loopback_env;
  spec.workers = 0;
  local_cluster cluster(spec);
  auto c = client::connect(cluster.address);
  auto started = std::chrono::steady_clock::now();
  try {
    (void)run_job(c, "sort", options_for("sort"));
    FAIL() << "a job ran without workers";
  } catch (const transport_error& e) {
    EXPECT_NE(std::string(e.what()).find("no live worker"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, 30s);
}

// ---- three network namespaces -------------------------------------------------------------

// Namespaces a (scheduler, worker 0), b (worker 1) and c (worker 2): a bridge in a, veth pairs
// from b and c into it, addresses in 10.201.N.0/24 that exist only inside the namespaces.
class namespaces {
 public:
  namespaces() : _prefix("em" + std::to_string(::getpid() % 100000)) {
    auto subnet = "10.201." + std::to_string(::getpid() % 250) + ".";
    address = subnet + "1";
    std::string script =
        "set -e\n"
        "for n in a b c; do ip netns add " +
        _prefix + "$n; ip -n " + _prefix +
        "$n link set lo up; done\n"
        "ip -n " +
        _prefix +
        "a link add br0 type bridge\n"
        "ip -n " +
        _prefix +
        "a link set br0 up\n"
        "ip -n " +
        _prefix + "a addr add " + subnet + "1/24 dev br0\n";
    int host = 2;
    for (auto n : {"b", "c"}) {
      auto peer = std::string("v") + n;
      script += "ip link add " + peer + "a netns " + _prefix + "a type veth peer name " + peer +
                " netns " + _prefix + n + "\n";
      script += "ip -n " + _prefix + "a link set " + peer + "a master br0 up\n";
      script += "ip -n " + _prefix + n + " addr add " + subnet + std::to_string(host++) +
                "/24 dev " + peer + "\n";
      script += "ip -n " + _prefix + n + " link set " + peer + " up\n";
    }
    ok = test::shell("sh -c '" + script + "' > /dev/null 2>&1") == 0;
    if (!ok) cleanup();
  }
  ~namespaces() { cleanup(); }
  [[nodiscard]] std::vector<std::string> exec_in(const std::string& n) const {
    return {"ip", "netns", "exec", _prefix + n};
  }
  bool ok = false;
  std::string address;  ///< the scheduler's, in namespace a

 private:
  void cleanup() {
    for (auto n : {"a", "b", "c"}) test::shell("ip netns del " + _prefix + n + " > /dev/null 2>&1");
  }
  std::string _prefix;
};

TEST(cluster_namespaces, EveryBuiltInJobMatchesAcrossThreeNamespaces) {
  if (::geteuid() != 0) GTEST_SKIP() << "creating network namespaces needs root";
  namespaces ns;
  if (!ns.ok) GTEST_SKIP() << "this machine does not let the test create network namespaces";
  cluster_spec spec;
  spec.listen_host = ns.address;
  spec.token = "namespaced-secret";  // off loopback, a token is required
  spec.wrap = {ns.exec_in("a"), ns.exec_in("a"), ns.exec_in("b"), ns.exec_in("c")};
  spec.env = {"UCX_NET_DEVICES=", "UCX_SOCKADDR_TLS_PRIORITY=", "EMBER_LOG_LEVEL=info"};
  local_cluster cluster(spec);
  // The client runs in namespace a too: the addresses exist nowhere else.
  for (const auto& job : job_names()) {
    SCOPED_TRACE(job);
    auto csv = cluster.dir() / (job + ".csv");
    std::vector<std::string> argv = ns.exec_in("a");
    for (const auto& a :
         {test::ember_executable().string(), std::string("run"), job, std::string("--scheduler"),
          cluster.address, std::string("--token-file"), cluster.token_file().string(),
          std::string("--quiet"), std::string("--rows"), std::string("120000"),
          std::string("--output"), csv.string()})
      argv.push_back(a);
    if (job == "wordcount") {
      argv.push_back("--input");
      for (const auto* f : {"garden.txt", "harbour.txt", "machines.txt"})
        argv.push_back((test::source_dir() / "data" / f).string());
    }
    test::child_process run(argv, cluster.dir() / ("run-" + job), spec.env);
    auto code = run.wait_exit(120s);
    ASSERT_TRUE(code.has_value()) << "the job hung";
    ASSERT_EQ(*code, 0) << run.err() << cluster.logs();
    auto want = cluster.dir() / (job + ".embedded.csv");
    write_csv_file(embedded_result(job, 3).view(), want);
    EXPECT_EQ(test::read_file(csv), test::read_file(want));
    EXPECT_NE(run.out().find("on 3 cpu worker(s) of " + cluster.address), std::string::npos)
        << run.out();
  }
}

}  // namespace
}  // namespace ember
