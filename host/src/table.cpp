#include <ember/host/table.hpp>

#include <string>
#include <unordered_set>

namespace ember {

column_view column_view::slice(size_type begin, size_type end) const {
  EMBER_EXPECTS(begin >= 0 && begin <= end && end <= _size, invalid_input,
                "slice [" + std::to_string(begin) + ", " + std::to_string(end) +
                    ") is outside a column of " + std::to_string(_size) + " rows");
  column_view v = *this;
  v._size = end - begin;
  v._mask_offset = _mask_offset + begin;
  if (_type == type_id::string) {
    v._offsets = _offsets + begin;
  } else {
    v._data = static_cast<const char*>(_data) + begin * size_of(_type);
  }
  return v;
}

column_view column::view() const noexcept {
  auto mask = _null_mask.empty() ? nullptr : _null_mask.data_as<bitmask_type>();
  if (_type == type_id::string) {
    return column_view::strings(_size, _offsets.data_as<size_type>(), _data.data_as<char>(), mask,
                                kind());
  }
  return column_view(_type, _size, _data.data(), mask, kind());
}

namespace {
void check_shape(const std::vector<size_type>& sizes, const std::vector<std::string>& names) {
  EMBER_EXPECTS(sizes.size() == names.size(), invalid_input,
                "a table got " + std::to_string(sizes.size()) + " columns but " +
                    std::to_string(names.size()) + " names");
  std::unordered_set<std::string> seen;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    EMBER_EXPECTS(sizes[i] == sizes[0], invalid_input,
                  "column '" + names[i] + "' has " + std::to_string(sizes[i]) +
                      " rows but column '" + names[0] + "' has " + std::to_string(sizes[0]));
    EMBER_EXPECTS(seen.insert(names[i]).second, invalid_input,
                  "column name '" + names[i] + "' appears twice in one table");
  }
}
}  // namespace

table_view::table_view(std::vector<column_view> columns, std::vector<std::string> names)
    : _columns(std::move(columns)), _names(std::move(names)) {
  std::vector<size_type> sizes;
  for (const auto& c : _columns) sizes.push_back(c.size());
  check_shape(sizes, _names);
}

size_type table_view::index_of(std::string_view name) const {
  for (std::size_t i = 0; i < _names.size(); ++i)
    if (_names[i] == name) return static_cast<size_type>(i);
  std::string have;
  for (const auto& n : _names) have += (have.empty() ? "" : ", ") + n;
  throw invalid_input("unknown column '" + std::string(name) +
                      "' (the table has: " + (have.empty() ? "no columns" : have) + ")");
}

bool table_view::has_column(std::string_view name) const noexcept {
  for (const auto& n : _names)
    if (n == name) return true;
  return false;
}

table_view table_view::select(const std::vector<std::string>& names) const {
  std::vector<column_view> cols;
  for (const auto& n : names) cols.push_back(column(n));
  return table_view(std::move(cols), names);
}

table_view table_view::slice(size_type begin, size_type end) const {
  std::vector<column_view> cols;
  for (const auto& c : _columns) cols.push_back(c.slice(begin, end));
  return table_view(std::move(cols), _names);
}

table::table(std::vector<ember::column> columns, std::vector<std::string> names)
    : _columns(std::move(columns)), _names(std::move(names)) {
  std::vector<size_type> sizes;
  for (const auto& c : _columns) sizes.push_back(c.size());
  check_shape(sizes, _names);
}

table_view table::view() const {
  std::vector<column_view> cols;
  for (const auto& c : _columns) cols.push_back(c.view());
  return table_view(std::move(cols), _names);
}

std::vector<ember::column> table::release() noexcept {
  _names.clear();
  return std::move(_columns);
}

}  // namespace ember
