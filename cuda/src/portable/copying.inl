#pragma once
#include <thrust/binary_search.h>
#include <thrust/logical.h>
#include <thrust/sequence.h>

#include "portable/utilities.inl"

namespace ember::EMBER_BACKEND_NS {
namespace detail {

struct is_negative_fn {
  EMBER_HD bool operator()(size_type v) const { return v < 0; }
};

/// Validity of output row i of a concatenation: finds its piece by binary search over the
/// pieces' first rows.
struct concat_valid_fn {
  const column_device_view* pieces;
  const size_type* starts;  // first output row of each piece, plus the total at the end
  int num_pieces;
  EMBER_HD bool operator()(size_type i) const {
    int lo = 0, hi = num_pieces - 1;
    while (lo < hi) {
      int mid = (lo + hi + 1) / 2;
      if (starts[mid] <= i)
        lo = mid;
      else
        hi = mid - 1;
    }
    return pieces[lo].is_valid(i - starts[lo]);
  }
};

struct rebase_offsets_fn {
  const size_type* in;
  size_type shift;
  EMBER_HD size_type operator()(size_type k) const { return in[k] + shift; }
};

inline column concatenate_columns(exec& ex, const std::vector<column_view>& pieces) {
  type_id type = pieces.front().type();
  size_type rows = 0;
  bool nullable = false;
  std::vector<size_type> starts;
  for (const auto& p : pieces) {
    starts.push_back(rows);
    rows += p.size();
    nullable |= p.nullable();
  }
  starts.push_back(rows);
  buffer mask;
  if (nullable) {
    std::vector<column_device_view> dvs;
    for (const auto& p : pieces) dvs.push_back(column_device_view::of(p));
    buffer d_pieces = ex.upload(dvs);
    buffer d_starts = ex.upload(starts);
    mask = pack_bitmask(
        ex,
        concat_valid_fn{d_pieces.data_as<column_device_view>(), d_starts.data_as<size_type>(),
                        static_cast<int>(pieces.size())},
        rows);
  }
  if (type == type_id::string) {
    buffer offsets = ex.alloc<size_type>(rows + 1);
    auto* out = offsets.data_as<size_type>();
    size_type chars_total = 0;
    std::vector<std::pair<size_type, size_type>> char_ranges;
    for (std::size_t p = 0; p < pieces.size(); ++p) {
      size_type n = pieces[p].size();
      size_type first = ex.read(pieces[p].offsets());
      size_type last = ex.read(pieces[p].offsets() + n);
      auto k = thrust::counting_iterator<size_type>(0);
      thrust::transform(ex.policy(), k, k + n, out + starts[p],
                        rebase_offsets_fn{pieces[p].offsets(), chars_total - first});
      char_ranges.emplace_back(first, last - first);
      chars_total += last - first;
    }
    ex.copy(out + rows, &chars_total, sizeof(size_type));
    buffer chars = ex.alloc<char>(chars_total);
    size_type pos = 0;
    for (std::size_t p = 0; p < pieces.size(); ++p) {
      ex.copy(chars.data_as<char>() + pos, pieces[p].chars() + char_ranges[p].first,
              static_cast<std::size_t>(char_ranges[p].second));
      pos += char_ranges[p].second;
    }
    ex.sync();
    return column(rows, std::move(offsets), std::move(chars), std::move(mask));
  }
  auto width = size_of(type);
  buffer data = ex.alloc<unsigned char>(rows * width);
  for (std::size_t p = 0; p < pieces.size(); ++p)
    ex.copy(data.data_as<unsigned char>() + starts[p] * width, pieces[p].data(),
            static_cast<std::size_t>(pieces[p].size() * width));
  ex.sync();
  return column(type, rows, std::move(data), std::move(mask));
}

}  // namespace detail

table gather(const table_view& input, const column_view& indices, context& ctx) {
  exec ex(ctx);
  auto n = indices.size();
  const auto* map = indices.data<size_type>();
  bool negatives = n > 0 && thrust::any_of(ex.policy(), map, map + n, detail::is_negative_fn{});
  return detail::gather_table(ex, input, map, n, negatives);
}

table concatenate(const std::vector<table_view>& tables, context& ctx) {
  exec ex(ctx);
  std::vector<column> cols;
  const auto& first = tables.front();
  for (size_type c = 0; c < first.num_columns(); ++c) {
    std::vector<column_view> pieces;
    for (const auto& t : tables) pieces.push_back(t.column(c));
    cols.push_back(detail::concatenate_columns(ex, pieces));
  }
  return table(std::move(cols), first.names());
}

table copy_slice(const table_view& input, size_type begin, size_type end, context& ctx) {
  exec ex(ctx);
  auto sliced = input.slice(begin, end);
  std::vector<column> cols;
  for (const auto& c : sliced.columns()) cols.push_back(detail::concatenate_columns(ex, {c}));
  return table(std::move(cols), input.names());
}

}  // namespace ember::EMBER_BACKEND_NS
