#include "bench_report.hpp"

#include <ctime>
#include <fstream>
#include <ostream>

#include <ember/host/error.hpp>

#include "machine_info.hpp"
#include "table_printer.hpp"

namespace ember::cli {
namespace {

std::string scaled(double v, const char* const* units, int count, const char* suffix) {
  int u = 0;
  while (v >= 1000 && u + 1 < count) {
    v /= 1000;
    ++u;
  }
  return format(v >= 100 || u == 0 ? "%.0f" : "%.3g", v) + " " + units[u] + suffix;
}

// The UTC time `ago` before now.
std::string utc_before(std::chrono::steady_clock::duration ago) {
  auto then = std::chrono::system_clock::now() -
              std::chrono::duration_cast<std::chrono::system_clock::duration>(ago);
  std::time_t now = std::chrono::system_clock::to_time_t(then);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double per_second(double amount, double seconds) { return seconds > 0 ? amount / seconds : 0.0; }

// Times and latencies: "seconds", "p50_us", "max_seconds"; everything else is a rate.
bool lower_is_better(const std::string& metric) {
  auto ends_with = [&](const std::string& suffix) {
    return metric.size() >= suffix.size() &&
           metric.compare(metric.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with("seconds") || ends_with("_us");
}

}  // namespace

std::string human_bytes(double bytes) {
  static const char* const units[] = {"B", "KB", "MB", "GB", "TB"};
  return scaled(bytes, units, 5, "");
}

std::string human_rate(double bytes_per_second) { return human_bytes(bytes_per_second) + "/s"; }

std::string human_count_rate(double per_second) {
  static const char* const units[] = {"", "k", "M", "G"};
  auto text = scaled(per_second, units, 4, "/s");
  return text;
}

double report_comparison::ratio() const noexcept {
  if (ember <= 0 || other <= 0) return 0;
  return lower_is_better(metric) ? other / ember : ember / other;
}

bench_report::bench_report(std::string workload, nlohmann::json parameters,
                           std::chrono::steady_clock::time_point start)
    : _workload(std::move(workload)),
      _parameters(std::move(parameters)),
      _start(start),
      _started_at(utc_before(std::chrono::steady_clock::now() - start)) {}

void bench_report::set_machine(nlohmann::json machine) { _machine = std::move(machine); }
void bench_report::set_cluster(nlohmann::json cluster) { _cluster = std::move(cluster); }
void bench_report::add_stage(report_stage stage) { _stages.push_back(std::move(stage)); }
void bench_report::set_tiers(const report_tiers& tiers) { _tiers = tiers; }
void bench_report::set_shuffle(report_shuffle shuffle) { _shuffle = std::move(shuffle); }
void bench_report::set_residency(const report_residency& residency) { _residency = residency; }
void bench_report::add_latency(report_latency latency) { _latency.push_back(std::move(latency)); }
void bench_report::add_comparison(report_comparison comparison) {
  _comparisons.push_back(std::move(comparison));
}
void bench_report::not_measured(const std::string& what, const std::string& reason) {
  _not_measured[what] = reason;
}

nlohmann::json bench_report::to_json() const {
  using nlohmann::json;
  auto explained = [&](const char* section) {
    EMBER_EXPECTS(_not_measured.contains(section), logic_error,
                  "bench " + _workload + ": the report's " + section +
                      " section is neither measured nor explained");
    return json(nullptr);
  };
  json j;
  j["report_version"] = 1;
  j["workload"] = _workload;
  j["parameters"] = _parameters;
  j["started_at"] = _started_at;
  j["wall_seconds"] = seconds_since(_start);
  j["machine"] = _machine.is_null() ? host_machine_info() : _machine;
  j["cluster"] = _cluster.is_null() ? json{{"kind", "none"}, {"workers", json::array()}} : _cluster;
  j["stages"] = json::array();
  for (const auto& s : _stages) {
    auto median = summarize(s.seconds).median;
    json stage = {{"name", s.name},
                  {"seconds", spread(s.seconds)},
                  {"rows", s.rows},
                  {"bytes", s.bytes},
                  {"rows_per_second", per_second(static_cast<double>(s.rows), median)},
                  {"bytes_per_second", per_second(static_cast<double>(s.bytes), median)}};
    if (!s.note.empty()) stage["note"] = s.note;
    j["stages"].push_back(std::move(stage));
  }
  if (_tiers) {
    const auto& t = *_tiers;
    j["tiers"] = {{"spilled_to_host_bytes", t.spilled_to_host_bytes},
                  {"spilled_to_disk_bytes", t.spilled_to_disk_bytes},
                  {"unspilled_bytes", t.unspilled_bytes},
                  {"spills", t.spills},
                  {"unspills", t.unspills},
                  {"spill_seconds", t.spill_seconds},
                  {"unspill_seconds", t.unspill_seconds},
                  {"device_peak_bytes", t.device_peak_bytes},
                  {"device_limit_bytes", t.device_limit_bytes}};
  } else {
    j["tiers"] = explained("tiers");
  }
  if (_shuffle) {
    json links = json::array();
    for (const auto& l : _shuffle->links)
      links.push_back({{"from", l.from},
                       {"to", l.to},
                       {"bytes", l.bytes},
                       {"seconds", l.seconds},
                       {"bytes_per_second", per_second(static_cast<double>(l.bytes), l.seconds)}});
    j["shuffle"] = {
        {"bytes", _shuffle->bytes},
        {"seconds", _shuffle->seconds},
        {"bytes_per_second", per_second(static_cast<double>(_shuffle->bytes), _shuffle->seconds)},
        {"links", std::move(links)}};
  } else {
    j["shuffle"] = explained("shuffle");
  }
  if (_residency) {
    j["residency"] = {{"lookups", _residency->lookups()},
                      {"hits", _residency->hits},
                      {"tier_hits", _residency->tier_hits},
                      {"misses", _residency->misses},
                      {"hit_rate", _residency->hit_rate()}};
  } else {
    j["residency"] = explained("residency");
  }
  if (!_latency.empty()) {
    j["latency"] = json::array();
    for (const auto& l : _latency)
      j["latency"].push_back({{"name", l.name},
                              {"count", l.count},
                              {"p50_us", spread(l.p50_us)},
                              {"p99_us", spread(l.p99_us)},
                              {"max_us", spread(l.max_us)}});
  } else {
    j["latency"] = explained("latency");
  }
  j["comparisons"] = json::array();
  for (const auto& c : _comparisons)
    j["comparisons"].push_back({{"stage", c.stage},
                                {"against", c.against},
                                {"kind", c.kind},
                                {"metric", c.metric},
                                {"ember", c.ember},
                                {"other", c.other},
                                {"ratio", c.ratio()}});
  j["not_measured"] = _not_measured;
  j["details"] = _details;
  return j;
}

void bench_report::print_summary(std::ostream& out) const {
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : _stages) {
    auto st = summarize(s.seconds);
    rows.push_back({s.name, format("%.4f", st.median),
                    format("%.4f", st.min) + " - " + format("%.4f", st.max),
                    human_count_rate(per_second(static_cast<double>(s.rows), st.median)),
                    human_rate(per_second(static_cast<double>(s.bytes), st.median))});
  }
  out << "\n" << _workload << ": " << _stages.size() << " stage(s), medians\n";
  print_cells({"stage", "seconds", "min - max", "rows/s", "bytes/s"}, rows, out);
  if (!_comparisons.empty()) {
    rows.clear();
    for (const auto& c : _comparisons) {
      auto value = [&](double v) {
        if (c.metric.find("_us") != std::string::npos) return format("%.1f us", v);
        if (lower_is_better(c.metric)) return format("%.4f s", v);
        if (c.metric.rfind("bytes_per_second", 0) == 0) return human_rate(v);
        return human_count_rate(v);
      };
      rows.push_back({c.stage, c.against + " (" + c.kind + ")", value(c.ember), value(c.other),
                      format("%.2fx", c.ratio())});
    }
    out << "\n";
    print_cells({"stage", "beside", "ember", "other", "ember speed / other"}, rows, out);
  }
  if (_tiers) {
    out << "\nmemory tiers: spilled " << human_bytes(double(_tiers->spilled_to_host_bytes))
        << " to host, " << human_bytes(double(_tiers->spilled_to_disk_bytes))
        << " to disk; brought back " << human_bytes(double(_tiers->unspilled_bytes)) << "\n";
  }
  if (_shuffle) {
    out << "\nshuffle: " << human_bytes(double(_shuffle->bytes)) << " between workers in "
        << format("%.4f", _shuffle->seconds) << " s\n";
    rows.clear();
    for (const auto& l : _shuffle->links)
      rows.push_back({l.from, l.to, human_bytes(double(l.bytes)), format("%.4f", l.seconds),
                      human_rate(per_second(double(l.bytes), l.seconds))});
    if (!rows.empty()) print_cells({"from", "to", "bytes", "seconds", "bandwidth"}, rows, out);
  }
  if (_residency) {
    out << "\nresidency: " << _residency->hits << " hits of " << _residency->lookups()
        << " lookups (" << format("%.2f", _residency->hit_rate()) << ")\n";
  }
  if (!_latency.empty()) {
    rows.clear();
    for (const auto& l : _latency)
      rows.push_back({l.name, format("%.1f", summarize(l.p50_us).median),
                      format("%.1f", summarize(l.p99_us).median),
                      format("%.1f", summarize(l.max_us).median)});
    out << "\n";
    print_cells({"latency", "p50 us", "p99 us", "max us"}, rows, out);
  }
  for (const auto& [what, why] : _not_measured.items())
    out << "(" << what << " not measured: " << why.get<std::string>() << ")\n";
}

void bench_report::write(const std::string& path, std::ostream& out) const {
  if (path.empty()) return;
  auto report = to_json();
  std::ofstream file(path);
  EMBER_EXPECTS(file.good(), invalid_input, "--json: cannot write '" + path + "'");
  file << report.dump(2) << "\n";
  file.close();
  EMBER_EXPECTS(!file.fail(), invalid_input, "--json: writing '" + path + "' failed");
  out << "\nreport written to " << path << "\n";
}

}  // namespace ember::cli
