#include <algorithm>
#include <chrono>
#include <cmath>
#include <ember/host/dataset_store.hpp>
#include <ember/host/error.hpp>
#include <functional>
#include <optional>
#include <ember/scheduler/generators.hpp>
#include <ember/scheduler/jobs.hpp>

namespace ember {
namespace {

constexpr std::int64_t ns_per_day = 86'400'000'000'000LL;

aggregation agg(aggregation_kind kind, std::string column, std::string output) {
  return aggregation{kind, std::move(column), std::move(output)};
}

// Rows of a generated input: `rows` when given, else `scale_bytes` worth of the generator's
// rows, else the default.
size_type input_rows(const job_options& o, std::string_view generator) {
  if (o.rows > 0) return o.rows;
  if (o.scale_bytes > 0) {
    auto rows = static_cast<double>(o.scale_bytes) / generator_row_bytes(generator);
    return std::max<size_type>(1, static_cast<size_type>(std::llround(rows)));
  }
  return default_job_rows;
}

dataset first_rows(const dataset& d, size_type top) { return top > 0 ? d.limit(top) : d; }

struct job_run {
  dataset result;
  // When set, written as the job's output dataset first; the result is then `from_output` of
  // the written version read back (with `output_columns`).
  std::optional<dataset> output;
  std::function<dataset(const dataset&)> from_output;
  std::vector<std::string> output_columns;
  // Datasets written while the job was built (enrich's generated input).
  std::vector<written_dataset> written;
  // Replaces the input totals with a label's (enrich reports its events table as the input).
  std::string input_label;
  // Adds a stage_report for this label's rows and bytes.
  std::string report_label;
  std::string report_name;
};

job_run result_only(dataset result) {
  return job_run{std::move(result), std::nullopt, {}, {}, {}, {}, {}, {}};
}

job_run wordcount(client& c, const job_options& o) {
  EMBER_EXPECTS(!o.inputs.empty(), invalid_input,
                "wordcount needs at least one input text file (--input FILE)");
  auto counts = c.read_text(o.inputs)
                    .tokenize("line", "word")
                    .group_by({"word"}, {agg(aggregation_kind::count_all, "", "count")});
  std::vector<sort_key> order{{"count", true, false}, {"word", false, false}};
  return result_only(o.top > 0 ? counts.top_k(order, o.top) : counts.sort(order));
}

job_run groupby(client& c, const job_options& o) {
  auto rows = input_rows(o, "keyed");
  auto result = c.generate("keyed", rows, o.seed)
                    .group_by({"key"}, {agg(aggregation_kind::sum, "v", "sum"),
                                        agg(aggregation_kind::count_all, "", "count"),
                                        agg(aggregation_kind::mean, "x", "mean"),
                                        agg(aggregation_kind::min, "x", "min"),
                                        agg(aggregation_kind::max, "x", "max")})
                    .sort({{"key", false, false}});
  return result_only(first_rows(result, o.top));
}

job_run join(client& c, const job_options& o) {
  auto rows = input_rows(o, "facts");
  auto dim_rows = std::max<size_type>(1, rows / 10);
  auto facts = c.generate("facts", rows, o.seed, dim_rows);
  auto dims = c.generate("dims", dim_rows, o.seed + 1);
  auto result = facts.join(dims, {"dim_key"}, join_kind::inner, join_strategy::shuffle)
                    .project({{"segment", col("segment")},
                              {"qty", col("qty")},
                              {"amount", col("amount")},
                              {"weighted", col("amount") * col("weight")}})
                    .group_by({"segment"}, {agg(aggregation_kind::count_all, "", "rows"),
                                            agg(aggregation_kind::sum, "qty", "qty"),
                                            agg(aggregation_kind::sum, "amount", "amount"),
                                            agg(aggregation_kind::sum, "weighted", "weighted")})
                    .sort({{"segment", false, false}});
  return result_only(first_rows(result, o.top));
}

job_run sort(client& c, const job_options& o) {
  auto rows = input_rows(o, "sort");
  auto input = c.generate("sort", rows, o.seed);
  std::vector<sort_key> order{{"key", false, false}, {"payload", false, false}};
  return result_only(o.top > 0 ? input.top_k(order, o.top) : input.sort(order));
}

written_dataset written_from(const std::filesystem::path& root, const std::string& name,
                             const dataset_write_result& w) {
  return {root, name, w.version, w.rows, w.bytes, w.partitions};
}

job_run enrich(client& c, const job_options& o) {
  std::vector<written_dataset> written;
  auto generated_events = [&] {
    auto rows = input_rows(o, "events");
    return std::pair{c.generate("events", rows, o.seed, items_for(rows)),
                     c.generate("items", items_for(rows), o.seed + 1)};
  };
  std::optional<dataset> events, items;
  if (o.input_root.empty()) {
    auto [e, i] = generated_events();
    events = e;
    items = i;
  } else {
    auto items_name = o.input_dataset + "-items";
    dataset_store store(o.input_root);
    bool have_events = store.current_version(o.input_dataset).has_value();
    bool have_items = store.current_version(items_name).has_value();
    EMBER_EXPECTS(have_events == have_items, invalid_input,
                  "enrich: the input needs both datasets '" + o.input_dataset + "' and '" +
                      items_name + "' under " + o.input_root.string() + ", but only '" +
                      (have_events ? o.input_dataset : items_name) + "' is there");
    if (!have_events) {
      auto [e, i] = generated_events();
      written.push_back(written_from(o.input_root, o.input_dataset,
                                     e.write_dataset(o.input_root, o.input_dataset)));
      written.push_back(
          written_from(o.input_root, items_name, i.write_dataset(o.input_root, items_name)));
    }
    events = c.read_dataset(o.input_root, o.input_dataset);
    items = c.read_dataset(o.input_root, items_name);
  }
  auto enriched = events->label("events")
                      .join(*items, {"item_id"}, join_kind::inner, join_strategy::broadcast)
                      .with_columns(enrich_computed_columns())
                      .label("enriched");
  auto top = o.top;
  auto summarize = [top](const dataset& rows) {
    auto summary =
        rows.group_by({"category", "day"}, {agg(aggregation_kind::count_all, "", "orders"),
                                            agg(aggregation_kind::sum, "revenue", "revenue")})
            .sort({{"category", false, false}, {"day", false, false}});
    return first_rows(summary, top);
  };
  auto run = result_only(summarize(enriched));
  run.written = std::move(written);
  run.input_label = "events";
  run.report_label = "enriched";
  run.report_name = "enrich: enriched table";
  if (!o.output_root.empty()) {
    run.output = enriched;
    run.from_output = summarize;
    run.output_columns = {"category", "day", "revenue"};
  }
  return run;
}

struct job_entry {
  std::string_view name;
  job_run (*build)(client&, const job_options&);
};

constexpr job_entry jobs[] = {
    {"enrich", enrich}, {"groupby", groupby},     {"join", join},
    {"sort", sort},     {"wordcount", wordcount},
};

}  // namespace

std::vector<named_expression> enrich_computed_columns() {
  auto day = cast(cast(col("ts"), type_id::int64) / lit(std::int64_t{ns_per_day}) *
                      lit(std::int64_t{ns_per_day}),
                  type_id::timestamp_ns);
  return {{"revenue", col("amount") * col("price")},
          {"day", day},
          {"bucket", cast(hash({col("user_id")}) % lit(std::int64_t{64}), type_id::int32)},
          {"is_mobile", col("device") == lit("mobile")},
          {"is_big_order", col("amount") > lit(100.0)}};
}

std::vector<std::string> job_names() {
  std::vector<std::string> out;
  for (const auto& j : jobs) out.emplace_back(j.name);
  return out;
}

job_report run_job(client& c, std::string_view name, const job_options& options) {
  auto started = std::chrono::steady_clock::now();
  const job_entry* entry = nullptr;
  for (const auto& j : jobs)
    if (j.name == name) entry = &j;
  if (entry == nullptr) {
    std::string names;
    for (const auto& j : jobs) names += (names.empty() ? "" : ", ") + std::string(j.name);
    throw invalid_input("unknown job '" + std::string(name) + "' (the jobs are: " + names + ")");
  }
  EMBER_EXPECTS(options.rows >= 0, invalid_input,
                "negative row count " + std::to_string(options.rows));
  EMBER_EXPECTS(options.scale_bytes >= 0, invalid_input,
                "negative scale " + std::to_string(options.scale_bytes) + " bytes");
  EMBER_EXPECTS(options.top >= 0, invalid_input, "negative top " + std::to_string(options.top));

  auto job = entry->build(c, options);
  job_report report;
  report.written = std::move(job.written);
  job_result out;
  if (job.output) {
    dataset_write_options wo;
    wo.files.compression = options.output_compression;
    auto w = job.output->write_dataset(options.output_root, options.output_dataset, wo);
    report.written.push_back(written_from(options.output_root, options.output_dataset, w));
    out = job.from_output(
                 c.read_dataset(options.output_root, options.output_dataset, job.output_columns))
              .run();
    // One report for both jobs: the write's stages, then the summary's.
    auto& m = out.metrics;
    auto stages = std::move(w.metrics.stages);
    stages.insert(stages.end(), m.stages.begin(), m.stages.end());
    m.stages = std::move(stages);
    auto labels = std::move(w.metrics.labels);
    labels.insert(labels.end(), m.labels.begin(), m.labels.end());
    m.labels = std::move(labels);
    m.input_rows = w.metrics.input_rows;
    m.input_bytes = w.metrics.input_bytes;
  } else {
    out = job.result.run();
  }
  const auto& m = out.metrics;

  report.result = std::move(out.result);
  report.input_rows = m.input_rows;
  report.input_bytes = m.input_bytes;
  for (const auto& l : m.labels) {
    if (l.label == job.input_label) {
      report.input_rows = l.rows;
      report.input_bytes = l.bytes;
    }
  }
  for (const auto& s : m.stages) {
    report.stages.push_back({s.name, s.seconds, s.rows_out, s.bytes_out});
    if (job.report_label.empty() || s.name.find("'" + job.report_label + "'") == std::string::npos)
      continue;
    for (const auto& l : m.labels)
      if (l.label == job.report_label)
        report.stages.push_back({job.report_name, s.seconds, l.rows, l.bytes});
  }
  report.metrics = m;
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace ember
