// Every built-in job at a small size against an independent reference written with std::map
// and std::sort over the same inputs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/generators.hpp>
#include <ember/scheduler/jobs.hpp>
#include <fstream>
#include <map>

#include "common/tables.hpp"
#include "common/paths.hpp"
#include "scheduler/helpers.hpp"

namespace ember::test {
namespace {

using ::testing::HasSubstr;

constexpr std::int64_t ns_per_day = 86'400'000'000'000LL;

client cpu_client(int workers) {
  client_options o;
  o.backend = backend_choice::cpu;
  o.workers = workers;
  return client::local(o);
}

// The tokenizer's contract, written out plainly: runs of ASCII letters and digits and of bytes
// >= 0x80, with apostrophes between letters, ASCII lower-cased.
std::vector<std::string> words_of(const std::string& line) {
  auto letter = [](unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  auto word_byte = [&](unsigned char c) {
    return letter(c) || (c >= '0' && c <= '9') || c >= 0x80;
  };
  std::vector<std::string> out;
  std::string current;
  for (std::size_t i = 0; i < line.size(); ++i) {
    auto c = static_cast<unsigned char>(line[i]);
    if (word_byte(c)) {
      current += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    } else if (c == '\'' && !current.empty() && letter(static_cast<unsigned char>(line[i - 1])) &&
               i + 1 < line.size() && letter(static_cast<unsigned char>(line[i + 1]))) {
      current += '\'';
    } else if (!current.empty()) {
      out.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}

std::vector<std::pair<std::string, std::int64_t>> reference_wordcount(
    const std::vector<std::filesystem::path>& files) {
  std::map<std::string, std::int64_t> counts;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      for (auto& w : words_of(line)) ++counts[w];
    }
  }
  std::vector<std::pair<std::string, std::int64_t>> out(counts.begin(), counts.end());
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

void expect_wordcount(const table& result,
                      const std::vector<std::pair<std::string, std::int64_t>>& want) {
  ASSERT_EQ(result.names(), (std::vector<std::string>{"word", "count"}));
  auto words = copy_strings(result.view().column(0));
  auto counts = copy_values<std::int64_t>(result.view().column(1));
  ASSERT_EQ(words.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(words[i].value_or("<null>"), want[i].first) << "row " << i;
    EXPECT_EQ(counts[i], want[i].second) << "row " << i << " (" << want[i].first << ")";
  }
}

std::vector<std::filesystem::path> repository_texts() {
  std::vector<std::filesystem::path> files;
  for (const auto& e :
       std::filesystem::directory_iterator(source_dir() / "data"))
    if (e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

TEST(jobs, names) {
  EXPECT_EQ(job_names(),
            (std::vector<std::string>{"enrich", "groupby", "join", "sort", "wordcount"}));
}

TEST(jobs, wordcount_matches_a_map_over_the_repository_texts) {
  auto files = repository_texts();
  ASSERT_FALSE(files.empty());
  auto c = cpu_client(2);
  job_options o;
  o.inputs = files;
  auto report = run_job(c, "wordcount", o);
  auto want = reference_wordcount(files);
  expect_wordcount(report.result, want);
  EXPECT_GT(report.input_rows, 0);
  EXPECT_GT(report.input_bytes, 0);
  EXPECT_FALSE(report.stages.empty());

  o.top = 5;
  auto top = run_job(c, "wordcount", o);
  want.resize(5);
  expect_wordcount(top.result, want);
}

TEST(jobs, wordcount_over_generated_files_with_three_workers) {
  temp_dir dir;
  std::vector<std::filesystem::path> files;
  for (int i = 0; i < 4; ++i)
    files.push_back(dir.write("f" + std::to_string(i) + ".txt",
                              random_text(400 + i * 50, 100 + i, i % 2 == 0)));
  auto c = cpu_client(3);
  job_options o;
  o.inputs = files;
  expect_wordcount(run_job(c, "wordcount", o).result, reference_wordcount(files));
}

TEST(jobs, groupby_matches_a_map) {
  auto c = cpu_client(2);
  job_options o;
  o.rows = 20000;
  o.seed = 5;
  auto report = run_job(c, "groupby", o);
  auto input = generate_rows(generate_source{"keyed", o.rows, o.seed, 0, 0}, 0, o.rows);
  auto keys = copy_values<std::int64_t>(input.view().column("key"));
  auto v = copy_values<std::int64_t>(input.view().column("v"));
  auto x = copy_values<double>(input.view().column("x"));
  struct acc {
    std::int64_t sum = 0, count = 0;
    double x_sum = 0, x_min = 1e300, x_max = -1e300;
  };
  std::map<std::int64_t, acc> ref;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    auto& a = ref[keys[i]];
    a.sum += v[i];
    a.count += 1;
    a.x_sum += x[i];
    a.x_min = std::min(a.x_min, x[i]);
    a.x_max = std::max(a.x_max, x[i]);
  }
  const auto& r = report.result;
  ASSERT_EQ(r.names(), (std::vector<std::string>{"key", "sum", "count", "mean", "min", "max"}));
  ASSERT_EQ(r.num_rows(), 2000);
  ASSERT_EQ(static_cast<std::size_t>(r.num_rows()), ref.size());
  auto got_key = copy_values<std::int64_t>(r.view().column("key"));
  auto got_sum = copy_values<std::int64_t>(r.view().column("sum"));
  auto got_count = copy_values<std::int64_t>(r.view().column("count"));
  auto got_mean = copy_values<double>(r.view().column("mean"));
  auto got_min = copy_values<double>(r.view().column("min"));
  auto got_max = copy_values<double>(r.view().column("max"));
  std::size_t i = 0;
  for (const auto& [key, a] : ref) {
    ASSERT_EQ(got_key[i], key);
    EXPECT_EQ(got_sum[i], a.sum);
    EXPECT_EQ(got_count[i], a.count);
    EXPECT_NEAR(got_mean[i], a.x_sum / static_cast<double>(a.count), 1e-12);
    EXPECT_EQ(got_min[i], a.x_min);
    EXPECT_EQ(got_max[i], a.x_max);
    ++i;
  }
  EXPECT_EQ(report.input_rows, o.rows);

  o.top = 7;
  EXPECT_EQ(run_job(c, "groupby", o).result.num_rows(), 7);
}

TEST(jobs, join_matches_a_map) {
  auto c = cpu_client(3);
  job_options o;
  o.rows = 30000;
  o.seed = 9;
  auto report = run_job(c, "join", o);
  size_type dim_rows = o.rows / 10;
  auto facts = generate_rows(generate_source{"facts", o.rows, o.seed, dim_rows, 0}, 0, o.rows);
  auto dims = generate_rows(generate_source{"dims", dim_rows, o.seed + 1, 0, 0}, 0, dim_rows);
  std::map<std::int64_t, std::pair<std::string, double>> dim;
  {
    auto k = copy_values<std::int64_t>(dims.view().column("dim_key"));
    auto s = copy_strings(dims.view().column("segment"));
    auto w = copy_values<double>(dims.view().column("weight"));
    for (std::size_t i = 0; i < k.size(); ++i) dim[k[i]] = {*s[i], w[i]};
  }
  struct acc {
    std::int64_t rows = 0, qty = 0;
    double amount = 0, weighted = 0;
  };
  std::map<std::string, acc> ref;
  auto k = copy_values<std::int64_t>(facts.view().column("dim_key"));
  auto q = copy_values<std::int64_t>(facts.view().column("qty"));
  auto a = copy_values<double>(facts.view().column("amount"));
  for (std::size_t i = 0; i < k.size(); ++i) {
    auto it = dim.find(k[i]);
    ASSERT_NE(it, dim.end());
    auto& r = ref[it->second.first];
    r.rows += 1;
    r.qty += q[i];
    r.amount += a[i];
    r.weighted += a[i] * it->second.second;
  }
  const auto& r = report.result;
  ASSERT_EQ(r.names(), (std::vector<std::string>{"segment", "rows", "qty", "amount", "weighted"}));
  ASSERT_EQ(static_cast<std::size_t>(r.num_rows()), ref.size());
  auto seg = copy_strings(r.view().column("segment"));
  auto rows = copy_values<std::int64_t>(r.view().column("rows"));
  auto qty = copy_values<std::int64_t>(r.view().column("qty"));
  auto amount = copy_values<double>(r.view().column("amount"));
  auto weighted = copy_values<double>(r.view().column("weighted"));
  std::size_t i = 0;
  for (const auto& [segment, want] : ref) {
    EXPECT_EQ(seg[i], segment);
    EXPECT_EQ(rows[i], want.rows);
    EXPECT_EQ(qty[i], want.qty);
    EXPECT_NEAR(amount[i], want.amount, 1e-9 * want.amount);
    EXPECT_NEAR(weighted[i], want.weighted, 1e-9 * want.weighted);
    ++i;
  }
  EXPECT_EQ(report.input_rows, o.rows + dim_rows);
}

TEST(jobs, sort_matches_std_stable_sort) {
  auto c = cpu_client(2);
  job_options o;
  o.rows = 25000;
  auto report = run_job(c, "sort", o);
  auto input = generate_rows(generate_source{"sort", o.rows, o.seed, 0, 0}, 0, o.rows);
  auto keys = copy_values<std::int64_t>(input.view().column("key"));
  auto payload = copy_strings(input.view().column("payload"));
  std::vector<std::pair<std::int64_t, std::string>> ref;
  for (std::size_t i = 0; i < keys.size(); ++i) ref.emplace_back(keys[i], *payload[i]);
  std::stable_sort(ref.begin(), ref.end());
  auto got_keys = copy_values<std::int64_t>(report.result.view().column("key"));
  auto got_payload = copy_strings(report.result.view().column("payload"));
  ASSERT_EQ(got_keys.size(), ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) {
    ASSERT_EQ(got_keys[i], ref[i].first) << "row " << i;
    ASSERT_EQ(got_payload[i], ref[i].second) << "row " << i;
  }
  o.top = 10;
  auto top = run_job(c, "sort", o);
  ASSERT_EQ(top.result.num_rows(), 10);
  EXPECT_EQ(copy_values<std::int64_t>(top.result.view().column("key"))[9], ref[9].first);
}

TEST(jobs, enrich_matches_a_map_and_doubles_the_input) {
  auto c = cpu_client(2);
  job_options o;
  o.scale_bytes = 1'000'000;
  o.seed = 3;
  auto report = run_job(c, "enrich", o);
  auto rows = static_cast<size_type>(std::llround(1'000'000 / generator_row_bytes("events")));
  auto items_rows = items_for(rows);
  auto events = generate_rows(generate_source{"events", rows, o.seed, items_rows, 0}, 0, rows);
  auto items = generate_rows(generate_source{"items", items_rows, o.seed + 1, 0, 0}, 0, items_rows);
  std::vector<std::pair<std::string, double>> item(static_cast<std::size_t>(items_rows));
  {
    auto id = copy_values<std::int64_t>(items.view().column("item_id"));
    auto cat = copy_strings(items.view().column("category"));
    auto price = copy_values<double>(items.view().column("price"));
    for (std::size_t i = 0; i < id.size(); ++i)
      item[static_cast<std::size_t>(id[i])] = {*cat[i], price[i]};
  }
  std::map<std::pair<std::string, std::int64_t>, std::pair<std::int64_t, double>> ref;
  auto item_id = copy_values<std::int64_t>(events.view().column("item_id"));
  auto ts = copy_values<std::int64_t>(events.view().column("ts"));
  auto amount = copy_values<double>(events.view().column("amount"));
  for (std::size_t i = 0; i < item_id.size(); ++i) {
    const auto& [category, price] = item[static_cast<std::size_t>(item_id[i])];
    auto& r = ref[{category, ts[i] - ts[i] % ns_per_day}];
    r.first += 1;
    r.second += amount[i] * price;
  }
  const auto& r = report.result;
  ASSERT_EQ(r.names(), (std::vector<std::string>{"category", "day", "orders", "revenue"}));
  EXPECT_EQ(r.view().column("day").type(), type_id::timestamp_ns);
  ASSERT_EQ(static_cast<std::size_t>(r.num_rows()), ref.size());
  auto cat = copy_strings(r.view().column("category"));
  auto day = copy_values<std::int64_t>(r.view().column("day"));
  auto orders = copy_values<std::int64_t>(r.view().column("orders"));
  auto revenue = copy_values<double>(r.view().column("revenue"));
  std::size_t i = 0;
  for (const auto& [key, want] : ref) {
    EXPECT_EQ(cat[i], key.first);
    EXPECT_EQ(day[i], key.second);
    EXPECT_EQ(orders[i], want.first);
    EXPECT_NEAR(revenue[i], want.second, 1e-9 * want.second);
    ++i;
  }
  // The input is the events table, about the requested size; the enriched table is reported
  // as a stage of its own, with every event in it and about twice the bytes.
  EXPECT_EQ(report.input_rows, rows);
  EXPECT_NEAR(static_cast<double>(report.input_bytes), 1e6, 0.02e6);
  auto enriched =
      std::find_if(report.stages.begin(), report.stages.end(),
                   [](const stage_report& s) { return s.name == "enrich: enriched table"; });
  ASSERT_NE(enriched, report.stages.end());
  EXPECT_EQ(enriched->rows_out, rows);
  double ratio = static_cast<double>(enriched->bytes_out) / static_cast<double>(report.input_bytes);
  EXPECT_GT(ratio, 1.8);
  EXPECT_LT(ratio, 2.3);
  EXPECT_GT(report.seconds, 0.0);
}

TEST(jobs, results_do_not_depend_on_the_worker_count) {
  job_options o;
  o.rows = 5000;
  for (const auto& name : {"groupby", "join", "sort", "enrich"}) {
    auto one = cpu_client(1);
    auto three = cpu_client(3);
    auto a = run_job(one, name, o);
    auto b = run_job(three, name, o);
    SCOPED_TRACE(name);
    expect_same_table(b.result.view(), a.result.view(), true, 1e-9);
  }
}

TEST(jobs, bad_requests_are_invalid_input) {
  auto c = cpu_client(1);
  try {
    (void)run_job(c, "wordcont", {});
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown job 'wordcont'"));
    EXPECT_THAT(e.what(), HasSubstr("enrich, groupby, join, sort, wordcount"));
  }
  job_options negative;
  negative.rows = -5;
  try {
    (void)run_job(c, "groupby", negative);
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("negative row count -5"));
  }
  job_options scale;
  scale.scale_bytes = -1;
  EXPECT_THROW((void)run_job(c, "enrich", scale), invalid_input);
  job_options top;
  top.top = -2;
  EXPECT_THROW((void)run_job(c, "sort", top), invalid_input);
  try {
    (void)run_job(c, "wordcount", {});
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("at least one input"));
  }
  job_options missing;
  missing.inputs = {"/no/such/input.txt"};
  try {
    (void)run_job(c, "wordcount", missing);
    FAIL();
  } catch (const invalid_input& e) {
    EXPECT_THAT(e.what(), HasSubstr("/no/such/input.txt"));
  }
}

}  // namespace
}  // namespace ember::test
