#include "data_commands.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <ember/host/csv.hpp>
#include <ember/host/dataset_store.hpp>
#include <ember/host/error.hpp>
#include <ember/host/io.hpp>
#include <ember/host/scalar.hpp>
#include <ember/scheduler/client.hpp>

#include "cluster_flags.hpp"
#include "size_parser.hpp"
#include "table_printer.hpp"

namespace ember::cli {

namespace fs = std::filesystem;

struct data_commands::state {
  // Flags every command has. Only one command runs, so they all bind the same fields.
  std::string root;
  bool json = false;

  CLI::App* import_cmd = nullptr;
  CLI::App* export_cmd = nullptr;
  CLI::App* ls = nullptr;
  CLI::App* show = nullptr;
  CLI::App* head = nullptr;
  CLI::App* rm = nullptr;

  // Positionals and flags of the commands (each command reads the ones it declared).
  std::string name;
  std::vector<std::string> files;
  std::string format = "csv";
  std::string schema;
  bool no_header = false;
  std::string delimiter = ",";
  std::vector<std::string> nulls;
  std::string partition_rows = "1M";
  std::string compression = "none";
  std::int64_t version = 0;
  std::string output;
  std::int64_t head_rows = 10;
  // import's fencing: the lock, where it is, and the token when the caller holds it already.
  std::string lock;
  std::string scheduler;
  std::string token_file;
  std::int64_t lock_timeout_ms = 30'000;
  std::int64_t token = 0;
};

namespace {

// ---- flags and output ---------------------------------------------------------------------------

void add_common(CLI::App& cmd, data_commands::state& s) {
  cmd.add_option("--root", s.root, "The storage root (default: $EMBER_DATA_ROOT)");
  cmd.add_flag("--json", s.json, "Print JSON on stdout");
}

// --root, else $EMBER_DATA_ROOT. Commands that only read need the folder to exist (import
// creates it).
fs::path data_root(const data_commands::state& s, bool must_exist) {
  std::string root = s.root;
  if (root.empty()) {
    const char* env = std::getenv("EMBER_DATA_ROOT");
    if (env != nullptr) root = env;
  }
  EMBER_EXPECTS(!root.empty(), invalid_input,
                "no storage root: give --root DIR or set EMBER_DATA_ROOT");
  EMBER_EXPECTS(!must_exist || fs::is_directory(root), invalid_input,
                "storage root '" + root + "' is not a folder");
  return root;
}

std::optional<std::uint64_t> version_flag(const data_commands::state& s, const CLI::App& cmd) {
  if (cmd.count("--version") == 0) return std::nullopt;
  EMBER_EXPECTS(s.version >= 1, invalid_input,
                "--version: must be 1 or more (" + std::to_string(s.version) + ")");
  return static_cast<std::uint64_t>(s.version);
}

// Dataset values are bytes; JSON shows strings as text, invalid UTF-8 replaced.
void print_json(const nlohmann::ordered_json& value) {
  std::cout << value.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  std::cout.flush();
}

std::string fixed(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, value);
  return buf;
}

// Byte-wise for strings (as the statistics compare them), by value for numbers.
bool scalar_less(const scalar& a, const scalar& b) {
  switch (a.type()) {
    case type_id::float32:
    case type_id::float64:
      return a.as_float() < b.as_float();
    case type_id::string:
      return a.as_string() < b.as_string();
    default:
      return a.as_int() < b.as_int();
  }
}

// "name:type,name:type" → the CSV reader's schema (type names as ember::to_string(type_id)).
csv_schema parse_schema(const std::string& text) {
  csv_schema schema;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    auto end = std::min(text.find(',', begin), text.size());
    std::string item = text.substr(begin, end - begin);
    auto colon = item.rfind(':');
    EMBER_EXPECTS(colon != std::string::npos && colon > 0, invalid_input,
                  "--schema: '" + item + "' is not name:type");
    schema.emplace_back(item.substr(0, colon), type_from_string(item.substr(colon + 1)));
    begin = end + 1;
  }
  return schema;
}

char delimiter_flag(const std::string& text) {
  if (text == "\\t" || text == "tab") return '\t';
  EMBER_EXPECTS(text.size() == 1, invalid_input,
                "--delimiter: '" + text + "' is not one character (or \\t)");
  return text[0];
}

compression_codec compression_flag(const std::string& text) {
  if (text == "none") return compression_codec::none;
  if (text == "zstd") return compression_codec::zstd;
  throw invalid_input("--compression: '" + text + "' is not none or zstd");
}

// ---- import and export --------------------------------------------------------------------------

// The fence of an import with --lock: either the token given with --token (the caller holds
// the lock), or a lease acquired here, kept (renewed by the client) until the commit is done.
struct import_fence {
  std::optional<client> connection;
  std::optional<distributed_lock> lock;
  std::optional<lease> held;
  fence_token token;
};

// Checks the fencing flags; true when the import is fenced.
bool fence_flags(const data_commands::state& s) {
  const auto& cmd = *s.import_cmd;
  bool fenced = cmd.count("--lock") > 0;
  if (!fenced) {
    for (const char* flag : {"--token", "--scheduler", "--token-file", "--lock-timeout-ms"})
      EMBER_EXPECTS(cmd.count(flag) == 0, invalid_input, std::string(flag) + " needs --lock NAME");
    return false;
  }
  EMBER_EXPECTS(!s.lock.empty(), invalid_input, "--lock: empty lock name");
  EMBER_EXPECTS(cmd.count("--token") == 0 || s.token >= 1, invalid_input,
                "--token: must be 1 or more (" + std::to_string(s.token) + ")");
  EMBER_EXPECTS(s.lock_timeout_ms >= 0, invalid_input,
                "--lock-timeout-ms: negative (" + std::to_string(s.lock_timeout_ms) + " ms)");
  return true;
}

// Connects to the scheduler and takes the lock (or, with --token, only connects: the token is
// used as is and checked by the store and, at commit, by the lock service).
import_fence acquire_fence(const data_commands::state& s) {
  import_fence f;
  std::string scheduler = s.scheduler;
  if (scheduler.empty()) {
    const char* env = std::getenv("EMBER_SCHEDULER");
    scheduler = env != nullptr && *env != '\0' ? std::string(env) : "127.0.0.1:4242";
  }
  client_options options;
  if (!s.token_file.empty()) options.token = read_token_file(s.token_file);
  f.connection.emplace(client::connect(scheduler, options));
  f.lock.emplace(f.connection->lock(s.lock));
  if (s.import_cmd->count("--token") > 0) {
    f.token = {s.lock, static_cast<std::uint64_t>(s.token)};
    return f;
  }
  auto wait = std::chrono::milliseconds(s.lock_timeout_ms);
  auto acquired = f.lock->try_acquire(wait, std::chrono::seconds(10));
  if (!acquired)
    throw timeout("lock '" + s.lock + "': not acquired within " + std::to_string(wait.count()) +
                  " ms (--lock-timeout-ms)");
  f.held.emplace(std::move(*acquired));
  f.token = {s.lock, static_cast<std::uint64_t>(f.held->token())};
  return f;
}

int data_import(const data_commands::state& s) {
  dataset_store::validate_name(s.name);
  EMBER_EXPECTS(s.format == "csv" || s.format == "lines", invalid_input,
                "--format: '" + s.format + "' is not csv or lines");
  const auto& cmd = *s.import_cmd;
  if (s.format == "lines")
    for (const char* flag : {"--schema", "--no-header", "--delimiter", "--null"})
      EMBER_EXPECTS(cmd.count(flag) == 0, invalid_input,
                    std::string(flag) + " applies to --format csv only");
  bool fenced = fence_flags(s);
  size_type partition_rows = parse_count(s.partition_rows, "--partition-rows");
  EMBER_EXPECTS(partition_rows >= 1, invalid_input, "--partition-rows: must be 1 or more");
  partition_write_options write_options;
  write_options.compression = compression_flag(s.compression);
  write_options.sync = false;  // commit syncs every staged file at once

  csv_options csv;
  csv.header = !s.no_header;
  csv.delimiter = delimiter_flag(s.delimiter);
  if (cmd.count("--null") > 0) csv.null_values = s.nulls;
  if (!s.schema.empty()) csv.schema = parse_schema(s.schema);

  std::vector<fs::path> paths(s.files.begin(), s.files.end());
  size_type input_bytes = 0;
  for (const auto& p : paths) {
    std::error_code ec;
    auto size = fs::file_size(p, ec);
    EMBER_EXPECTS(!ec, invalid_input, p.string() + ": cannot read (" + ec.message() + ")");
    input_bytes += static_cast<size_type>(size);
  }
  auto root = data_root(s, false);

  auto start = std::chrono::steady_clock::now();
  // A malformed file throws here, before anything is staged.
  table input = s.format == "csv" ? read_csv(paths, csv) : read_text_lines(paths);
  // The lock is held (or its token known) before the write begins.
  std::optional<import_fence> fence;
  if (fenced) fence.emplace(acquire_fence(s));
  dataset_store store(root);
  auto writer =
      store.begin_write(s.name, fence ? std::optional<fence_token>(fence->token) : std::nullopt);
  auto view = input.view();
  size_type rows = view.num_rows();
  std::int64_t partitions = 0;
  size_type bytes = 0;
  // A 0-row input still writes one (empty) partition, so that the version keeps the schema.
  for (size_type begin = 0; begin < rows || partitions == 0; begin += partition_rows) {
    auto end = std::min(rows, begin + partition_rows);
    bytes += writer.write_partition(view.slice(begin, end), write_options).bytes;
    ++partitions;
  }
  commit_options commit;
  if (fence) {
    // The last check, under the store's commit lock: the lock service still takes the token
    // (no newer holder has written since).
    commit.before_publish = [&](std::uint64_t) {
      if (fence->held && !fence->held->held())
        throw invalid_input("lock '" + s.lock + "': the lease of token " +
                            std::to_string(fence->token.token) + " was lost (stale)");
      fence->lock->check(static_cast<fencing_token>(fence->token.token));
    };
  }
  auto version = writer.commit(commit);
  if (fence && fence->held) {
    try {
      fence->held->release();
    } catch (const std::exception& e) {
      std::cerr << "ember: warning: lock '" << s.lock << "': " << e.what() << "\n";
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double mb_per_s = seconds > 0 ? static_cast<double>(input_bytes) / 1e6 / seconds : 0.0;

  if (s.json) {
    nlohmann::ordered_json out{{"dataset", s.name},  {"version", version},
                               {"rows", rows},       {"partitions", partitions},
                               {"bytes", bytes},     {"input_bytes", input_bytes},
                               {"seconds", seconds}, {"mb_per_s", mb_per_s}};
    if (fence) out["fence"] = {{"lock", fence->token.lock}, {"token", fence->token.token}};
    print_json(out);
  } else {
    std::cout << "imported " << s.name << " version " << version << ": " << rows << " rows, "
              << partitions << " partition(s), " << bytes << " bytes in " << fixed(seconds, 3)
              << " s (" << fixed(mb_per_s, 1) << " MB/s of " << input_bytes << " input bytes)";
    if (fence)
      std::cout << ", fenced by lock " << fence->token.lock << " token " << fence->token.token;
    std::cout << "\n";
  }
  return 0;
}

int data_export(const data_commands::state& s) {
  bool to_stdout = s.output.empty() || s.output == "-";
  EMBER_EXPECTS(!(s.json && to_stdout), invalid_input,
                "--json needs --output FILE (the CSV goes to stdout otherwise)");
  auto version = version_flag(s, *s.export_cmd);
  dataset_store store(data_root(s, true));
  auto manifest = store.read_manifest(s.name, version);
  table data = store.read(s.name, manifest.version);
  if (to_stdout) {
    write_csv(data.view(), std::cout);
    std::cout.flush();
    return 0;
  }
  write_csv_file(data.view(), s.output);
  if (s.json)
    print_json({{"dataset", s.name},
                {"version", manifest.version},
                {"rows", manifest.rows},
                {"output", s.output}});
  else
    std::cout << "exported " << s.name << " version " << manifest.version << ": " << manifest.rows
              << " rows to " << s.output << "\n";
  return 0;
}

// ---- listing and inspecting ---------------------------------------------------------------------

int data_ls(const data_commands::state& s) {
  dataset_store store(data_root(s, true));
  std::vector<dataset_manifest> manifests;
  for (const auto& name : store.list()) manifests.push_back(store.read_manifest(name));
  if (s.json) {
    auto out = nlohmann::ordered_json::array();
    for (const auto& m : manifests)
      out.push_back({{"dataset", m.dataset},
                     {"version", m.version},
                     {"rows", m.rows},
                     {"bytes", m.bytes},
                     {"partitions", m.partitions.size()}});
    print_json(out);
    return 0;
  }
  if (manifests.empty()) {
    std::cout << "no datasets in " << store.root().string() << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : manifests)
    rows.push_back({m.dataset, std::to_string(m.version), std::to_string(m.rows),
                    std::to_string(m.bytes), std::to_string(m.partitions.size())});
  print_cells({"dataset", "version", "rows", "bytes", "partitions"}, rows, std::cout);
  return 0;
}

int data_show(const data_commands::state& s) {
  dataset_store store(data_root(s, true));
  auto m = store.read_manifest(s.name, version_flag(s, *s.show));
  auto stored = nlohmann::ordered_json::parse(to_json(m));
  if (s.json) {
    print_json(stored);
    return 0;
  }
  std::cout << "dataset     " << m.dataset << "\nversion     " << m.version << " (parent "
            << m.parent_version << ")\ncreated     " << stored.value("created", std::string())
            << "\nwriter      " << m.writer << "\n";
  if (m.fence)
    std::cout << "fence       lock " << m.fence->lock << " token " << m.fence->token << "\n";
  std::cout << "rows        " << m.rows << "\nbytes       " << m.bytes << "\npartitions  "
            << m.partitions.size() << "\n\n";

  // Per column: its statistics over every partition.
  std::vector<std::vector<std::string>> columns;
  for (std::size_t c = 0; c < m.schema.size(); ++c) {
    size_type nulls = 0, nans = 0;
    scalar lo, hi;
    bool bounded = true;
    for (const auto& p : m.partitions) {
      const auto& st = p.stats[c];
      nulls += st.null_count;
      nans += st.nan_count;
      if (st.max_unbounded) bounded = false;
      if (!st.has_min_max()) continue;
      if (!lo.valid() || scalar_less(st.min, lo)) lo = st.min;
      if (st.max.valid() && (!hi.valid() || scalar_less(hi, st.max))) hi = st.max;
    }
    const auto& col = m.schema[c];
    columns.push_back({col.name, std::string(to_string(col.type)), col.nullable ? "yes" : "no",
                       std::to_string(nulls), std::to_string(nans), lo.valid() ? lo.to_text() : "-",
                       bounded && hi.valid() ? hi.to_text() : "-"});
  }
  print_cells({"column", "type", "nullable", "nulls", "NaNs", "min", "max"}, columns, std::cout);
  std::cout << "\n";

  std::vector<std::vector<std::string>> parts;
  for (const auto& p : m.partitions) {
    char checksum[32];
    std::snprintf(checksum, sizeof(checksum), "%016llx",
                  static_cast<unsigned long long>(p.footer_checksum));
    parts.push_back({p.file, std::to_string(p.rows), std::to_string(p.bytes), checksum});
  }
  print_cells({"partition", "rows", "bytes", "checksum"}, parts, std::cout);
  return 0;
}

int data_head(const data_commands::state& s) {
  EMBER_EXPECTS(s.head_rows >= 0, invalid_input,
                "-n: negative (" + std::to_string(s.head_rows) + ")");
  dataset_store store(data_root(s, true));
  auto m = store.read_manifest(s.name);
  // Only the partitions that hold the first rows are read.
  std::vector<std::vector<scalar>> rows;
  for (std::size_t i = 0; i < m.partitions.size() && std::ssize(rows) < s.head_rows; ++i) {
    table part = store.read_partition(m, i);
    auto view = part.view();
    for (size_type r = 0; r < view.num_rows() && std::ssize(rows) < s.head_rows; ++r) {
      std::vector<scalar> row;
      for (size_type c = 0; c < view.num_columns(); ++c)
        row.push_back(get_scalar(view.column(c), r));
      rows.push_back(std::move(row));
    }
  }
  auto names = m.names();
  if (s.json) {
    auto out = nlohmann::ordered_json::array();
    for (const auto& row : rows) {
      auto object = nlohmann::ordered_json::object();
      for (std::size_t c = 0; c < row.size(); ++c) object[names[c]] = scalar_json(row[c]);
      out.push_back(std::move(object));
    }
    print_json(out);
    return 0;
  }
  std::vector<std::vector<std::string>> cells;
  for (const auto& row : rows) {
    std::vector<std::string> line;
    for (const auto& v : row) line.push_back(v.valid() ? v.to_text() : "null");
    cells.push_back(std::move(line));
  }
  print_cells(names, cells, std::cout);
  std::cout << "(" << rows.size() << " of " << m.rows << " rows, version " << m.version << ")\n";
  return 0;
}

int data_rm(const data_commands::state& s) {
  dataset_store store(data_root(s, true));
  store.remove(s.name);
  if (s.json)
    print_json({{"dataset", s.name}, {"removed", true}});
  else
    std::cout << "removed dataset " << s.name << "\n";
  return 0;
}

}  // namespace

// ---- the command tree ---------------------------------------------------------------------------

data_commands::data_commands(CLI::App& app) : _state(std::make_unique<state>()) {
  auto& s = *_state;
  auto* data = app.add_subcommand("data", "Datasets of a local storage root");
  data->require_subcommand(1);
  auto leaf = [&](const char* name, const char* help) {
    auto* cmd = data->add_subcommand(name, help);
    add_common(*cmd, s);
    return cmd;
  };

  s.import_cmd = leaf("import", "Import CSV (or text lines) as a new version of a dataset");
  s.import_cmd->add_option("name", s.name, "The dataset")->required();
  s.import_cmd->add_option("files", s.files, "Input files, their rows in this order")->required();
  s.import_cmd->add_option("--format", s.format, "csv, or lines (one string column 'line')")
      ->capture_default_str();
  s.import_cmd->add_option("--schema", s.schema,
                           "Column names and types: name:type,... (int32, int64, float32, float64, "
                           "bool, timestamp, string); default: inferred");
  s.import_cmd->add_flag("--no-header", s.no_header, "The first line is data, not column names");
  s.import_cmd->add_option("--delimiter", s.delimiter, "Field separator (one character, or \\t)")
      ->capture_default_str();
  s.import_cmd->add_option("--null", s.nulls,
                           "Unquoted text read as null (repeatable; default: the empty field)");
  s.import_cmd->add_option("--partition-rows", s.partition_rows, "Rows per partition at most")
      ->capture_default_str();
  s.import_cmd->add_option("--compression", s.compression, "none or zstd")->capture_default_str();
  s.import_cmd->add_option("--lock", s.lock,
                           "Fence the commit with this lock of the scheduler: acquire it before "
                           "the write, record its token in the manifest, release after the commit");
  s.import_cmd->add_option(
      "--token", s.token,
      "With --lock: the fencing token of a lock the caller holds (e.g. "
      "$EMBER_LOCK_TOKEN under `ember lock acquire NAME -- ...`); not acquired");
  s.import_cmd->add_option("--scheduler", s.scheduler,
                           "With --lock: HOST:PORT of the scheduler (default: $EMBER_SCHEDULER, "
                           "else 127.0.0.1:4242)");
  s.import_cmd->add_option("--token-file", s.token_file, "With --lock: the cluster token's file");
  s.import_cmd->add_option("--lock-timeout-ms", s.lock_timeout_ms, "How long to wait for --lock")
      ->capture_default_str();

  s.export_cmd = leaf("export", "Write a version of a dataset as CSV");
  s.export_cmd->add_option("name", s.name, "The dataset")->required();
  s.export_cmd->add_option("--version", s.version, "The version (default: the current one)");
  s.export_cmd->add_option("--output", s.output, "The CSV file (default, or -: stdout)");

  s.ls = leaf("ls", "Datasets: current version, rows, bytes, partitions");

  s.show = leaf("show", "A version's manifest: schema, statistics, partitions");
  s.show->add_option("name", s.name, "The dataset")->required();
  s.show->add_option("--version", s.version, "The version (default: the current one)");

  s.head = leaf("head", "The first rows of a dataset's current version");
  s.head->add_option("name", s.name, "The dataset")->required();
  s.head->add_option("-n,--rows", s.head_rows, "Rows to print")->capture_default_str();

  s.rm = leaf("rm", "Remove a dataset with all its versions");
  s.rm->add_option("name", s.name, "The dataset")->required();
}

data_commands::~data_commands() = default;

std::optional<int> data_commands::run() {
  auto& s = *_state;
  if (*s.import_cmd) return data_import(s);
  if (*s.export_cmd) return data_export(s);
  if (*s.ls) return data_ls(s);
  if (*s.show) return data_show(s);
  if (*s.head) return data_head(s);
  if (*s.rm) return data_rm(s);
  return std::nullopt;
}

}  // namespace ember::cli
