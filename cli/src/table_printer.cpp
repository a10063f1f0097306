#include "table_printer.hpp"

#include <algorithm>
#include <ostream>

#include <ember/host/scalar.hpp>

namespace ember::cli {

void print_cells(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& r : rows)
    for (std::size_t c = 0; c < r.size() && c < width.size(); ++c)
      width[c] = std::max(width[c], r[c].size());
  auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t c = 0; c < width.size(); ++c) {
      const std::string& cell = c < cells.size() ? cells[c] : std::string();
      out << (c == 0 ? "" : "  ") << cell << std::string(width[c] - cell.size(), ' ');
    }
    out << '\n';
  };
  line(header);
  std::vector<std::string> rule;
  for (auto w : width) rule.push_back(std::string(w, '-'));
  line(rule);
  for (const auto& r : rows) line(r);
}

void print_table(const table_view& t, std::ostream& out, size_type max_rows) {
  std::vector<std::vector<std::string>> rows;
  size_type shown = std::min(t.num_rows(), max_rows);
  for (size_type r = 0; r < shown; ++r) {
    std::vector<std::string> cells;
    for (size_type c = 0; c < t.num_columns(); ++c) {
      auto v = get_scalar(t.column(c), r);
      cells.push_back(v.valid() ? v.to_text() : "null");
    }
    rows.push_back(std::move(cells));
  }
  print_cells(t.names(), rows, out);
  if (t.num_rows() > shown)
    out << "... " << (t.num_rows() - shown) << " more rows (" << t.num_rows() << " in all)\n";
  else
    out << "(" << t.num_rows() << " rows)\n";
}

nlohmann::ordered_json scalar_json(const scalar& v) {
  if (!v.valid()) return nullptr;
  switch (v.type()) {
    case type_id::int32:
    case type_id::int64:
      return v.as_int();
    case type_id::bool8:
      return v.as_int() != 0;
    case type_id::float32:
    case type_id::float64:
      return v.as_float();  // NaN and infinities print as null
    case type_id::string:
      return v.as_string();
    case type_id::timestamp_ns:
      return v.to_text();
  }
  return v.to_text();
}

}  // namespace ember::cli
