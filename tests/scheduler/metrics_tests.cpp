// The Prometheus endpoints of a real cluster (an `ember scheduler` and two CPU `ember worker`
// processes): /metrics answers in the text exposition format (every line a HELP, a TYPE or a
// sample of a family announced before it), and its counters move when a job runs; locks and
// queues show up; the workers' own /metrics too; /api/cluster is the dashboard's JSON; beyond
// loopback the token is required; bad --metrics-listen values are refused.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include <ember/scheduler/client.hpp>
#include <ember/scheduler/coordination_client.hpp>

#include "common/processes.hpp"
#include "common/run_ember.hpp"

namespace ember {
namespace {

using namespace std::chrono_literals;
using test::cluster_spec;
using test::local_cluster;

void use_loopback_env() {
  ::setenv("UCX_NET_DEVICES", "lo", 1);
  ::setenv("UCX_SOCKADDR_TLS_PRIORITY", "tcp", 1);
}

// "http://HOST:PORT" -> a client for it.
httplib::Client client_for(const std::string& url) {
  httplib::Client c(url);
  c.set_connection_timeout(5);
  c.set_read_timeout(10);
  return c;
}

struct http_answer {
  int status = 0;
  std::string content_type, body;
};

http_answer get(const std::string& url, const std::string& path, const std::string& token = {}) {
  auto c = client_for(url);
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  auto r = c.Get(path.c_str(), headers);
  if (!r) throw std::runtime_error("GET " + url + path + ": " + httplib::to_string(r.error()));
  return {r->status, r->get_header_value("Content-Type"), r->body};
}

// One scrape, checked against the text format as it is parsed: samples by their full series
// name (`name{labels}`).
struct scrape {
  std::map<std::string, double> series;
  std::map<std::string, std::string> types;  // family -> counter, gauge, ...

  /// The sample with exactly these labels (as written), or NaN.
  [[nodiscard]] double at(const std::string& name) const {
    auto it = series.find(name);
    return it == series.end() ? std::nan("") : it->second;
  }
  /// The sum of every sample of `family` (0 when none).
  [[nodiscard]] double sum(const std::string& family) const {
    double total = 0;
    for (const auto& [name, v] : series)
      if (name == family || name.rfind(family + "{", 0) == 0) total += v;
    return total;
  }
  [[nodiscard]] std::size_t count(const std::string& family) const {
    std::size_t n = 0;
    for (const auto& [name, v] : series)
      if (name == family || name.rfind(family + "{", 0) == 0) ++n;
    return n;
  }
};

scrape parse_exposition(const std::string& text) {
  static const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*)");
  static const std::regex type(
      R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
  static const std::regex sample(
      R"re(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*")(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*")*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf))re");
  scrape out;
  std::set<std::string> helped;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n') << "the exposition must end with a newline";
  std::size_t start = 0;
  int line_no = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    auto line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    SCOPED_TRACE("line " + std::to_string(line_no) + ": " + line);
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      EXPECT_TRUE(helped.insert(m[1]).second) << "a second HELP for " << m[1];
      continue;
    }
    if (std::regex_match(line, m, type)) {
      EXPECT_TRUE(helped.count(m[1])) << "TYPE before HELP";
      EXPECT_TRUE(out.types.emplace(m[1], m[2]).second) << "a second TYPE for " << m[1];
      if (m[2] == "counter") {
        EXPECT_TRUE(std::string(m[1]).ends_with("_total")) << "a counter's name ends in _total";
      }
      continue;
    }
    if (!std::regex_match(line, m, sample)) {
      ADD_FAILURE() << "not a HELP, TYPE or sample line";
      continue;
    }
    std::string family = m[1];
    EXPECT_TRUE(out.types.count(family)) << "a sample of a family with no TYPE before it";
    auto series = family + std::string(m[2]);
    EXPECT_TRUE(out.series.emplace(series, std::stod(m[7])).second) << "a duplicate series";
  }
  return out;
}

scrape scrape_metrics(const std::string& url, const std::string& token = {}) {
  auto r = get(url, "/metrics", token);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  return parse_exposition(r.body);
}

// Scrapes until `done` holds (the scheduler's numbers are a snapshot at most ~200 ms old).
template <class F>
scrape scrape_until(const std::string& url, F&& done, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto s = scrape_metrics(url);
    if (done(s) || std::chrono::steady_clock::now() > deadline) return s;
    std::this_thread::sleep_for(50ms);
  }
}

std::string metrics_url_of(test::child_process& p) {
  return p.wait_for_output("metrics on (http://\\S+)", 30s);
}

class metrics_cluster : public ::testing::Test {
 protected:
  void SetUp() override { use_loopback_env(); }
};

TEST_F(metrics_cluster, the_schedulers_counters_move_when_a_job_runs) {
  cluster_spec spec;
  spec.workers = 2;
  spec.scheduler_args = {"--metrics-listen", "127.0.0.1:0"};
  spec.worker_args = {"--metrics-listen", "127.0.0.1:0"};
  local_cluster cluster(spec);
  auto url = metrics_url_of(cluster.scheduler());

  // Both workers joined and heartbeated (their tiers come with the heartbeats).
  auto before = scrape_until(url, [](const scrape& s) {
    return s.at("ember_workers{state=\"alive\"}") == 2 && s.count("ember_tier_used_bytes") == 8;
  });
  EXPECT_EQ(before.at("ember_workers{state=\"alive\"}"), 2) << cluster.logs();
  EXPECT_EQ(before.types["ember_tasks_done_total"], "counter");
  EXPECT_EQ(before.types["ember_jobs_running"], "gauge");
  EXPECT_EQ(before.count("ember_worker_heartbeat_age_seconds"), 2u);
  EXPECT_LT(before.sum("ember_worker_heartbeat_age_seconds"), 5.0);
  // device, pinned_host, host and disk of each worker.
  EXPECT_EQ(before.count("ember_tier_used_bytes"), 8u);
  for (const auto* family :
       {"ember_jobs_finished_total", "ember_tasks_done_total", "ember_shuffle_bytes_total",
        "ember_transport_errors_total", "ember_catalog_partitions", "ember_spilled_bytes_total",
        "ember_unspilled_bytes_total", "ember_store_hits_total", "ember_store_misses_total",
        "ember_tier_partitions", "ember_lock_waiters", "ember_lock_holders", "ember_queue_depth"}) {
    EXPECT_TRUE(before.types.count(family)) << family;
  }
  EXPECT_FALSE(std::isnan(before.at("ember_tasks{state=\"running\"}")));
  EXPECT_FALSE(std::isnan(before.at("ember_tasks{state=\"queued\"}")));

  client_options co;
  co.partitions_per_worker = 4;
  auto c = client::connect(cluster.address, co);
  auto result = c.generate("sort", 200'000, 42).repartition({"key"}).run();
  ASSERT_EQ(result.result.num_rows(), 200'000);
  auto lease = c.lock("metrics-test-lock").acquire(5s);
  auto q = c.queue("metrics-test-queue");
  q.create();
  q.put("one");
  q.put("two");

  auto jobs_before = before.at("ember_jobs_finished_total");
  auto after = scrape_until(
      url, [&](const scrape& s) { return s.at("ember_jobs_finished_total") > jobs_before; });
  EXPECT_EQ(after.at("ember_jobs_finished_total"), jobs_before + 1) << cluster.logs();
  EXPECT_GT(after.at("ember_tasks_done_total"), before.at("ember_tasks_done_total"));
  // 2 workers x 4 partitions: a map and a reduce stage of 8 tasks each at least.
  EXPECT_GE(after.at("ember_tasks_done_total") - before.at("ember_tasks_done_total"), 16);
  EXPECT_GT(after.at("ember_shuffle_bytes_total"), before.at("ember_shuffle_bytes_total"));
  EXPECT_EQ(after.at("ember_jobs_running"), 0);
  EXPECT_EQ(after.at("ember_lock_holders{lock=\"metrics-test-lock\"}"), 1);
  EXPECT_EQ(after.at("ember_lock_waiters{lock=\"metrics-test-lock\"}"), 0);
  EXPECT_EQ(after.at("ember_queue_depth{queue=\"metrics-test-queue\"}"), 2);
  EXPECT_EQ(after.at("ember_transport_errors_total"), 0);
  lease.release();
}

TEST_F(metrics_cluster, each_worker_serves_its_own_metrics) {
  cluster_spec spec;
  spec.workers = 2;
  spec.worker_args = {"--metrics-listen", "127.0.0.1:0"};
  local_cluster cluster(spec);
  std::vector<std::string> urls = {metrics_url_of(cluster.worker(0)),
                                   metrics_url_of(cluster.worker(1))};
  ASSERT_NE(urls[0], urls[1]);
  double run_before = 0;
  for (const auto& url : urls) {
    auto s = scrape_metrics(url);
    EXPECT_EQ(s.at("ember_worker_scheduler_connected"), 1);
    EXPECT_EQ(s.types["ember_worker_tasks_run_total"], "counter");
    for (const auto* state : {"running", "queued", "held_back"})
      EXPECT_FALSE(std::isnan(s.at(std::string("ember_worker_tasks{state=\"") + state + "\"}")))
          << state;
    EXPECT_EQ(s.count("ember_tier_used_bytes"), 4u);
    EXPECT_TRUE(s.types.count("ember_spilled_bytes_total"));
    EXPECT_TRUE(s.types.count("ember_store_hits_total"));
    EXPECT_TRUE(s.types.count("ember_worker_results_in_flight_bytes"));
    run_before += s.at("ember_worker_tasks_run_total");
  }
  auto c = client::connect(cluster.address);
  auto result = c.generate("sort", 100'000, 7).repartition({"key"}).run();
  ASSERT_EQ(result.result.num_rows(), 100'000);
  double run_after = 0, partitions = 0;
  for (const auto& url : urls) {
    auto s = scrape_metrics(url);
    run_after += s.at("ember_worker_tasks_run_total");
    partitions += s.sum("ember_tier_partitions");
  }
  EXPECT_GT(run_after, run_before) << "the workers' task counters did not move";
  (void)partitions;
  // The scheduler's default endpoint (no flag): loopback, and it serves the same format.
  auto sched_url = metrics_url_of(cluster.scheduler());
  EXPECT_EQ(sched_url.rfind("http://127.0.0.1:", 0), 0u) << sched_url;
  auto s = scrape_metrics(sched_url);
  EXPECT_EQ(s.at("ember_workers{state=\"alive\"}") + s.at("ember_workers{state=\"dead\"}"), 2);
}

TEST_F(metrics_cluster, api_cluster_is_the_dashboards_json) {
  cluster_spec spec;
  spec.workers = 2;
  spec.scheduler_args = {"--metrics-listen", "127.0.0.1:0"};
  local_cluster cluster(spec);
  auto url = metrics_url_of(cluster.scheduler());
  auto c = client::connect(cluster.address);
  auto result = c.generate("sort", 50'000, 3).repartition({"key"}).run();
  ASSERT_EQ(result.result.num_rows(), 50'000);
  nlohmann::json j;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    auto r = get(url, "/api/cluster");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "application/json");
    j = nlohmann::json::parse(r.body);
    if (!j["jobs"]["recent"].empty()) break;
    std::this_thread::sleep_for(50ms);
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(j["workers"].size(), 2u) << j.dump(2);
  for (const auto& w : j["workers"]) {
    EXPECT_EQ(w["backend"], "cpu");
    EXPECT_TRUE(w["alive"].get<bool>());
    EXPECT_EQ(w["tiers"].size(), 4u);
  }
  EXPECT_EQ(j["residency"]["workers"].size(), 2u);
  ASSERT_EQ(j["jobs"]["recent"].size(), 1u) << j.dump(2);
  const auto& job = j["jobs"]["recent"][0];
  EXPECT_EQ(job["state"], "done");
  ASSERT_GE(job["stages"].size(), 2u);
  for (const auto& st : job["stages"]) {
    EXPECT_EQ(st["done"], st["total"]) << st.dump();
    EXPECT_EQ(st["state"], "done");
  }
  EXPECT_GT(j["counters"]["tasks_done"].get<std::int64_t>(), 0);
  // The page itself: HTML that fetches this JSON.
  auto page = get(url, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("api/cluster"), std::string::npos);
}

TEST_F(metrics_cluster, beyond_loopback_the_endpoints_need_the_cluster_token) {
  cluster_spec spec;
  spec.workers = 1;
  spec.token = "metrics-token-0123456789";
  spec.scheduler_args = {"--metrics-listen", "0.0.0.0:0"};
  spec.worker_args = {"--metrics-listen", "0.0.0.0:0"};
  local_cluster cluster(spec);
  for (auto* p : {&cluster.scheduler(), &cluster.worker(0)}) {
    auto url = metrics_url_of(*p);
    SCOPED_TRACE(url);
    // Bound to every address; reached through loopback here.
    auto port = url.substr(url.rfind(':') + 1);
    auto local = "http://127.0.0.1:" + port;
    EXPECT_EQ(get(local, "/metrics").status, 401);
    EXPECT_EQ(get(local, "/metrics", "wrong-token").status, 401);
    EXPECT_EQ(get(local, "/metrics?token=wrong-token").status, 401);
    EXPECT_EQ(get(local, "/metrics", spec.token).status, 200);
    EXPECT_EQ(get(local, "/metrics?token=" + spec.token).status, 200);
    EXPECT_EQ(get(local, "/healthz").status, 200);
    if (p == &cluster.scheduler()) {
      EXPECT_EQ(get(local, "/").status, 401);
      EXPECT_EQ(get(local, "/api/cluster").status, 401);
      EXPECT_EQ(get(local, "/?token=" + spec.token).status, 200);
      EXPECT_EQ(get(local, "/api/cluster", spec.token).status, 200);
    }
  }
}

TEST(metrics_flags, bad_values_are_refused_naming_the_flag_or_variable) {
  test::temp_dir dir("ember-metrics-flags");
  auto data = (dir.path() / "data").string();
  // Beyond loopback without a token.
  auto r = test::run_ember("scheduler --listen 127.0.0.1:0 --data " + data +
                           " --metrics-listen 0.0.0.0:0");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--metrics-listen 0.0.0.0:0 is not a loopback address"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("--token-file"), std::string::npos) << r.output;
  // Not HOST:PORT.
  r = test::run_ember("scheduler --listen 127.0.0.1:0 --data " + data +
                      " --metrics-listen nonsense");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--metrics-listen"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("HOST:PORT, or off"), std::string::npos) << r.output;
  // From the environment: the variable is named.
  r = test::run_ember("scheduler --listen 127.0.0.1:0 --data " + data,
                      "EMBER_METRICS_LISTEN=127.0.0.1:http");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("EMBER_METRICS_LISTEN"), std::string::npos) << r.output;
  r = test::run_ember("worker --scheduler 127.0.0.1:1 --metrics-listen 1.2.3",
                      "EMBER_WORKER_METRICS_LISTEN=");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--metrics-listen"), std::string::npos) << r.output;
}

TEST(metrics_flags, off_turns_the_schedulers_endpoint_off) {
  use_loopback_env();
  cluster_spec spec;
  spec.workers = 0;
  spec.scheduler_args = {"--metrics-listen", "off"};
  local_cluster cluster(spec);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(cluster.scheduler().out().find("metrics on"), std::string::npos)
      << cluster.scheduler().out();
}

}  // namespace
}  // namespace ember
