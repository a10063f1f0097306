// The dashboard in a real headless browser (Debian's chromium) against a live cluster (an `ember
// scheduler` and two CPU `ember worker` processes) that runs jobs meanwhile: the page loads with
// the token in its URL (the endpoint is bound beyond loopback), shows both workers, their tiers,
// the residency map and the jobs with per-stage progress, and logs nothing to the console. The
// console check is itself checked first on a page that does log an error, so it cannot pass by
// missing what chromium prints. A screenshot is saved in the test's folder and copied to the
// build folder (dashboard.png).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <ember/scheduler/client.hpp>

#include "common/processes.hpp"

namespace ember {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using test::cluster_spec;
using test::local_cluster;

// $EMBER_CHROMIUM, else chromium or chromium-browser on the PATH; empty when none.
fs::path find_chromium() {
  if (const char* exe = std::getenv("EMBER_CHROMIUM")) return exe;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    for (const auto* name : {"chromium", "chromium-browser"}) {
      auto p = fs::path(dir) / name;
      if (::access(p.c_str(), X_OK) == 0) return p;
    }
  }
  return {};
}

struct browser_run {
  int status = -1;
  std::string dom;  // --dump-dom
  std::string log;  // chromium's log (--enable-logging=stderr)
};

// One headless chromium run: the DOM after `budget_ms` of virtual time, and a screenshot.
browser_run load_in_chromium(const fs::path& chromium, const std::string& url, const fs::path& dir,
                             const fs::path& screenshot, int budget_ms) {
  auto profile = dir / "profile";  // its own profile: runs in parallel do not share one
  auto dom = dir / "dom.html";
  auto err = dir / "chromium.err";
  std::string cmd = "timeout 60 '" + chromium.string() +
                    "' --headless=new --no-sandbox --disable-gpu --no-first-run "
                    "--disable-dev-shm-usage --enable-logging=stderr --v=0 --user-data-dir='" +
                    profile.string() + "' --virtual-time-budget=" + std::to_string(budget_ms) +
                    " --window-size=1400,1000 --screenshot='" + screenshot.string() +
                    "' --dump-dom '" + url + "' > '" + dom.string() + "' 2> '" + err.string() + "'";
  browser_run r;
  r.status = test::shell(cmd);
  r.dom = test::read_file(dom);
  r.log = test::read_file(err);
  return r;
}

// What the page printed to the console: chromium 156 logs every console message of a page
// (console.log and console.error alike, as "INFO:CONSOLE") and every uncaught exception
// ("Uncaught ...") this way; the dashboard logs nothing on purpose, so any such line is a fault.
std::vector<std::string> console_lines(const std::string& log) {
  std::vector<std::string> out;
  std::stringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(":CONSOLE") != std::string::npos || line.find("Uncaught") != std::string::npos)
      out.push_back(line);
  }
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class dashboard_browser : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("UCX_NET_DEVICES", "lo", 1);
    ::setenv("UCX_SOCKADDR_TLS_PRIORITY", "tcp", 1);
    _chromium = find_chromium();
    if (_chromium.empty())
      GTEST_SKIP() << "chromium is not installed (apt-get install -y chromium, or set "
                      "EMBER_CHROMIUM): the dashboard's browser test needs it";
  }
  fs::path _chromium;
};

// The check for console errors catches what chromium prints for them, so the real check below
// means something.
TEST_F(dashboard_browser, the_console_check_sees_a_pages_errors) {
  test::temp_dir dir("ember-dashboard-probe");
  auto page = dir.write("broken.html",
                        "<!DOCTYPE html><html><head><link rel=\"icon\" href=\"data:,\"></head>"
                        "<body><p id=\"p\">probe</p><script>console.error('deliberate error');"
                        "setTimeout(function () { notDefinedAnywhere(); }, 10);</script>"
                        "</body></html>");
  auto run = load_in_chromium(_chromium, "file://" + page.string(), dir.path(),
                              dir.path() / "probe.png", 1000);
  ASSERT_EQ(run.status, 0) << run.log;
  ASSERT_NE(run.dom.find("id=\"p\""), std::string::npos) << run.dom;
  auto lines = joined(console_lines(run.log));
  EXPECT_NE(lines.find("deliberate error"), std::string::npos) << run.log;
  EXPECT_NE(lines.find("Uncaught ReferenceError"), std::string::npos) << run.log;
}

TEST_F(dashboard_browser, shows_the_workers_and_a_running_job_without_console_errors) {
  cluster_spec spec;
  spec.workers = 2;
  // Jobs and a browser share the machine (with other tests under ctest -j): heartbeats of
  // 250 ms (dead after 2 s), not the test default of 100 ms (0.8 s), which a loaded run exceeded.
  spec.heartbeat_ms = 250;
  spec.token = "dashboard-token-42";
  // Beyond loopback (every address), so the page and its fetches need the token.
  spec.scheduler_args = {"--metrics-listen", "0.0.0.0:0"};
  local_cluster cluster(spec);
  auto url = cluster.scheduler().wait_for_output("metrics on (http://\\S+)", 30s);
  auto port = url.substr(url.rfind(':') + 1);
  auto page = "http://127.0.0.1:" + port + "/?token=" + spec.token;

  // Jobs run one after another while the browser looks: a shuffle of sixteen million generated
  // rows each (a few seconds on two CPU workers).
  client_options co;
  co.token = spec.token;
  co.partitions_per_worker = 4;
  auto c = client::connect(cluster.address, co);
  // A lock held and a queue with messages, for their panels.
  auto lease = c.lock("nightly-load").acquire(5s, 60s);
  auto q = c.queue("events");
  q.create();
  for (const auto* m : {"a", "b", "c"}) q.put(m);
  std::atomic<bool> stop{false};
  std::atomic<int> jobs_done{0};
  std::string job_error;
  std::thread jobs([&] {
    try {
      while (!stop) {
        auto r = c.generate("sort", 16'000'000, 11 + jobs_done).repartition({"key"}).run();
        if (r.result.num_rows() != 16'000'000) throw std::runtime_error("wrong row count");
        ++jobs_done;
      }
    } catch (const std::exception& e) {
      job_error = e.what();
    }
  });
  std::this_thread::sleep_for(300ms);  // the first job is under way

  test::temp_dir dir("ember-dashboard");
  auto screenshot = dir.path() / "dashboard.png";
  auto run = load_in_chromium(_chromium, page, dir.path(), screenshot, 5000);
  stop = true;
  jobs.join();
  EXPECT_TRUE(job_error.empty()) << job_error;

  ASSERT_EQ(run.status, 0) << run.log;
  const auto& dom = run.dom;
  SCOPED_TRACE(dom.substr(0, 20000));
  // It rendered, more than once (it refreshes every second).
  EXPECT_NE(dom.find("data-loaded=\"1\""), std::string::npos);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom, m, std::regex("data-updates=\"(\\d+)\"")));
  EXPECT_GE(std::stoi(m[1]), 2);
  EXPECT_EQ(dom.find("class=\"status bad\""), std::string::npos) << "the page reported a failure";
  // Both workers, with their backend and tiers.
  EXPECT_EQ(count_of(dom, "class=\"worker\""), 2);
  EXPECT_NE(dom.find("data-worker-id=\"0\""), std::string::npos);
  EXPECT_NE(dom.find("data-worker-id=\"1\""), std::string::npos);
  EXPECT_NE(dom.find("class=\"badge cpu\""), std::string::npos);
  EXPECT_GE(count_of(dom, "class=\"tier\" data-tier=\"device\""), 2);
  // The residency map: one row per worker.
  EXPECT_EQ(count_of(dom, "class=\"residency-row\""), 2);
  // The jobs (running or just finished), each with per-stage progress.
  EXPECT_GE(count_of(dom, "class=\"job\""), 1);
  EXPECT_NE(dom.find("data-job-id=\"1\""), std::string::npos);
  EXPECT_GE(count_of(dom, "class=\"stage\""), 2);
  EXPECT_NE(dom.find("scheduler 127.0.0.1:"), std::string::npos);
  // The lock and its holder, the queue and its depth.
  EXPECT_NE(dom.find("data-lock=\"nightly-load\""), std::string::npos);
  EXPECT_NE(dom.find(lease.owner() + " (token "), std::string::npos);
  EXPECT_NE(dom.find("data-queue=\"events\" data-depth=\"3\""), std::string::npos);
  // Nothing on the console.
  auto console = console_lines(run.log);
  EXPECT_TRUE(console.empty()) << joined(console);

  ASSERT_TRUE(fs::exists(screenshot)) << run.log;
  EXPECT_GT(fs::file_size(screenshot), 10'000u);
  std::error_code ec;
  auto kept = fs::path(EMBER_BINARY_DIR) / "dashboard.png";
  fs::copy_file(screenshot, kept, fs::copy_options::overwrite_existing, ec);
  EXPECT_FALSE(ec) << "cannot copy the screenshot to " << kept << ": " << ec.message();
  std::cout << "dashboard screenshot: " << kept.string() << " (" << jobs_done << " jobs ran, "
            << count_of(dom, "data-job-state=\"running\"") << " running when it was taken)\n";
}

}  // namespace
}  // namespace ember
