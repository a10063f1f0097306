#include <ember/host/column_device_view.hpp>
#include <ember/host/column_factories.hpp>

#include <cstring>
#include <string>

namespace ember {
namespace {
void expect_host(const column_view& c) {
  EMBER_EXPECTS(c.kind() != memory_kind::device, logic_error,
                "reading a device column on the host: copy it to the host first");
}
}  // namespace

buffer make_bitmask(std::span<const bool> valid, memory_resource& mr) {
  auto words = bitmask_words(static_cast<size_type>(valid.size()));
  buffer mask(static_cast<std::size_t>(words) * sizeof(bitmask_type), mr);
  auto* bits = mask.data_as<bitmask_type>();
  std::memset(bits, 0, mask.size());
  for (std::size_t i = 0; i < valid.size(); ++i)
    if (valid[i]) bits[i >> 5] |= bitmask_type{1} << (i & 31);
  return mask;
}

size_type count_nulls(const column_view& column) {
  expect_host(column);
  if (!column.nullable()) return 0;
  size_type nulls = 0;
  for (size_type i = 0; i < column.size(); ++i)
    nulls += bit_is_set(column.null_mask(), column.mask_offset() + i) ? 0 : 1;
  return nulls;
}

template <class T>
column make_column(type_id type, std::span<const T> values, std::span<const bool> valid,
                   memory_resource& mr) {
  EMBER_EXPECTS(is_fixed_width(type) && size_of(type) == sizeof(T), invalid_input,
                "make_column: a " + std::string(to_string(type)) +
                    " column cannot hold values of this C++ type");
  EMBER_EXPECTS(valid.empty() || valid.size() == values.size(), invalid_input,
                "make_column: " + std::to_string(values.size()) + " values but " +
                    std::to_string(valid.size()) + " validity flags");
  buffer data(values.size() * sizeof(T), mr);
  if (!values.empty()) std::memcpy(data.data(), values.data(), values.size() * sizeof(T));
  buffer mask = valid.empty() ? buffer{} : make_bitmask(valid, mr);
  return column(type, static_cast<size_type>(values.size()), std::move(data), std::move(mask));
}

#define EMBER_INSTANTIATE(T)                                                         \
  template column make_column<T>(type_id, std::span<const T>, std::span<const bool>, \
                                 memory_resource&);                                  \
  template std::vector<T> copy_values<T>(const column_view&);                        \
  template std::vector<std::optional<T>> copy_optional<T>(const column_view&);
EMBER_INSTANTIATE(std::int32_t)
EMBER_INSTANTIATE(std::int64_t)
EMBER_INSTANTIATE(float)
EMBER_INSTANTIATE(double)
EMBER_INSTANTIATE(std::uint8_t)
#undef EMBER_INSTANTIATE

column make_string_column(const std::vector<std::optional<std::string>>& values,
                          memory_resource& mr) {
  auto n = values.size();
  std::size_t total = 0;
  bool any_null = false;
  for (const auto& v : values) {
    total += v ? v->size() : 0;
    any_null |= !v.has_value();
  }
  buffer offsets((n + 1) * sizeof(size_type), mr);
  buffer chars(total, mr);
  auto* off = offsets.data_as<size_type>();
  auto* out = chars.data_as<char>();
  size_type pos = 0;
  std::vector<char> valid(n);
  for (std::size_t i = 0; i < n; ++i) {
    off[i] = pos;
    if (values[i]) {
      std::memcpy(out + pos, values[i]->data(), values[i]->size());
      pos += static_cast<size_type>(values[i]->size());
    }
    valid[i] = values[i].has_value();
  }
  off[n] = pos;
  buffer mask =
      any_null
          ? make_bitmask(std::span<const bool>(reinterpret_cast<const bool*>(valid.data()), n), mr)
          : buffer{};
  return column(static_cast<size_type>(n), std::move(offsets), std::move(chars), std::move(mask));
}

column make_string_column(const std::vector<std::string>& values, memory_resource& mr) {
  std::vector<std::optional<std::string>> v(values.begin(), values.end());
  return make_string_column(v, mr);
}

column make_string_column(std::span<const size_type> offsets, std::string_view chars,
                          memory_resource& mr) {
  EMBER_EXPECTS(!offsets.empty(), invalid_input,
                "make_string_column: offsets need rows + 1 entries");
  buffer off(offsets.size() * sizeof(size_type), mr);
  std::memcpy(off.data(), offsets.data(), off.size());
  buffer ch(chars.size(), mr);
  if (!chars.empty()) std::memcpy(ch.data(), chars.data(), chars.size());
  return column(static_cast<size_type>(offsets.size() - 1), std::move(off), std::move(ch));
}

column make_empty_column(type_id type, memory_resource& mr) {
  if (type == type_id::string) {
    buffer offsets(sizeof(size_type), mr);
    *offsets.data_as<size_type>() = 0;
    return column(0, std::move(offsets), buffer(0, mr));
  }
  return column(type, 0, buffer(0, mr));
}

table make_empty_table(const std::vector<std::string>& names, const std::vector<type_id>& types,
                       memory_resource& mr) {
  EMBER_EXPECTS(names.size() == types.size(), invalid_input,
                "make_empty_table: names and types differ in count");
  std::vector<column> cols;
  for (auto t : types) cols.push_back(make_empty_column(t, mr));
  return table(std::move(cols), names);
}

template <class T>
std::vector<T> copy_values(const column_view& column) {
  expect_host(column);
  EMBER_EXPECTS(is_fixed_width(column.type()) && size_of(column.type()) == sizeof(T), logic_error,
                "copy_values: element size does not match the column type");
  auto* p = column.data<T>();
  return std::vector<T>(p, p + column.size());
}

template <class T>
std::vector<std::optional<T>> copy_optional(const column_view& column) {
  auto values = copy_values<T>(column);
  std::vector<std::optional<T>> out(values.size());
  for (size_type i = 0; i < column.size(); ++i)
    if (bit_is_set(column.null_mask(), column.mask_offset() + i)) out[i] = values[i];
  return out;
}

std::vector<std::optional<std::string>> copy_strings(const column_view& column) {
  expect_host(column);
  EMBER_EXPECTS(column.type() == type_id::string, logic_error, "copy_strings: not a string column");
  std::vector<std::optional<std::string>> out(column.size());
  auto dv = column_device_view::of(column);
  for (size_type i = 0; i < column.size(); ++i) {
    if (!dv.is_valid(i)) continue;
    auto s = dv.string_at(i);
    out[i] = std::string(s.data, static_cast<std::size_t>(s.size));
  }
  return out;
}

column copy_column(const column_view& c, memory_resource& mr) {
  expect_host(c);
  buffer mask;
  if (c.nullable()) {
    std::vector<char> valid(c.size());
    for (size_type i = 0; i < c.size(); ++i)
      valid[i] = bit_is_set(c.null_mask(), c.mask_offset() + i);
    mask = make_bitmask(
        std::span<const bool>(reinterpret_cast<const bool*>(valid.data()), valid.size()), mr);
  }
  if (c.type() == type_id::string) {
    size_type first = c.size() > 0 ? c.offsets()[0] : 0;
    size_type bytes = c.size() > 0 ? c.offsets()[c.size()] - first : 0;
    buffer offsets((c.size() + 1) * sizeof(size_type), mr);
    auto* off = offsets.data_as<size_type>();
    for (size_type i = 0; i <= c.size(); ++i) off[i] = c.size() > 0 ? c.offsets()[i] - first : 0;
    buffer chars(bytes, mr);
    if (bytes > 0) std::memcpy(chars.data(), c.chars() + first, bytes);
    return column(c.size(), std::move(offsets), std::move(chars), std::move(mask));
  }
  std::size_t bytes = c.size() * size_of(c.type());
  buffer data(bytes, mr);
  if (bytes > 0) std::memcpy(data.data(), c.data(), bytes);
  return column(c.type(), c.size(), std::move(data), std::move(mask));
}

table copy_table(const table_view& t, memory_resource& mr) {
  std::vector<column> cols;
  for (const auto& c : t.columns()) cols.push_back(copy_column(c, mr));
  return table(std::move(cols), t.names());
}

column concatenate_columns(const std::vector<column_view>& pieces, type_id type,
                           memory_resource& mr) {
  size_type rows = 0;
  bool nullable = false;
  for (const auto& p : pieces) {
    EMBER_EXPECTS(p.kind() == memory_kind::host && p.type() == type, logic_error,
                  "concatenate_columns: pieces must be host columns of one type");
    rows += p.size();
    nullable = nullable || p.nullable();
  }
  buffer mask;
  if (nullable) {
    mask = buffer(static_cast<std::size_t>(bitmask_words(rows)) * sizeof(bitmask_type), mr);
    auto* out = mask.data_as<bitmask_type>();
    std::memset(out, 0, mask.size());
    size_type at = 0;
    for (const auto& p : pieces) {
      for (size_type i = 0; i < p.size(); ++i, ++at) {
        if (bit_is_set(p.null_mask(), p.mask_offset() + i))
          out[at >> 5] |= bitmask_type{1} << (at & 31);
      }
    }
  }
  if (type != type_id::string) {
    auto width = size_of(type);
    buffer data(static_cast<std::size_t>(rows * width), mr);
    auto* out = data.data_as<char>();
    for (const auto& p : pieces) {
      if (p.size() > 0) std::memcpy(out, p.data(), static_cast<std::size_t>(p.size() * width));
      out += p.size() * width;
    }
    return column(type, rows, std::move(data), std::move(mask));
  }
  size_type chars = 0;
  for (const auto& p : pieces)
    if (p.size() > 0) chars += p.offsets()[p.size()] - p.offsets()[0];
  buffer offsets(static_cast<std::size_t>(rows + 1) * sizeof(size_type), mr);
  buffer bytes(static_cast<std::size_t>(chars), mr);
  auto* off = offsets.data_as<size_type>();
  auto* out = bytes.data_as<char>();
  size_type row = 0, pos = 0;
  off[0] = 0;
  for (const auto& p : pieces) {
    if (p.size() == 0) continue;
    auto first = p.offsets()[0];
    auto n = p.offsets()[p.size()] - first;
    if (n > 0) std::memcpy(out + pos, p.chars() + first, static_cast<std::size_t>(n));
    for (size_type i = 1; i <= p.size(); ++i) off[row + i] = pos + p.offsets()[i] - first;
    row += p.size();
    pos += n;
  }
  return column(rows, std::move(offsets), std::move(bytes), std::move(mask));
}

}  // namespace ember
