#include "bench_report_render.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <ember/host/error.hpp>

#include "bench_report.hpp"

namespace ember::cli {

CLI::App* bench_report_render_options::add_to(CLI::App& bench) {
  auto& cmd = *bench.add_subcommand(
      "report", "Render `ember bench ... --json` reports as a Markdown summary and an SVG chart");
  cmd.add_option("files", files, "The JSON reports to render")->required();
  cmd.add_option("--svg", svg_path, "Write the SVG chart here");
  cmd.add_option("--markdown", markdown_path,
                 "Write the Markdown here (default: stdout, unless --svg is given)");
  cmd.add_option("--title", title, "Title of the chart and the Markdown");
  return &cmd;
}

namespace {

using nlohmann::json;

// ---- reading: a structural check that names the file and the JSON path -------------------------

/// A JSON Pointer token: '~' and '/' escaped as RFC 6901 says.
std::string pointer_token(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

/// Walks one report; every accessor takes the parent's path and throws at the first bad field.
class report_checker {
 public:
  explicit report_checker(std::string file) : _file(std::move(file)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw invalid_input(_file + ": " + (path.empty() ? "/" : path) + ": " + what);
  }

  const json& field(const json& parent, const std::string& path, const char* key) const {
    auto it = parent.find(key);
    if (it == parent.end()) fail(path + "/" + key, "missing");
    return *it;
  }
  const json& object(const json& parent, const std::string& path, const char* key) const {
    const auto& v = field(parent, path, key);
    if (!v.is_object()) fail(path + "/" + key, "expected an object");
    return v;
  }
  /// The object, or nullptr when the field is null.
  const json* object_or_null(const json& parent, const std::string& path, const char* key) const {
    const auto& v = field(parent, path, key);
    if (v.is_null()) return nullptr;
    if (!v.is_object()) fail(path + "/" + key, "expected an object or null");
    return &v;
  }
  const json& array(const json& parent, const std::string& path, const char* key,
                    bool non_empty) const {
    const auto& v = field(parent, path, key);
    if (!v.is_array()) fail(path + "/" + key, "expected an array");
    if (non_empty && v.empty()) fail(path + "/" + key, "expected at least one item");
    return v;
  }
  std::string text(const json& parent, const std::string& path, const char* key) const {
    const auto& v = field(parent, path, key);
    if (!v.is_string()) fail(path + "/" + key, "expected a string");
    return v.get<std::string>();
  }
  void text_or_null(const json& parent, const std::string& path, const char* key) const {
    const auto& v = field(parent, path, key);
    if (!v.is_string() && !v.is_null()) fail(path + "/" + key, "expected a string or null");
  }
  double number(const json& parent, const std::string& path, const char* key) const {
    const auto& v = field(parent, path, key);
    if (!v.is_number()) fail(path + "/" + key, "expected a number");
    return v.get<double>();
  }
  std::int64_t integer(const json& parent, const std::string& path, const char* key) const {
    const auto& v = field(parent, path, key);
    if (!v.is_number_integer()) fail(path + "/" + key, "expected an integer");
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(INT64_MAX))
      fail(path + "/" + key, "integer out of range");
    return v.get<std::int64_t>();
  }
  loaded_spread spread(const json& parent, const std::string& path, const char* key) const {
    const auto& s = object(parent, path, key);
    auto p = path + "/" + key;
    loaded_spread out{number(s, p, "median"), number(s, p, "min"), number(s, p, "max")};
    const auto& all = array(s, p, "all", true);
    for (std::size_t i = 0; i < all.size(); ++i)
      if (!all[i].is_number()) fail(p + "/all/" + std::to_string(i), "expected a number");
    return out;
  }
  /// Each item of the array at `key` must be an object; returns its path prefix.
  const json& item(const json& items, const std::string& path, std::size_t i) const {
    if (!items[i].is_object()) fail(path + "/" + std::to_string(i), "expected an object");
    return items[i];
  }

 private:
  std::string _file;
};

loaded_report::tiers load_tiers(const report_checker& c, const json& t) {
  const std::string p = "/tiers";
  loaded_report::tiers out;
  out.spilled_to_host_bytes = c.integer(t, p, "spilled_to_host_bytes");
  out.spilled_to_disk_bytes = c.integer(t, p, "spilled_to_disk_bytes");
  out.unspilled_bytes = c.integer(t, p, "unspilled_bytes");
  out.spills = c.integer(t, p, "spills");
  out.unspills = c.integer(t, p, "unspills");
  out.spill_seconds = c.number(t, p, "spill_seconds");
  out.unspill_seconds = c.number(t, p, "unspill_seconds");
  for (const char* optional : {"device_peak_bytes", "device_limit_bytes"})
    if (t.contains(optional)) (void)c.integer(t, p, optional);
  return out;
}

loaded_report::shuffle load_shuffle(const report_checker& c, const json& s) {
  const std::string p = "/shuffle";
  loaded_report::shuffle out;
  out.bytes = c.integer(s, p, "bytes");
  out.seconds = c.number(s, p, "seconds");
  out.bytes_per_second = c.number(s, p, "bytes_per_second");
  const auto& links = c.array(s, p, "links", false);
  for (std::size_t i = 0; i < links.size(); ++i) {
    const auto& l = c.item(links, p + "/links", i);
    auto lp = p + "/links/" + std::to_string(i);
    out.links.push_back({c.text(l, lp, "from"), c.text(l, lp, "to"), c.integer(l, lp, "bytes"),
                         c.number(l, lp, "seconds"), c.number(l, lp, "bytes_per_second")});
  }
  return out;
}

}  // namespace

loaded_report load_report(const std::string& file, const json& j) {
  report_checker c(file);
  if (!j.is_object()) c.fail("", "expected a JSON object (an ember bench report)");
  loaded_report r;
  r.file = file;

  const auto& version = c.field(j, "", "report_version");
  if (!version.is_number_integer()) c.fail("/report_version", "expected an integer");
  if (version.get<std::int64_t>() != 1)
    c.fail("/report_version",
           "report version " + version.dump() + " is not supported (this ember reads version 1)");
  r.workload = c.text(j, "", "workload");
  (void)c.object(j, "", "parameters");
  r.started_at = c.text(j, "", "started_at");
  r.wall_seconds = c.number(j, "", "wall_seconds");

  const auto& m = c.object(j, "", "machine");
  const std::string mp = "/machine";
  r.git_revision = c.text(m, mp, "git_revision");
  for (const char* key : {"ember_version", "compiler", "os", "ucx_version"})
    (void)c.text(m, mp, key);
  r.cpu = c.text(m, mp, "cpu");
  r.hardware_threads = c.integer(m, mp, "hardware_threads");
  (void)c.integer(m, mp, "memory_bytes");
  r.backend = c.text(m, mp, "backend");
  for (const char* key :
       {"cuda_toolkit_version", "cuda_runtime_version", "cuda_driver_version", "nccl_version"})
    c.text_or_null(m, mp, key);
  const auto& gpus = c.array(m, mp, "gpus", false);
  for (std::size_t i = 0; i < gpus.size(); ++i) {
    const auto& g = c.item(gpus, mp + "/gpus", i);
    auto gp = mp + "/gpus/" + std::to_string(i);
    r.gpus.push_back(c.text(g, gp, "name"));
    (void)c.integer(g, gp, "memory_bytes");
  }
  if (m.contains("gpu_note")) r.gpu_note = c.text(m, mp, "gpu_note");

  const auto& cluster = c.object(j, "", "cluster");
  r.cluster_kind = c.text(cluster, "/cluster", "kind");
  const auto& workers = c.array(cluster, "/cluster", "workers", false);
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const auto& w = c.item(workers, "/cluster/workers", i);
    auto wp = "/cluster/workers/" + std::to_string(i);
    (void)c.integer(w, wp, "id");
    (void)c.text(w, wp, "backend");
  }
  r.cluster_workers = static_cast<std::int64_t>(workers.size());

  const auto& stages = c.array(j, "", "stages", true);
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const auto& s = c.item(stages, "/stages", i);
    auto sp = "/stages/" + std::to_string(i);
    loaded_report::stage stage;
    stage.name = c.text(s, sp, "name");
    stage.seconds = c.spread(s, sp, "seconds");
    stage.rows = c.integer(s, sp, "rows");
    stage.bytes = c.integer(s, sp, "bytes");
    stage.rows_per_second = c.number(s, sp, "rows_per_second");
    stage.bytes_per_second = c.number(s, sp, "bytes_per_second");
    r.stages.push_back(std::move(stage));
  }

  if (const auto* t = c.object_or_null(j, "", "tiers")) r.memory_tiers = load_tiers(c, *t);
  if (const auto* s = c.object_or_null(j, "", "shuffle")) r.shuffle_links = load_shuffle(c, *s);
  if (const auto* s = c.object_or_null(j, "", "residency")) {
    r.store_residency = loaded_report::residency{
        c.integer(*s, "/residency", "lookups"), c.integer(*s, "/residency", "hits"),
        c.integer(*s, "/residency", "misses"), c.number(*s, "/residency", "hit_rate")};
  }
  const auto& latency = c.field(j, "", "latency");
  if (!latency.is_null()) {
    const auto& items = c.array(j, "", "latency", true);
    r.latencies.emplace();
    for (std::size_t i = 0; i < items.size(); ++i) {
      const auto& l = c.item(items, "/latency", i);
      auto lp = "/latency/" + std::to_string(i);
      r.latencies->push_back({c.text(l, lp, "name"), c.integer(l, lp, "count"),
                              c.spread(l, lp, "p50_us"), c.spread(l, lp, "p99_us"),
                              c.spread(l, lp, "max_us")});
    }
  }

  const auto& comparisons = c.array(j, "", "comparisons", true);
  for (std::size_t i = 0; i < comparisons.size(); ++i) {
    const auto& x = c.item(comparisons, "/comparisons", i);
    auto xp = "/comparisons/" + std::to_string(i);
    r.comparisons.push_back({c.text(x, xp, "stage"), c.text(x, xp, "against"),
                             c.text(x, xp, "kind"), c.text(x, xp, "metric"),
                             c.number(x, xp, "ember"), c.number(x, xp, "other"),
                             c.number(x, xp, "ratio")});
  }

  const auto& not_measured = c.object(j, "", "not_measured");
  for (const auto& [what, why] : not_measured.items()) {
    if (!why.is_string()) c.fail("/not_measured/" + pointer_token(what), "expected a string");
    r.not_measured.emplace_back(what, why.get<std::string>());
  }
  auto explained = [&](const char* section, bool measured) {
    if (!measured && !not_measured.contains(section))
      c.fail(std::string("/not_measured/") + section,
             std::string("missing: ") + section + " is null without a reason");
  };
  explained("tiers", r.memory_tiers.has_value());
  explained("shuffle", r.shuffle_links.has_value());
  explained("residency", r.store_residency.has_value());
  explained("latency", r.latencies.has_value());
  (void)c.object(j, "", "details");
  return r;
}

loaded_report read_report_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EMBER_EXPECTS(in.good(), invalid_input, path + ": cannot open (" + std::strerror(errno) + ")");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EMBER_EXPECTS(!in.bad(), invalid_input, path + ": cannot read");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 3, column 5: ...": the id goes.
    std::string message = e.what();
    if (auto close = message.find("] ");
        message.rfind("[json.exception", 0) == 0 && close != std::string::npos)
      message = message.substr(close + 2);
    throw invalid_input(path + ": not JSON: " + message);
  }
  return load_report(path, j);
}

namespace {

// ---- text helpers --------------------------------------------------------------------------

/// At most `limit` characters (UTF-8 code points), the last one an ellipsis when cut.
std::string truncated(const std::string& s, std::size_t limit = 40) {
  std::size_t points = 0, cut = std::string::npos;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;  // continuation byte
    if (points == limit - 1) cut = i;
    if (++points > limit) return s.substr(0, cut) + "\u2026";
  }
  return s;
}

std::size_t code_points(const std::string& s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char ch) { return (static_cast<unsigned char>(ch) & 0xC0) != 0x80; }));
}

/// A Markdown table cell: '|' escaped, line breaks as spaces.
std::string cell(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|')
      out += "\\|";
    else if (ch == '\n' || ch == '\r')
      out += ' ';
    else
      out += ch;
  }
  return out;
}

/// A Markdown table; the first `text_columns` columns are left-aligned, the numbers after them
/// right-aligned.
void table(std::ostringstream& out, const std::vector<std::string>& header,
           const std::vector<std::vector<std::string>>& rows, std::size_t text_columns) {
  auto line = [&](const std::vector<std::string>& cells) {
    out << "|";
    for (const auto& c : cells) out << " " << cell(c) << " |";
    out << "\n";
  };
  line(header);
  out << "|";
  for (std::size_t i = 0; i < header.size(); ++i) out << (i < text_columns ? " --- |" : " ---: |");
  out << "\n";
  for (const auto& r : rows) line(r);
  out << "\n";
}

/// Text for XML character data and attribute values; characters XML 1.0 forbids become '?'.
std::string xml(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20 && ch != '\t' && ch != '\n' && ch != '\r')
          out += '?';
        else
          out += ch;
    }
  }
  return out;
}

std::string ratio_text(double ratio) { return format("%.2fx", ratio); }

std::string seconds_text(double s) { return format("%.4g", s); }

std::string comparison_value(const loaded_report::comparison& c, double v) {
  // Metrics: "seconds"; latencies in microseconds ("p50_us"); rates, possibly qualified
  // ("bytes_per_second_per_worker", "messages_per_second").
  auto has = [&](const char* part) { return c.metric.find(part) != std::string::npos; };
  if (has("_us")) return format("%.1f us", v) + " (" + c.metric + ")";
  if (c.metric == "seconds") return format("%.4g s", v);
  if (c.metric.rfind("bytes_per_second", 0) == 0) return human_rate(v);
  if (has("_per_second")) return human_count_rate(v);
  return format("%.4g", v) + " " + c.metric;
}

std::string gpus_text(const loaded_report& r) {
  if (r.gpus.empty()) return r.gpu_note.empty() ? "no GPU" : "no GPU (" + r.gpu_note + ")";
  std::string out;
  for (std::size_t i = 0; i < r.gpus.size(); ++i) out += (i ? ", " : "") + r.gpus[i];
  return out;
}

std::string short_revision(const std::string& rev) { return rev.substr(0, 12); }

/// The highest ratio of a report, with what it compares.
const loaded_report::comparison* best_comparison(const loaded_report& r) {
  const loaded_report::comparison* best = nullptr;
  for (const auto& c : r.comparisons)
    if (best == nullptr || c.ratio > best->ratio) best = &c;
  return best;
}

}  // namespace

// ---- Markdown --------------------------------------------------------------------------------

std::string render_markdown(const std::vector<loaded_report>& reports, const std::string& title) {
  std::ostringstream out;
  out << "# " << title << "\n\n";
  if (reports.size() > 1) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : reports) {
      const auto* best = best_comparison(r);
      rows.push_back(
          {r.file, r.workload, short_revision(r.git_revision), format("%.2f", r.wall_seconds),
           best ? ratio_text(best->ratio) + " (" + best->stage + " vs " + best->against + ")"
                : "-"});
    }
    table(out, {"file", "workload", "revision", "wall s", "best ratio"}, rows, 3);
  }
  for (const auto& r : reports) {
    out << "## " << r.workload << ", " << r.started_at << " (" << r.file << ")\n\n";
    out << "- revision: `" << r.git_revision << "`\n";
    out << "- CPU: " << r.cpu << ", " << r.hardware_threads << " hardware threads\n";
    out << "- GPUs: " << gpus_text(r) << "\n";
    out << "- backend: " << r.backend << "\n";
    out << "- cluster: " << r.cluster_kind << ", " << r.cluster_workers << " worker(s)\n";
    out << "- wall: " << format("%.2f", r.wall_seconds) << " s\n\n";

    std::vector<std::vector<std::string>> rows;
    for (const auto& s : r.stages)
      rows.push_back({s.name, seconds_text(s.seconds.median),
                      seconds_text(s.seconds.min) + " - " + seconds_text(s.seconds.max),
                      human_count_rate(s.rows_per_second), human_rate(s.bytes_per_second)});
    out << "### Stages\n\n";
    table(out, {"stage", "median s", "min - max s", "rows/s", "bytes/s"}, rows, 1);

    rows.clear();
    for (const auto& c : r.comparisons)
      rows.push_back({c.stage, c.against, c.kind, comparison_value(c, c.ember),
                      comparison_value(c, c.other), ratio_text(c.ratio)});
    out << "### Comparisons\n\nratio: ember's speed over the other's (above 1.00x ember is "
           "faster; for a ceiling, the fraction of it reached)\n\n";
    table(out, {"stage", "against", "kind", "ember", "other", "ratio"}, rows, 3);

    if (r.memory_tiers) {
      const auto& t = *r.memory_tiers;
      out << "### Memory tiers\n\n";
      table(out,
            {"spilled to host", "spilled to disk", "brought back", "spills", "unspills", "spill s",
             "unspill s"},
            {{human_bytes(double(t.spilled_to_host_bytes)),
              human_bytes(double(t.spilled_to_disk_bytes)), human_bytes(double(t.unspilled_bytes)),
              std::to_string(t.spills), std::to_string(t.unspills), seconds_text(t.spill_seconds),
              seconds_text(t.unspill_seconds)}},
            0);
    }
    if (r.shuffle_links) {
      const auto& s = *r.shuffle_links;
      out << "### Shuffle\n\n"
          << human_bytes(double(s.bytes)) << " between workers in " << seconds_text(s.seconds)
          << " s (" << human_rate(s.bytes_per_second) << ")\n\n";
      rows.clear();
      for (const auto& l : s.links)
        rows.push_back({l.from, l.to, human_bytes(double(l.bytes)), seconds_text(l.seconds),
                        human_rate(l.bytes_per_second)});
      if (!rows.empty()) table(out, {"from", "to", "bytes", "seconds", "bandwidth"}, rows, 2);
    }
    if (r.store_residency) {
      const auto& s = *r.store_residency;
      out << "### Residency\n\n";
      table(out, {"hits / lookups", "misses", "hit rate"},
            {{std::to_string(s.hits) + " / " + std::to_string(s.lookups), std::to_string(s.misses),
              format("%.1f%%", 100 * s.hit_rate)}},
            0);
    }
    if (r.latencies) {
      rows.clear();
      for (const auto& l : *r.latencies)
        rows.push_back({l.name, std::to_string(l.count), format("%.1f", l.p50_us.median),
                        format("%.1f", l.p99_us.median), format("%.1f", l.max_us.median)});
      out << "### Latency (medians over rounds)\n\n";
      table(out, {"operation", "per round", "p50 us", "p99 us", "max us"}, rows, 1);
    }
    if (!r.not_measured.empty()) {
      out << "### Not measured\n\n";
      for (const auto& [what, why] : r.not_measured) out << "- " << what << ": " << why << "\n";
      out << "\n";
    }
  }
  return out.str();
}

// ---- SVG -------------------------------------------------------------------------------------

namespace {

// Geometry, in SVG user units (pixels). Labels use the generic monospace family, so a
// character is about 0.6 of the font size wide and label widths can be computed.
constexpr double margin = 16;
constexpr double label_font = 12;
constexpr double char_width = label_font * 0.6;
constexpr double row_height = 22;
constexpr double bar_height = 14;
constexpr double min_bar_area = 420;
constexpr double value_width = 110;  // room for the value label after a bar

std::string num(double v) { return format("%.1f", v); }

struct svg_text {
  double x, y;
  std::string text;
  std::string anchor = "start";
  std::string extra;  // more attributes
};

void put(std::ostringstream& out, const svg_text& t) {
  out << "<text x=\"" << num(t.x) << "\" y=\"" << num(t.y) << "\" text-anchor=\"" << t.anchor
      << "\"" << (t.extra.empty() ? "" : " " + t.extra) << ">" << xml(t.text) << "</text>\n";
}

std::string comparison_label(const loaded_report::comparison& c) {
  return truncated(c.stage + " vs " + c.against) + ": " + ratio_text(c.ratio);
}

/// The log10 range of the ratio axis: whole decades holding every ratio and 1.0.
std::pair<double, double> ratio_decades(const loaded_report& r) {
  double lo = 0, hi = 0;
  for (const auto& c : r.comparisons) {
    if (c.ratio <= 0) continue;
    lo = std::min(lo, std::floor(std::log10(c.ratio)));
    hi = std::max(hi, std::ceil(std::log10(c.ratio)));
  }
  if (lo == hi) hi = lo + 1;
  return {lo, hi};
}

}  // namespace

std::string render_svg(const std::vector<loaded_report>& reports, const std::string& title) {
  // The label column fits the longest (truncated) label of any report, so every group's bars
  // start at the same x.
  std::size_t label_chars = 10;
  for (const auto& r : reports) {
    for (const auto& s : r.stages)
      label_chars = std::max(label_chars, code_points(truncated(s.name)));
    for (const auto& c : r.comparisons)
      label_chars = std::max(label_chars, code_points(comparison_label(c)));
  }
  const double label_w = double(label_chars) * char_width + 12;
  const double bars_x = margin + label_w;
  const double bars_w = min_bar_area;
  const double width = bars_x + bars_w + value_width + margin;

  std::ostringstream body;
  double y = margin;
  body << "<text x=\"" << num(margin) << "\" y=\"" << num(y + 18) << "\" class=\"title\">"
       << xml(title) << "</text>\n";
  y += 36;
  for (std::size_t index = 0; index < reports.size(); ++index) {
    const auto& r = reports[index];
    body << "<g id=\"report-" << index << "\" transform=\"translate(0," << num(y) << ")\">\n";
    body << "<title>" << xml(r.file + ": " + r.workload + ", " + r.started_at) << "</title>\n";
    double gy = 0;
    put(body,
        {margin, gy + 16,
         truncated(r.workload + ", " + r.started_at + ", " + short_revision(r.git_revision), 80),
         "start", "class=\"heading\""});
    gy += 22;
    put(body, {margin, gy + 12,
               truncated(r.cpu + " | " + (r.gpus.empty() ? "no GPU" : gpus_text(r)) + " | " +
                             r.backend + " | " + r.cluster_kind + ", " +
                             std::to_string(r.cluster_workers) + " worker(s) | " + r.file,
                         110),
               "start", "class=\"note\""});
    gy += 24;

    // Stage medians, scaled to the slowest stage (or the largest max) of this report.
    put(body, {margin, gy + 14, "stage median seconds (whiskers: min - max)", "start",
               "class=\"panel\""});
    gy += 22;
    double scale_max = 0;
    for (const auto& s : r.stages)
      scale_max = std::max({scale_max, s.seconds.median, s.seconds.max});
    auto sx = [&](double v) {
      return bars_x + (scale_max > 0 ? std::clamp(v / scale_max, 0.0, 1.0) * bars_w : 0.0);
    };
    for (const auto& s : r.stages) {
      double cy = gy + row_height / 2;
      put(body, {bars_x - 8, cy + 4, truncated(s.name), "end", "class=\"label\""});
      body << "<rect class=\"stage\" x=\"" << num(bars_x) << "\" y=\"" << num(cy - bar_height / 2)
           << "\" width=\"" << num(sx(s.seconds.median) - bars_x) << "\" height=\""
           << num(bar_height) << "\"/>\n";
      body << "<line class=\"whisker\" x1=\"" << num(sx(s.seconds.min)) << "\" x2=\""
           << num(sx(s.seconds.max)) << "\" y1=\"" << num(cy) << "\" y2=\"" << num(cy) << "\"/>\n";
      put(body, {std::max(sx(s.seconds.median), sx(s.seconds.max)) + 6, cy + 4,
                 seconds_text(s.seconds.median) + " s", "start", "class=\"value\""});
      gy += row_height;
    }
    gy += 14;

    // Comparison ratios on a log axis; bars grow from the 1.0 line (right: ember faster).
    put(body, {margin, gy + 14,
               "ember speed over the other's, log scale (right of 1.0: ember faster; ceiling: "
               "fraction reached)",
               "start", "class=\"panel\""});
    gy += 22;
    auto [lo, hi] = ratio_decades(r);
    auto rx = [&, lo = lo, hi = hi](double ratio) {
      double l = ratio > 0 ? std::log10(ratio) : lo;
      return bars_x + (std::clamp(l, lo, hi) - lo) / (hi - lo) * bars_w;
    };
    const double axis_top = gy;
    const double axis_bottom = gy + double(r.comparisons.size()) * row_height;
    for (const auto& c : r.comparisons) {
      double cy = gy + row_height / 2;
      put(body, {bars_x - 8, cy + 4, comparison_label(c), "end", "class=\"label\""});
      double x1 = rx(1.0), x2 = rx(c.ratio);
      body << "<rect class=\"" << (c.ratio >= 1 ? "faster" : "slower") << "\" x=\""
           << num(std::min(x1, x2)) << "\" y=\"" << num(cy - bar_height / 2) << "\" width=\""
           << num(std::max(std::abs(x2 - x1), 1.0)) << "\" height=\"" << num(bar_height)
           << "\"><title>"
           << xml(c.stage + " vs " + c.against + ": " + ratio_text(c.ratio) + " (" + c.kind + ", " +
                  c.metric + ")")
           << "</title></rect>\n";
      gy += row_height;
    }
    // The axis: a tick and a label per decade, and the marked 1.0 line.
    for (double d = lo; d <= hi; d += 1) {
      double x = rx(std::pow(10.0, d));
      body << "<line class=\"tick\" x1=\"" << num(x) << "\" x2=\"" << num(x) << "\" y1=\""
           << num(axis_top) << "\" y2=\"" << num(axis_bottom + 4) << "\"/>\n";
      // No decade label under the 1.0 line's own label.
      if (std::abs(x - rx(1.0)) > 80)
        put(body, {x, axis_bottom + 16, format("%g", std::pow(10.0, d)) + "x", "middle",
                   "class=\"value\""});
    }
    body << "<line class=\"one\" x1=\"" << num(rx(1.0)) << "\" x2=\"" << num(rx(1.0)) << "\" y1=\""
         << num(axis_top - 4) << "\" y2=\"" << num(axis_bottom + 4) << "\"/>\n";
    put(body, {rx(1.0), axis_bottom + 16, "1.0 (ember = other)", "middle", "class=\"one-label\""});
    gy += 30;
    body << "</g>\n";
    y += gy + 20;
  }
  const double height = y;

  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(width) << "\" height=\""
      << num(height) << "\" viewBox=\"0 0 " << num(width) << " " << num(height) << "\">\n"
      << "<title>" << xml(title) << "</title>\n"
      << "<style>\n"
      << "text { font-family: monospace; font-size: " << label_font << "px; fill: #222; }\n"
      << ".title { font-size: 18px; font-weight: bold; }\n"
      << ".heading { font-size: 15px; font-weight: bold; }\n"
      << ".panel { font-size: 12px; font-style: italic; fill: #444; }\n"
      << ".note, .value { font-size: 11px; fill: #555; }\n"
      << ".stage { fill: #4a7ab5; }\n"
      << ".faster { fill: #3a9a5b; }\n"
      << ".slower { fill: #c8553d; }\n"
      << ".whisker { stroke: #222; stroke-width: 1.5; }\n"
      << ".tick { stroke: #ccc; stroke-width: 1; }\n"
      << ".one { stroke: #000; stroke-width: 2; stroke-dasharray: 4 3; }\n"
      << ".one-label { font-size: 11px; font-weight: bold; }\n"
      << "</style>\n"
      << "<rect x=\"0\" y=\"0\" width=\"" << num(width) << "\" height=\"" << num(height)
      << "\" fill=\"#fff\"/>\n"
      << body.str() << "</svg>\n";
  return out.str();
}

// ---- the command -----------------------------------------------------------------------------

namespace {

void write_file(const std::string& path, const std::string& contents, const char* flag) {
  std::ofstream file(path, std::ios::binary);
  EMBER_EXPECTS(file.good(), invalid_input,
                std::string(flag) + ": cannot write '" + path + "' (" + std::strerror(errno) + ")");
  file << contents;
  file.close();
  EMBER_EXPECTS(!file.fail(), invalid_input, std::string(flag) + ": writing '" + path + "' failed");
}

}  // namespace

int run_bench_report(const bench_report_render_options& options) {
  EMBER_EXPECTS(!options.files.empty(), invalid_input, "bench report: no report files given");
  // Everything is read and checked first: a bad file leaves no output behind.
  std::vector<loaded_report> reports;
  reports.reserve(options.files.size());
  for (const auto& path : options.files) reports.push_back(read_report_file(path));

  std::string svg = options.svg_path.empty() ? "" : render_svg(reports, options.title);
  std::string markdown = render_markdown(reports, options.title);
  if (!options.svg_path.empty()) {
    write_file(options.svg_path, svg, "--svg");
    std::cout << "chart written to " << options.svg_path << "\n";
  }
  if (!options.markdown_path.empty()) {
    write_file(options.markdown_path, markdown, "--markdown");
    std::cout << "summary written to " << options.markdown_path << "\n";
  } else if (options.svg_path.empty()) {
    std::cout << markdown;
  }
  return 0;
}

}  // namespace ember::cli
