// `ember data` as scripts use it: real `ember` processes over a storage root in a temporary
// folder, JSON on stdout, messages and exit codes.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/processes.hpp"
#include "common/run_ember.hpp"
#include "common/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using ember::test::run_ember;

// `rows` rows of CSV as write_csv writes it (so an export reads back byte for byte): quoted
// strings with commas, shortest floats, a null every 7th row, bools. `tag` changes the values.
std::string sample_csv(int rows, const std::string& tag) {
  std::ostringstream out;
  out << "id,name,score,flag\n";
  for (int i = 0; i < rows; ++i) {
    out << i << ",\"" << tag << i << ",x\",";
    if (i % 7 != 3) out << (i % 2 == 0 ? std::to_string(i / 2) : std::to_string(i / 2) + ".5");
    out << "," << (i % 3 == 0 ? "true" : "false") << "\n";
  }
  return out.str();
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class data_cli : public ::testing::Test {
 protected:
  /// `ember data ARGS --root <the test's root>`.
  ember::test::run_result data(const std::string& args) {
    return run_ember("data " + args + " --root " + root().string());
  }
  nlohmann::json data_json(const std::string& args) {
    auto r = data(args + " --json");
    EXPECT_EQ(r.status, 0) << r.output;
    return nlohmann::json::parse(r.output);
  }
  [[nodiscard]] fs::path root() const { return _dir.path() / "root"; }

  ember::test::temp_dir _dir{"ember-data-cli"};
};

TEST_F(data_cli, import_then_ls_show_head_export_round_trip) {
  auto input = sample_csv(300, "n");
  auto csv = _dir.write("in.csv", input);

  auto imported = data_json("import events " + csv.string() + " --partition-rows 64");
  EXPECT_EQ(imported["version"], 1);
  EXPECT_EQ(imported["rows"], 300);
  EXPECT_EQ(imported["partitions"], 5);
  EXPECT_GT(imported["bytes"].get<std::int64_t>(), 0);
  EXPECT_EQ(imported["input_bytes"], static_cast<std::int64_t>(input.size()));

  auto ls = data_json("ls");
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0]["dataset"], "events");
  EXPECT_EQ(ls[0]["version"], 1);
  EXPECT_EQ(ls[0]["rows"], 300);
  EXPECT_EQ(ls[0]["partitions"], 5);
  EXPECT_EQ(ls[0]["bytes"], imported["bytes"]);
  auto ls_text = data("ls");
  EXPECT_EQ(ls_text.status, 0);
  EXPECT_NE(ls_text.output.find("events"), std::string::npos) << ls_text.output;

  auto show = data_json("show events");
  EXPECT_EQ(show["dataset"], "events");
  ASSERT_EQ(show["schema"].size(), 4u);
  EXPECT_EQ(show["schema"][0]["name"], "id");
  EXPECT_EQ(show["schema"][0]["type"], "int64");
  EXPECT_EQ(show["schema"][2]["type"], "float64");
  ASSERT_EQ(show["partitions"].size(), 5u);
  std::int64_t rows = 0;
  for (const auto& p : show["partitions"]) rows += p["rows"].get<std::int64_t>();
  EXPECT_EQ(rows, 300);
  EXPECT_EQ(show["partitions"][4]["rows"], 300 - 4 * 64);
  auto show_text = data("show events");
  EXPECT_EQ(show_text.status, 0);
  EXPECT_NE(show_text.output.find("part-"), std::string::npos) << show_text.output;
  EXPECT_NE(show_text.output.find("299"), std::string::npos) << "max of id\n" << show_text.output;

  auto head = data_json("head events -n 3");
  ASSERT_EQ(head.size(), 3u);
  EXPECT_EQ(head[0]["id"], 0);
  EXPECT_EQ(head[1]["name"], "n1,x");
  EXPECT_EQ(head[1]["score"], 0.5);
  EXPECT_TRUE(head[0]["flag"].get<bool>());
  // Rows past the first partition come from the next ones.
  EXPECT_EQ(data_json("head events -n 100").size(), 100u);
  auto head_text = data("head events -n 2");
  EXPECT_EQ(head_text.status, 0);
  EXPECT_NE(head_text.output.find("(2 of 300 rows"), std::string::npos) << head_text.output;

  auto out = _dir.path() / "out.csv";
  auto exported = data("export events --output " + out.string());
  EXPECT_EQ(exported.status, 0) << exported.output;
  EXPECT_EQ(read_file(out), input);
  auto to_stdout = data("export events");
  EXPECT_EQ(to_stdout.status, 0);
  EXPECT_EQ(to_stdout.output, input);
}

TEST_F(data_cli, malformed_csv_fails_with_file_and_line_and_commits_nothing) {
  fs::create_directories(root());
  auto bad = _dir.write("bad.csv", "a,b\n1,x\n2,\"unterminated\n3,z\n");
  auto r = data("import broken " + bad.string());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("ember: error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bad.csv:3:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("unterminated"), std::string::npos) << r.output;
  EXPECT_TRUE(data_json("ls").empty());
  EXPECT_FALSE(fs::exists(root() / "broken"));

  // Over an existing dataset: the old version stays current.
  auto good = _dir.write("good.csv", sample_csv(20, "g"));
  ASSERT_EQ(data("import broken " + good.string()).status, 0);
  EXPECT_EQ(data("import broken " + bad.string()).status, 2);
  auto ls = data_json("ls");
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0]["version"], 1);
  EXPECT_EQ(data("export broken").output, sample_csv(20, "g"));
}

TEST_F(data_cli, reimport_makes_a_new_version) {
  auto first = _dir.write("first.csv", sample_csv(50, "a"));
  auto second = _dir.write("second.csv", sample_csv(80, "b"));
  EXPECT_EQ(data_json("import t " + first.string() + " --partition-rows 16")["version"], 1);
  auto again = data_json("import t " + second.string() + " --compression zstd");
  EXPECT_EQ(again["version"], 2);
  EXPECT_EQ(again["rows"], 80);
  EXPECT_EQ(data("export t").output, sample_csv(80, "b"));
  EXPECT_EQ(data("export t --version 1").output, sample_csv(50, "a"));
  EXPECT_EQ(data_json("show t --version 1")["rows"], 50);
  EXPECT_EQ(data_json("show t")["parent_version"], 1);
}

TEST_F(data_cli, rm_removes_the_dataset) {
  auto csv = _dir.write("in.csv", sample_csv(10, "r"));
  ASSERT_EQ(data("import gone " + csv.string()).status, 0);
  auto rm = data_json("rm gone");
  EXPECT_EQ(rm["removed"], true);
  EXPECT_TRUE(data_json("ls").empty());
  auto show = data("show gone");
  EXPECT_EQ(show.status, 2) << show.output;
  EXPECT_NE(show.output.find("gone"), std::string::npos) << show.output;
  EXPECT_EQ(data("rm gone").status, 2);
}

TEST_F(data_cli, lines_format_and_schema_flags) {
  auto text = _dir.write("notes.txt", "first line\nsecond, with a comma\n");
  auto lines = data_json("import notes " + text.string() + " --format lines");
  EXPECT_EQ(lines["rows"], 2);
  auto head = data_json("head notes");
  ASSERT_EQ(head.size(), 2u);
  EXPECT_EQ(head[1]["line"], "second, with a comma");

  auto tsv = _dir.write("typed.tsv", "1\t2.5\tNA\n2\tNA\tyes\n");
  auto typed = data("import typed " + tsv.string() +
                    " --no-header --delimiter '\\t' --null NA --schema a:int32,b:float32,c:string");
  EXPECT_EQ(typed.status, 0) << typed.output;
  auto show = data_json("show typed");
  EXPECT_EQ(show["schema"][0]["type"], "int32");
  EXPECT_EQ(show["schema"][1]["type"], "float32");
  EXPECT_EQ(show["schema"][2]["nullable"], true);

  auto bad_type = data("import typed " + tsv.string() + " --no-header --schema a:int16");
  EXPECT_EQ(bad_type.status, 2);
  EXPECT_NE(bad_type.output.find("int16"), std::string::npos) << bad_type.output;
}

TEST_F(data_cli, root_comes_from_the_flag_or_the_environment) {
  auto missing = run_ember("data ls", "env -u EMBER_DATA_ROOT");
  EXPECT_EQ(missing.status, 2) << missing.output;
  EXPECT_NE(missing.output.find("--root"), std::string::npos) << missing.output;
  EXPECT_NE(missing.output.find("EMBER_DATA_ROOT"), std::string::npos) << missing.output;

  auto csv = _dir.write("in.csv", sample_csv(5, "e"));
  auto env = "EMBER_DATA_ROOT=" + root().string();
  EXPECT_EQ(run_ember("data import e " + csv.string(), env).status, 0);
  auto ls = run_ember("data ls --json", env);
  EXPECT_EQ(ls.status, 0) << ls.output;
  EXPECT_EQ(nlohmann::json::parse(ls.output).size(), 1u);

  auto nowhere = run_ember("data ls --root " + (_dir.path() / "nowhere").string());
  EXPECT_EQ(nowhere.status, 2);
  EXPECT_NE(nowhere.output.find("nowhere"), std::string::npos) << nowhere.output;
}

}  // namespace

// ---- fenced imports: --lock against a real scheduler ----------------------------------------

class data_cli_fenced : public data_cli {
 protected:
  static void SetUpTestSuite() {
    ember::test::cluster_spec spec;
    spec.workers = 0;
    _cluster = std::make_unique<ember::test::local_cluster>(spec);
  }
  static void TearDownTestSuite() { _cluster.reset(); }

  [[nodiscard]] static std::string scheduler() { return " --scheduler " + _cluster->address; }

  /// A fresh token of `lock` from `ember lock acquire --json`, released at once.
  std::uint64_t fresh_token(const std::string& lock) {
    auto r = run_ember("lock acquire " + lock + " --json" + scheduler());
    EXPECT_EQ(r.status, 0) << r.output;
    auto j = nlohmann::json::parse(r.output);
    auto released = run_ember("lock release " + lock + " --owner " + j["owner"].get<std::string>() +
                              scheduler());
    EXPECT_EQ(released.status, 0) << released.output;
    return j["token"].get<std::uint64_t>();
  }

  static std::unique_ptr<ember::test::local_cluster> _cluster;
};

std::unique_ptr<ember::test::local_cluster> data_cli_fenced::_cluster;

TEST_F(data_cli_fenced, import_with_lock_records_its_token_and_releases_it) {
  auto csv = _dir.write("in.csv", sample_csv(20, "f"));
  auto imported = data_json("import fenced " + csv.string() + " --lock data.fence.a" + scheduler());
  EXPECT_EQ(imported["version"], 1);
  ASSERT_TRUE(imported.contains("fence")) << imported;
  auto token = imported["fence"]["token"].get<std::uint64_t>();
  EXPECT_GE(token, 1u);

  auto show = data_json("show fenced");
  ASSERT_TRUE(show["fence"].is_object()) << show;
  EXPECT_EQ(show["fence"]["lock"], "data.fence.a");
  EXPECT_EQ(show["fence"]["token"], token);
  auto text = data("show fenced");
  EXPECT_NE(text.output.find("fence       lock data.fence.a token " + std::to_string(token)),
            std::string::npos)
      << text.output;

  // Released after the commit: the next acquire does not wait, and gets a newer token.
  auto again = data_json("import fenced " + csv.string() +
                         " --lock data.fence.a --lock-timeout-ms 0" + scheduler());
  EXPECT_EQ(again["version"], 2);
  EXPECT_GT(again["fence"]["token"].get<std::uint64_t>(), token);

  // An unfenced version shows no fence.
  EXPECT_TRUE(data_json("import plain " + csv.string())["fence"].is_null());
  EXPECT_TRUE(data_json("show plain")["fence"].is_null());
}

TEST_F(data_cli_fenced, a_stale_token_is_refused) {
  auto csv = _dir.write("in.csv", sample_csv(10, "s"));
  auto t_old = fresh_token("data.fence.b");
  auto t_new = fresh_token("data.fence.b");
  ASSERT_LT(t_old, t_new);

  auto committed = data_json("import stale " + csv.string() + " --lock data.fence.b --token " +
                             std::to_string(t_new) + scheduler());
  EXPECT_EQ(committed["version"], 1);

  auto refused = data("import stale " + csv.string() + " --lock data.fence.b --token " +
                      std::to_string(t_old) + scheduler());
  EXPECT_EQ(refused.status, 2) << refused.output;
  EXPECT_NE(refused.output.find("stale"), std::string::npos) << refused.output;

  auto show = data_json("show stale");
  EXPECT_EQ(show["version"], 1);
  EXPECT_EQ(show["fence"]["token"], t_new);

  // --token without --lock is a usage error.
  auto usage = data("import stale " + csv.string() + " --token 5");
  EXPECT_EQ(usage.status, 2) << usage.output;
  EXPECT_NE(usage.output.find("--lock"), std::string::npos) << usage.output;
}

TEST_F(data_cli_fenced, import_under_ember_lock_acquire_uses_its_token) {
  auto csv = _dir.write("in.csv", sample_csv(10, "h"));
  std::string inner = ember::test::ember_executable().string() + " data import held " +
                      csv.string() + " --root " + root().string() +
                      " --lock data.fence.c --token $EMBER_LOCK_TOKEN --json";
  auto r = run_ember("lock acquire data.fence.c" + scheduler() + " -- sh -c '" + inner + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  auto out = nlohmann::json::parse(r.output);
  EXPECT_EQ(out["version"], 1);
  auto token = out["fence"]["token"].get<std::uint64_t>();
  EXPECT_GE(token, 1u);
  EXPECT_EQ(data_json("show held")["fence"]["token"], token);
  EXPECT_EQ(data_json("show held")["fence"]["lock"], "data.fence.c");
}
