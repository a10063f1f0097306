#include <ember/host/column_factories.hpp>
#include <ember/host/io.hpp>
#include <ember/host/scalar.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <ostream>
#include <string>

namespace ember {

table read_text_lines(const std::vector<std::filesystem::path>& paths, size_type max_line_bytes,
                      memory_resource& mr) {
  std::vector<size_type> offsets{0};
  std::string chars;
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      throw invalid_input("cannot read input file '" + path.string() +
                          "': " + std::strerror(errno));
    }
    if (std::filesystem::is_directory(path)) {
      throw invalid_input("cannot read input file '" + path.string() + "': it is a directory");
    }
    std::string line;
    size_type line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (static_cast<size_type>(line.size()) > max_line_bytes) {
        throw invalid_input(path.string() + ":" + std::to_string(line_no) + ": line of " +
                            std::to_string(line.size()) + " bytes exceeds the limit of " +
                            std::to_string(max_line_bytes));
      }
      chars += line;
      offsets.push_back(static_cast<size_type>(chars.size()));
    }
    if (in.bad()) {
      throw invalid_input("error while reading '" + path.string() + "' after line " +
                          std::to_string(line_no) + ": " + std::strerror(errno));
    }
  }
  std::vector<column> cols;
  cols.push_back(make_string_column(offsets, chars, mr));
  return table(std::move(cols), {"line"});
}

namespace {
void write_field(std::ostream& out, const std::string& text, bool quote_if_needed) {
  if (quote_if_needed && text.find_first_of(",\"\r\n") != std::string::npos) {
    out << '"';
    for (char c : text) {
      if (c == '"') out << '"';
      out << c;
    }
    out << '"';
  } else {
    out << text;
  }
}
}  // namespace

void write_csv(const table_view& t, std::ostream& out) {
  for (size_type c = 0; c < t.num_columns(); ++c) {
    if (c > 0) out << ',';
    write_field(out, t.names()[c], true);
  }
  out << '\n';
  for (size_type r = 0; r < t.num_rows(); ++r) {
    for (size_type c = 0; c < t.num_columns(); ++c) {
      if (c > 0) out << ',';
      auto v = get_scalar(t.column(c), r);
      if (v.valid() && v.type() == type_id::string && v.to_text().empty()) {
        out << "\"\"";  // an empty string, which an empty field (a null) is not
        continue;
      }
      write_field(out, v.to_text(), v.type() == type_id::string);
    }
    out << '\n';
  }
}

void write_csv_file(const table_view& t, const std::filesystem::path& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    throw invalid_input("cannot write output file '" + path.string() +
                        "': " + std::strerror(errno));
  }
  write_csv(t, out);
  out.flush();
  if (!out) {
    throw invalid_input("error while writing '" + path.string() + "': " + std::strerror(errno));
  }
}

}  // namespace ember
