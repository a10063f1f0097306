// The CPU backend's hash join. The right (build) side goes into a table of its distinct keys,
// each entry naming one right row of the key (its representative); when keys repeat, the right
// rows are also grouped by key in one array, so a probe reads a key's rows contiguously. The
// left (probe) side is cut into morsels that threads take dynamically. When each left row can
// yield at most one output row (unique right keys, semi, anti) a morsel writes straight into the
// final maps at its own rows and the gaps are closed afterwards; otherwise each morsel fills its
// own lists, concatenated at the end. Table entries are prefetched a few rows ahead of their use.
#include "cpu/join_fast.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <ember/host/column_device_view.hpp>
#include <exception>
#include <limits>
#include <mutex>
#include <type_traits>
#include <vector>

namespace ember::cpu::detail {
namespace {

constexpr size_type no_row = -1;
/// Left rows per morsel: small enough to balance two threads on skewed keys, large enough that
/// the per-morsel lists stay few.
constexpr size_type morsel_rows = size_type{1} << 16;
/// How many rows ahead a table entry is prefetched (a power of two).
constexpr size_type prefetch_distance = 16;
/// Below this many elements a loop runs on the calling thread: starting a team costs more.
constexpr size_type parallel_threshold = size_type{1} << 16;

/// A std allocator over the context's accounted resource, so that scratch counts against the
/// worker's budget like every other allocation.
template <class T>
struct accounted_allocator {
  using value_type = T;
  memory_resource* mr;
  explicit accounted_allocator(memory_resource& r) noexcept : mr(&r) {}
  template <class U>
  accounted_allocator(const accounted_allocator<U>& other) noexcept : mr(other.mr) {}
  T* allocate(std::size_t n) { return static_cast<T*>(mr->allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { mr->deallocate(p, n * sizeof(T)); }
  friend bool operator==(const accounted_allocator& a, const accounted_allocator& b) noexcept {
    return a.mr == b.mr;
  }
};
template <class T>
using scratch_vector = std::vector<T, accounted_allocator<T>>;

int thread_count(const context& ctx) {
  return ctx.options().cpu_threads > 0 ? ctx.options().cpu_threads : omp_get_max_threads();
}

/// Runs body(i) for i in [0, n) on `threads` threads, taking items dynamically. The first
/// exception stops the remaining items and is rethrown on the calling thread (an exception must
/// not leave an OpenMP region).
template <class Body>
void parallel_for(size_type n, int threads, Body&& body) {
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;  // guards `error`
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (n > 1)
  for (size_type i = 0; i < n; ++i) {
    if (failed.load(std::memory_order_relaxed)) continue;
    try {
      body(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      failed.store(true, std::memory_order_relaxed);
    }
  }
  if (error) std::rethrow_exception(error);
}

// ---------------------------------------------------------------------------------------------
// Keys. A key policy gives each row a 64-bit tag (equal keys, equal tags), says whether a row's
// key is valid, and confirms a tag match with a full comparison unless the tag is the key itself.

/// One integer-like column, tagged by its value: a tag match is a key match.
template <class T>
struct value_key {
  const T* left;
  const T* right;
  column_device_view left_col;
  column_device_view right_col;

  static std::uint64_t tag_of(T v) {
    if constexpr (std::is_same_v<T, std::uint8_t>)
      return v != 0 ? 1 : 0;
    else
      return static_cast<std::uint64_t>(static_cast<std::int64_t>(v));
  }
  [[nodiscard]] std::uint64_t left_tag(size_type i) const { return tag_of(left[i]); }
  [[nodiscard]] std::uint64_t right_tag(size_type j) const { return tag_of(right[j]); }
  [[nodiscard]] bool left_valid(size_type i) const { return left_col.is_valid(i); }
  [[nodiscard]] bool right_valid(size_type j) const { return right_col.is_valid(j); }
  [[nodiscard]] bool equal(size_type, size_type) const { return true; }
  [[nodiscard]] bool right_equal(size_type, size_type) const { return true; }
};

/// Any key columns, tagged by the row hash and compared element by element (the same hash and
/// equality the portable operators use, so both paths agree on floats and strings).
struct row_key {
  table_device_view left;
  table_device_view right;

  [[nodiscard]] std::uint64_t left_tag(size_type i) const { return row_hasher{left, 0}(i); }
  [[nodiscard]] std::uint64_t right_tag(size_type j) const { return row_hasher{right, 0}(j); }
  [[nodiscard]] bool left_valid(size_type i) const { return keys_valid_fn{left}(i); }
  [[nodiscard]] bool right_valid(size_type j) const { return keys_valid_fn{right}(j); }
  [[nodiscard]] bool equal(size_type i, size_type j) const {
    return row_equal{left, right, false}(i, j);
  }
  [[nodiscard]] bool right_equal(size_type a, size_type b) const {
    return row_equal{right, right, false}(a, b);
  }
};

// ---------------------------------------------------------------------------------------------
// Tables over the distinct right keys. home(tag) is where a probe starts; find() returns the
// key's representative right row or no_row.

/// Open addressing with linear probing, at most half full.
class open_table {
 public:
  struct slot {
    std::uint64_t tag;
    size_type row;  // the key's representative right row; no_row when the slot is empty
  };

  open_table(size_type max_keys, memory_resource& mr, int threads) {
    auto cap = std::bit_ceil(static_cast<std::uint64_t>(std::max<size_type>(16, 2 * max_keys)));
    _mask = cap - 1;
    _shift = 64 - std::countr_zero(cap);
    _storage = buffer(cap * sizeof(slot), mr);
    _slots = _storage.data_as<slot>();
    auto n = static_cast<size_type>(cap);
#pragma omp parallel for schedule(static) num_threads(threads) if (n > parallel_threshold)
    for (size_type i = 0; i < n; ++i) _slots[i] = slot{0, no_row};
  }

  [[nodiscard]] std::uint64_t home(std::uint64_t tag) const { return mix64(tag) >> _shift; }
  void prefetch(std::uint64_t idx) const { __builtin_prefetch(_slots + idx); }

  template <class Equal>
  [[nodiscard]] size_type find(std::uint64_t idx, std::uint64_t tag, Equal&& equal) const {
    for (;; idx = (idx + 1) & _mask) {
      const slot& s = _slots[idx];
      if (s.row == no_row) return no_row;
      if (s.tag == tag && equal(s.row)) return s.row;
    }
  }
  /// The representative of `row`'s key, which is `row` itself when the key is new.
  template <class Equal>
  size_type insert(std::uint64_t idx, std::uint64_t tag, size_type row, Equal&& equal) {
    for (;; idx = (idx + 1) & _mask) {
      slot& s = _slots[idx];
      if (s.row == no_row) {
        s = slot{tag, row};
        return row;
      }
      if (s.tag == tag && equal(s.row)) return s.row;
    }
  }

 private:
  buffer _storage;
  slot* _slots = nullptr;
  std::uint64_t _mask = 0;
  int _shift = 0;
};

/// Direct indexing by key - min for integer keys whose range is small next to their count
/// (DuckDB's perfect hash join): no hashing, no collisions, 8 bytes per possible key.
class dense_table {
 public:
  dense_table(std::int64_t min, std::uint64_t range, memory_resource& mr, int threads)
      : _min(static_cast<std::uint64_t>(min)), _range(range) {
    _storage = buffer(range * sizeof(size_type), mr);
    _rows = _storage.data_as<size_type>();
    auto n = static_cast<size_type>(range);
#pragma omp parallel for schedule(static) num_threads(threads) if (n > parallel_threshold)
    for (size_type i = 0; i < n; ++i) _rows[i] = no_row;
  }

  /// Keys below the minimum wrap around to large values, so one comparison rejects both sides.
  [[nodiscard]] std::uint64_t home(std::uint64_t tag) const { return tag - _min; }
  void prefetch(std::uint64_t idx) const {
    if (idx < _range) __builtin_prefetch(_rows + idx);
  }
  template <class Equal>
  [[nodiscard]] size_type find(std::uint64_t idx, std::uint64_t, Equal&&) const {
    return idx < _range ? _rows[idx] : no_row;
  }
  template <class Equal>
  size_type insert(std::uint64_t idx, std::uint64_t, size_type row, Equal&&) {
    size_type& r = _rows[idx];
    if (r == no_row) r = row;
    return r;
  }

 private:
  buffer _storage;
  size_type* _rows = nullptr;
  std::uint64_t _min;
  std::uint64_t _range;
};

// ---------------------------------------------------------------------------------------------

/// Calls visit(row, tag, home) for the rows [begin, end) in order, having prefetched the table
/// entry of each row prefetch_distance rows earlier: a thread then waits for several cache
/// misses at once instead of one after another. (A separate prefetch loop would not do: the
/// vectoriser drops __builtin_prefetch from the loops it vectorises.)
template <class Table, class TagOf, class Visit>
void pipelined(const Table& table, size_type begin, size_type end, TagOf&& tag_of, Visit&& visit) {
  constexpr auto mask = static_cast<std::size_t>(prefetch_distance - 1);
  std::uint64_t tags[prefetch_distance];
  std::uint64_t homes[prefetch_distance];
  auto stage = [&](size_type row) {
    auto slot = static_cast<std::size_t>(row) & mask;
    tags[slot] = tag_of(row);
    homes[slot] = table.home(tags[slot]);
    table.prefetch(homes[slot]);
  };
  for (size_type row = begin; row < std::min(end, begin + prefetch_distance); ++row) stage(row);
  for (size_type row = begin; row < end; ++row) {
    auto slot = static_cast<std::size_t>(row) & mask;
    std::uint64_t tag = tags[slot];
    std::uint64_t home = homes[slot];
    if (row + prefetch_distance < end) stage(row + prefetch_distance);
    visit(row, tag, home);
  }
}

/// The right rows of each key, contiguous. When every key is unique (the usual foreign-key join)
/// the representative is the only row and none of this is built.
struct right_groups {
  struct range {
    size_type start;
    size_type size;
  };
  bool unique = true;
  scratch_vector<range> range_of_rep;  // indexed by representative row
  scratch_vector<size_type> rows;      // right rows grouped by key, in row order within a key

  explicit right_groups(memory_resource& mr)
      : range_of_rep(accounted_allocator<range>(mr)), rows(accounted_allocator<size_type>(mr)) {}
};

template <class Key, class Table>
right_groups build(const Key& key, Table& table, size_type nr, memory_resource& mr) {
  right_groups groups(mr);
  scratch_vector<size_type> rep_of(static_cast<std::size_t>(nr),
                                   accounted_allocator<size_type>(mr));
  pipelined(
      table, 0, nr, [&](size_type r) { return key.right_tag(r); },
      [&](size_type r, std::uint64_t tag, std::uint64_t home) {
        if (!key.right_valid(r)) {
          rep_of[r] = no_row;
          return;
        }
        size_type rep =
            table.insert(home, tag, r, [&](size_type other) { return key.right_equal(other, r); });
        rep_of[r] = rep;
        if (rep != r) groups.unique = false;
      });
  if (groups.unique) return groups;
  // Counting sort of the rows by representative: sizes, starts in representative order, scatter.
  groups.range_of_rep.assign(static_cast<std::size_t>(nr), right_groups::range{0, 0});
  size_type valid = 0;
  for (size_type r = 0; r < nr; ++r)
    if (rep_of[r] != no_row) {
      ++groups.range_of_rep[rep_of[r]].size;
      ++valid;
    }
  size_type start = 0;
  for (auto& g : groups.range_of_rep) {
    g.start = start;
    start += g.size;
  }
  groups.rows.resize(static_cast<std::size_t>(valid));
  for (size_type r = 0; r < nr; ++r)
    if (rep_of[r] != no_row) groups.rows[groups.range_of_rep[rep_of[r]].start++] = r;
  for (auto& g : groups.range_of_rep) g.start -= g.size;
  return groups;
}

/// Where a morsel's pairs go when a left row may have several matches: lists that grow.
struct growing_output {
  scratch_vector<size_type> left;
  scratch_vector<size_type> right;
  explicit growing_output(memory_resource& mr)
      : left(accounted_allocator<size_type>(mr)), right(accounted_allocator<size_type>(mr)) {}
  void add(size_type l) { left.push_back(l); }
  void add(size_type l, size_type r) {
    left.push_back(l);
    right.push_back(r);
  }
  void add_all(size_type l, const size_type* rows, size_type n) {
    left.insert(left.end(), static_cast<std::size_t>(n), l);
    right.insert(right.end(), rows, rows + n);
  }
};

/// Where a morsel's pairs go when each left row yields at most one: straight into the final
/// maps, at the morsel's own rows (compacted afterwards). While every output row k so far came
/// from left row begin + k, the left map is not written at all: when that holds for the whole
/// probe side, the output takes the left rows in order and the left columns are copied.
struct direct_output {
  size_type begin;
  size_type* left;
  size_type* right;
  size_type size = 0;
  bool in_order = true;

  void note_left(size_type l) {
    if (in_order) {
      if (l == begin + size) return;
      for (size_type k = 0; k < size; ++k) left[k] = begin + k;
      in_order = false;
    }
    left[size] = l;
  }
  void add(size_type l) {
    note_left(l);
    ++size;
  }
  void add(size_type l, size_type r) {
    note_left(l);
    right[size++] = r;
  }
  void add_all(size_type, const size_type*, size_type) {
    throw logic_error("hash_join: a key with several right rows reached a one-match output");
  }
};

template <join_kind Kind, class Key, class Table, class Output>
void probe(const Key& key, const Table& table, const right_groups& groups, size_type begin,
           size_type end, Output& out) {
  auto add_matches = [&](size_type l, size_type rep) {
    if (groups.unique) {
      out.add(l, rep);
    } else {
      auto g = groups.range_of_rep[rep];
      out.add_all(l, groups.rows.data() + g.start, g.size);
    }
  };
  pipelined(
      table, begin, end, [&](size_type l) { return key.left_tag(l); },
      [&](size_type l, std::uint64_t tag, std::uint64_t home) {
        size_type rep = key.left_valid(l)
                            ? table.find(home, tag, [&](size_type r) { return key.equal(l, r); })
                            : no_row;
        if constexpr (Kind == join_kind::inner) {
          if (rep != no_row) add_matches(l, rep);
        } else if constexpr (Kind == join_kind::left) {
          if (rep != no_row)
            add_matches(l, rep);
          else
            out.add(l, no_row);
        } else if constexpr (Kind == join_kind::semi) {
          if (rep != no_row) out.add(l);
        } else {
          if (rep == no_row) out.add(l);
        }
      });
}

constexpr bool has_right_map(join_kind kind) {
  return kind == join_kind::inner || kind == join_kind::left;
}

template <join_kind Kind, class Key, class Table>
join_gather_maps probe_at_most_one(const Key& key, const Table& table, const right_groups& groups,
                                   size_type nl, context& ctx, int threads) {
  constexpr bool pairs = has_right_map(Kind);
  auto bytes = static_cast<std::size_t>(nl) * sizeof(size_type);
  // Room for one pair per left row; pages that no morsel reaches are never touched.
  buffer left_map(bytes, ctx.resource());
  buffer right_map(pairs ? bytes : 0, ctx.resource());
  auto* lm = left_map.data_as<size_type>();
  auto* rm = right_map.data_as<size_type>();
  size_type morsels = (nl + morsel_rows - 1) / morsel_rows;
  std::vector<direct_output> outs;
  for (size_type i = 0; i < morsels; ++i) {
    size_type begin = i * morsel_rows;
    outs.push_back(direct_output{begin, lm + begin, pairs ? rm + begin : nullptr});
  }
  parallel_for(morsels, threads, [&](size_type i) {
    // A copy on this thread's stack: neighbouring entries of `outs` share cache lines.
    direct_output out = outs[i];
    probe<Kind>(key, table, groups, out.begin, std::min(nl, out.begin + morsel_rows), out);
    outs[i] = out;
  });
  bool in_order = true;
  for (size_type i = 0; i < morsels; ++i)
    in_order &=
        outs[i].in_order && outs[i].size == std::min(nl, (i + 1) * morsel_rows) - outs[i].begin;
  if (in_order) {
    column right = pairs ? column(type_id::int64, nl, std::move(right_map)) : column{};
    return {column{}, std::move(right), nl, true};
  }
  parallel_for(morsels, threads, [&](size_type i) {
    auto& o = outs[i];
    if (o.in_order)
      for (size_type k = 0; k < o.size; ++k) o.left[k] = o.begin + k;
  });
  // Close the gaps that unmatched rows left, in morsel order (every move goes left).
  size_type total = 0;
  for (const auto& o : outs) {
    auto n = static_cast<std::size_t>(o.size) * sizeof(size_type);
    if (total != o.begin) {
      std::memmove(lm + total, lm + o.begin, n);
      if (pairs) std::memmove(rm + total, rm + o.begin, n);
    }
    total += o.size;
  }
  column right = pairs ? column(type_id::int64, total, std::move(right_map)) : column{};
  return {column(type_id::int64, total, std::move(left_map)), std::move(right), total, false};
}

/// The morsels' lists concatenated in morsel order into an int64 column from ctx.resource().
column concatenate(const std::vector<growing_output>& parts, bool right, context& ctx,
                   int threads) {
  std::vector<size_type> starts(parts.size() + 1, 0);
  for (std::size_t i = 0; i < parts.size(); ++i)
    starts[i + 1] =
        starts[i] + static_cast<size_type>((right ? parts[i].right : parts[i].left).size());
  size_type total = starts.back();
  buffer data(static_cast<std::size_t>(total) * sizeof(size_type), ctx.resource());
  auto* out = data.data_as<size_type>();
  parallel_for(static_cast<size_type>(parts.size()), threads, [&](size_type i) {
    const auto& v = right ? parts[i].right : parts[i].left;
    if (!v.empty()) std::memcpy(out + starts[i], v.data(), v.size() * sizeof(size_type));
  });
  return column(type_id::int64, total, std::move(data));
}

template <join_kind Kind, class Key, class Table>
join_gather_maps probe_many(const Key& key, const Table& table, const right_groups& groups,
                            size_type nl, context& ctx, int threads) {
  size_type morsels = (nl + morsel_rows - 1) / morsel_rows;
  std::vector<growing_output> parts;
  parts.reserve(static_cast<std::size_t>(morsels));
  for (size_type i = 0; i < morsels; ++i) parts.emplace_back(ctx.resource());
  parallel_for(morsels, threads, [&](size_type i) {
    // Built on this thread's stack: neighbouring entries of `parts` share cache lines.
    growing_output out(ctx.resource());
    size_type begin = i * morsel_rows;
    probe<Kind>(key, table, groups, begin, std::min(nl, begin + morsel_rows), out);
    parts[i] = std::move(out);
  });
  column left = concatenate(parts, false, ctx, threads);
  column right = concatenate(parts, true, ctx, threads);
  size_type rows = left.size();
  return {std::move(left), std::move(right), rows, false};
}

template <join_kind Kind, class Key, class Table>
join_gather_maps probe_all(const Key& key, const Table& table, const right_groups& groups,
                           size_type nl, context& ctx, int threads) {
  if constexpr (has_right_map(Kind)) {
    if (!groups.unique) return probe_many<Kind>(key, table, groups, nl, ctx, threads);
  }
  return probe_at_most_one<Kind>(key, table, groups, nl, ctx, threads);
}

template <class Key, class Table>
join_gather_maps join_with(const Key& key, Table& table, size_type nl, size_type nr, join_kind kind,
                           context& ctx, int threads) {
  right_groups groups = build(key, table, nr, ctx.resource());
  switch (kind) {
    case join_kind::inner:
      return probe_all<join_kind::inner>(key, table, groups, nl, ctx, threads);
    case join_kind::left:
      return probe_all<join_kind::left>(key, table, groups, nl, ctx, threads);
    case join_kind::semi:
      return probe_all<join_kind::semi>(key, table, groups, nl, ctx, threads);
    case join_kind::anti:
      return probe_all<join_kind::anti>(key, table, groups, nl, ctx, threads);
  }
  throw logic_error("hash_join: unknown join kind");
}

template <class T>
join_gather_maps join_values(const column_view& left, const column_view& right, join_kind kind,
                             context& ctx, int threads) {
  value_key<T> key{left.data<T>(), right.data<T>(), column_device_view::of(left),
                   column_device_view::of(right)};
  size_type nl = left.size();
  size_type nr = right.size();
  // The range of the valid right keys decides between direct indexing and hashing.
  std::int64_t lo = std::numeric_limits<std::int64_t>::max();
  std::int64_t hi = std::numeric_limits<std::int64_t>::min();
  size_type valid = 0;
#pragma omp parallel for schedule(static) num_threads(threads) if (nr > parallel_threshold) \
    reduction(min : lo) reduction(max : hi) reduction(+ : valid)
  for (size_type j = 0; j < nr; ++j) {
    if (!key.right_valid(j)) continue;
    auto v = static_cast<std::int64_t>(key.right_tag(j));
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    ++valid;
  }
  if (valid > 0) {
    std::uint64_t span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
    // Same memory as the open table's 16-byte slots at half load, and no probing.
    if (span < static_cast<std::uint64_t>(std::max<size_type>(4 * valid, 4096))) {
      dense_table table(lo, span + 1, ctx.resource(), threads);
      return join_with(key, table, nl, nr, kind, ctx, threads);
    }
  }
  open_table table(valid, ctx.resource(), threads);
  return join_with(key, table, nl, nr, kind, ctx, threads);
}

}  // namespace

join_gather_maps hash_join_maps(const table_view& left_keys, const table_view& right_keys,
                                join_kind kind, context& ctx) {
  int threads = thread_count(ctx);
  if (left_keys.num_columns() == 1) {
    const auto& l = left_keys.column(0);
    const auto& r = right_keys.column(0);
    switch (l.type()) {
      case type_id::int32:
        return join_values<std::int32_t>(l, r, kind, ctx, threads);
      case type_id::int64:
      case type_id::timestamp_ns:
        return join_values<std::int64_t>(l, r, kind, ctx, threads);
      case type_id::bool8:
        return join_values<std::uint8_t>(l, r, kind, ctx, threads);
      default:
        break;
    }
  }
  std::vector<column_device_view> lcols;
  std::vector<column_device_view> rcols;
  for (const auto& c : left_keys.columns()) lcols.push_back(column_device_view::of(c));
  for (const auto& c : right_keys.columns()) rcols.push_back(column_device_view::of(c));
  row_key key{table_device_view{lcols.data(), static_cast<int>(lcols.size())},
              table_device_view{rcols.data(), static_cast<int>(rcols.size())}};
  open_table table(right_keys.num_rows(), ctx.resource(), threads);
  return join_with(key, table, left_keys.num_rows(), right_keys.num_rows(), kind, ctx, threads);
}

}  // namespace ember::cpu::detail
