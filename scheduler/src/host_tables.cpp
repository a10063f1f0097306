#include "detail/host_tables.hpp"

#include <cstring>
#include <ember/host/column_device_view.hpp>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>

namespace ember::detail {

namespace {

column concatenate_column(const std::vector<column_view>& pieces, type_id type,
                          memory_resource& mr) {
  size_type rows = 0;
  bool nullable = false;
  for (const auto& p : pieces) {
    EMBER_EXPECTS(p.kind() == memory_kind::host && p.type() == type, logic_error,
                  "concatenate_host: pieces must be host columns of one type");
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

}  // namespace

table concatenate_host(const std::vector<table_view>& tables, const schema& columns,
                       memory_resource& mr) {
  if (tables.empty()) return make_empty_table(columns.names, columns.types, mr);
  std::vector<column> out;
  for (std::size_t c = 0; c < columns.names.size(); ++c) {
    std::vector<column_view> pieces;
    for (const auto& t : tables) pieces.push_back(t.column(static_cast<size_type>(c)));
    out.push_back(concatenate_column(pieces, columns.types[c], mr));
  }
  return table(std::move(out), columns.names);
}

}  // namespace ember::detail
