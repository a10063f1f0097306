#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ember/host/column_factories.hpp>
#include <ember/host/dataset_store.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/generators.hpp>
#include <ember/scheduler/sources.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace ember {

std::pair<size_type, size_type> partition_range(size_type rows, int p, int partitions) {
  EMBER_EXPECTS(
      partitions >= 1 && p >= 0 && p < partitions, invalid_input,
      "partition " + std::to_string(p) + " of " + std::to_string(partitions) + " does not exist");
  auto at = [&](int i) {
    return static_cast<size_type>(static_cast<__int128>(rows) * i / partitions);
  };
  return {at(p), at(p + 1)};
}

table_view table_partition(const table_source& source, int p, int partitions) {
  EMBER_EXPECTS(source.data != nullptr, invalid_input, "the table source has no table");
  auto view = source.data->view();
  auto [first, last] = partition_range(view.num_rows(), p, partitions);
  return view.slice(first, last);
}

namespace {

[[noreturn]] void fail_read(const std::string& path, const std::string& why) {
  throw invalid_input("cannot read input file '" + path + "': " + why);
}

// Appends the lines of `path` that start in bytes [begin, end).
void read_lines(const std::string& path, size_type begin, size_type end, size_type max_line_bytes,
                std::string& chars, std::vector<size_type>& offsets) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_read(path, std::strerror(errno));
  size_type pos = begin;
  // A line that starts before `begin` belongs to the previous range: skip to the next newline.
  if (begin > 0) {
    in.seekg(begin - 1);
    char c = 0;
    if (!in.get(c)) fail_read(path, "the file is shorter than when the job was planned");
    if (c != '\n') {
      std::string skipped;
      std::getline(in, skipped);
      pos += static_cast<size_type>(skipped.size()) + 1;
    }
  }
  std::string line;
  while (pos < end && std::getline(in, line)) {
    if (static_cast<size_type>(line.size()) > max_line_bytes) {
      throw invalid_input(path + ": the line at byte " + std::to_string(pos) + " has " +
                          std::to_string(line.size()) + " bytes, more than the limit of " +
                          std::to_string(max_line_bytes));
    }
    pos += static_cast<size_type>(line.size()) + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    chars += line;
    offsets.push_back(static_cast<size_type>(chars.size()));
  }
  if (in.bad()) fail_read(path, std::strerror(errno));
}

}  // namespace

table text_partition(const text_source& source, int p, int partitions, memory_resource& mr,
                     size_type max_line_bytes) {
  std::vector<size_type> sizes;
  size_type total = 0;
  for (const auto& path : source.paths) {
    std::error_code ec;
    auto bytes = std::filesystem::file_size(path, ec);
    if (ec) fail_read(path, ec.message());
    sizes.push_back(static_cast<size_type>(bytes));
    total += static_cast<size_type>(bytes);
  }
  auto [first, last] = partition_range(total, p, partitions);
  std::string chars;
  std::vector<size_type> offsets{0};
  size_type file_start = 0;
  for (std::size_t f = 0; f < source.paths.size(); ++f) {
    size_type file_end = file_start + sizes[f];
    size_type b = std::max(first, file_start), e = std::min(last, file_end);
    if (b < e)
      read_lines(source.paths[f], b - file_start, e - file_start, max_line_bytes, chars, offsets);
    file_start = file_end;
  }
  std::vector<column> cols;
  cols.push_back(make_string_column(offsets, chars, mr));
  return table(std::move(cols), {"line"});
}

table generated_partition(const generate_source& source, int p, int partitions,
                          memory_resource& mr) {
  auto [first, last] = partition_range(source.rows, p, partitions);
  return generate_rows(source, first, last, mr);
}

std::string dataset_scan_key(const dataset_source& source, int p) {
  std::string key = "scan/" + source.root + "/" + source.name + "/v" +
                    std::to_string(source.version) + "/p" + std::to_string(p) + "/";
  for (std::size_t i = 0; i < source.columns.size(); ++i)
    key += (i == 0 ? "" : ",") + source.columns[i];
  return key;
}

scanned_partition dataset_scan_partition(const dataset_source& source, int p, memory_resource& mr) {
  EMBER_EXPECTS(source.version != 0, invalid_input,
                "dataset '" + source.name + "': the scan's version was not resolved");
  EMBER_EXPECTS(p >= 0, invalid_input, "partition " + std::to_string(p) + " does not exist");
  dataset_store store(source.root);
  auto manifest = store.read_manifest(source.name, source.version);
  auto names = source.columns.empty() ? manifest.names() : source.columns;
  auto index = static_cast<std::size_t>(p);
  bool skipped = index >= manifest.partitions.size();
  if (!skipped) {
    const auto& part = manifest.partitions[index];
    auto all = manifest.names();
    for (const auto& f : source.filters) {
      auto at = std::find(all.begin(), all.end(), f.column);
      EMBER_EXPECTS(at != all.end(), invalid_input,
                    "dataset '" + source.name + "': unknown filter column '" + f.column + "'");
      if (!may_contain(part.stats[static_cast<std::size_t>(at - all.begin())], f.op, f.value)) {
        skipped = true;
        break;
      }
    }
    if (!skipped) return {store.read_partition(manifest, index, names, mr), false};
  }
  std::vector<type_id> types;
  for (const auto& n : names) {
    auto at = std::find_if(manifest.schema.begin(), manifest.schema.end(),
                           [&](const partition_column& c) { return c.name == n; });
    EMBER_EXPECTS(at != manifest.schema.end(), invalid_input,
                  "dataset '" + source.name + "': unknown column '" + n + "'");
    types.push_back(at->type);
  }
  return {make_empty_table(names, types, mr), skipped && index < manifest.partitions.size()};
}

}  // namespace ember
