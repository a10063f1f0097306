// Hash aggregation for the CPU backend (plain C++ and OpenMP over host memory).
//
// Phase 1, each thread over its own share of the rows: rows are aggregated into the thread's
// own open-addressing tables, one per partition chosen by the top bits of the row's hash. Rows go
// in chunks: each step (load keys, hash, probe, update each aggregate) runs over a chunk column
// by column in a tight loop, and the probes prefetch a few rows ahead so that cache misses
// overlap. With few groups the tables stay in L1; with many, no row is copied anywhere.
// Phase 2, one thread per partition: the tables of partition p of every thread are merged into
// the largest of them; a partition holds only its share of the groups, so this stays in cache.
// Phase 3: each partition writes its groups at an offset given by a prefix sum.
//
// An entry is a row of uint64 words: [hash][key words][state words], hash 0 marking an empty
// slot. The keys are either packed into words (up to three words of integral keys and null
// flags, the common case) or, for anything else, the row that first showed the key, compared
// column by column with the input.
#include "cpu/groupby_fast.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <ember/host/column_device_view.hpp>
#include <ember/host/error.hpp>
#include <exception>
#include <limits>
#include <memory>

namespace ember::cpu {
namespace {

constexpr int partition_bits = 8;
constexpr int num_partitions = 1 << partition_bits;
/// Below this many rows per thread, threads cost more than they save.
constexpr size_type rows_per_thread_min = 1 << 16;

inline std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

/// The high and low halves of a 128-bit product, xored: one multiplication that spreads every
/// input bit over both ends of the result (the top bits choose a partition, the low bits a slot).
inline std::uint64_t folded_multiply(std::uint64_t a, std::uint64_t b) {
  unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  return static_cast<std::uint64_t>(p) ^ static_cast<std::uint64_t>(p >> 64);
}

inline std::uint64_t hash_bytes(const char* p, size_type n) {
  std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ static_cast<std::uint64_t>(n);
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    h = std::rotl(h ^ (v * 0x87c37b91114253d5ULL), 31) * 0x4cf5ad432745937fULL;
  }
  if (n > 0) {
    std::uint64_t v = 0;
    std::memcpy(&v, p, static_cast<std::size_t>(n));
    h = std::rotl(h ^ (v * 0x87c37b91114253d5ULL), 31) * 0x4cf5ad432745937fULL;
  }
  return mix64(h);
}

inline double as_double(std::uint64_t w) { return std::bit_cast<double>(w); }
inline std::uint64_t as_word(double d) { return std::bit_cast<std::uint64_t>(d); }

/// Floats order as in the portable body: NaN after every number.
inline bool float_less(double a, double b) { return a == a && (b != b || a < b); }

inline std::int64_t int_value(const column_device_view& c, size_type i) {
  switch (c.type) {
    case type_id::int32:
      return c.element<std::int32_t>(i);
    case type_id::bool8:
      return c.element<std::uint8_t>(i) != 0 ? 1 : 0;
    default:
      return c.element<std::int64_t>(i);
  }
}

inline double float_value(const column_device_view& c, size_type i) {
  switch (c.type) {
    case type_id::float32:
      return static_cast<double>(c.element<float>(i));
    case type_id::float64:
      return c.element<double>(i);
    default:
      return static_cast<double>(int_value(c, i));
  }
}

/// A growable array of trivially copyable values in accounted memory.
template <class T>
class scratch_array {
 public:
  explicit scratch_array(memory_resource& mr) : _mr(&mr) {}
  [[nodiscard]] T* data() noexcept { return _buf.data_as<T>(); }
  [[nodiscard]] std::size_t size() const noexcept { return _size; }
  void reserve(std::size_t n) {
    if (n <= _capacity) return;
    std::size_t capacity = std::max({n, _capacity * 2, std::size_t{16}});
    buffer grown(capacity * sizeof(T), *_mr);
    if (_size > 0) std::memcpy(grown.data(), _buf.data(), _size * sizeof(T));
    _buf = std::move(grown);
    _capacity = capacity;
  }
  /// Appends `k` uninitialised values and returns the first.
  T* grow_by(std::size_t k) {
    if (_size + k > _capacity) reserve(_size + k);
    T* p = data() + _size;
    _size += k;
    return p;
  }
  void release() {
    _buf = buffer{};
    _size = _capacity = 0;
  }

 private:
  memory_resource* _mr;
  buffer _buf;
  std::size_t _size = 0;
  std::size_t _capacity = 0;
};

// ---- keys -------------------------------------------------------------------------------------

/// Rows go through every phase in chunks: each step runs over a chunk column by column, in tight
/// loops without a per-row switch, and the table probes of a chunk overlap their cache misses.
constexpr int chunk_rows = 512;
/// How many rows ahead a probe's slot is prefetched.
constexpr int prefetch_distance = 16;
/// A thread's tables smaller than this stay in its core's L2 (1 MiB on the machines we measured),
/// where prefetching costs more than it saves.
constexpr std::size_t prefetch_above_bytes = std::size_t{512} << 10;

/// Integral, timestamp or bool keys packed into W words (int32 widened), plus a word of null
/// flags when any key column is nullable (a null key's own word is then 0).
template <int W>
struct word_keys {
  static constexpr int words = W;
  static constexpr bool emits_rows = false;  // the output keys are unpacked from the words
  const column_device_view* cols;
  int count;
  bool null_word;

  /// The key words of rows [row0, row0 + m), W per row: the column itself for one 64-bit key
  /// without nulls, else a copy in `w`.
  const std::uint64_t* load(size_type row0, int m, std::uint64_t* w) const {
    if (W == 1 && !null_word && size_of(cols[0].type) == 8)
      return static_cast<const std::uint64_t*>(cols[0].data) + row0;
    for (int c = 0; c < count; ++c) {
      const auto& col = cols[c];
      switch (col.type) {
        case type_id::int32: {
          const auto* d = static_cast<const std::int32_t*>(col.data) + row0;
          for (int i = 0; i < m; ++i)
            w[i * W + c] = static_cast<std::uint64_t>(static_cast<std::int64_t>(d[i]));
          break;
        }
        case type_id::bool8: {
          const auto* d = static_cast<const std::uint8_t*>(col.data) + row0;
          for (int i = 0; i < m; ++i) w[i * W + c] = d[i] != 0 ? 1 : 0;
          break;
        }
        default: {
          const auto* d = static_cast<const std::uint64_t*>(col.data) + row0;
          for (int i = 0; i < m; ++i) w[i * W + c] = d[i];
          break;
        }
      }
    }
    if (!null_word) return w;
    for (int i = 0; i < m; ++i) {
      std::uint64_t nulls = 0;
      for (int c = 0; c < count; ++c) {
        if (!cols[c].is_valid(row0 + i)) {
          w[i * W + c] = 0;
          nulls |= std::uint64_t{1} << c;
        }
      }
      w[i * W + count] = nulls;
    }
    return w;
  }
  [[nodiscard]] std::uint64_t hash(const std::uint64_t* w) const {
    std::uint64_t h = 0x2545f4914f6cdd1dULL;
    for (int i = 0; i < W; ++i) h = folded_multiply(h ^ w[i], 0x9e3779b97f4a7c15ULL);
    return h;
  }
  [[nodiscard]] bool equal(const std::uint64_t* a, const std::uint64_t* b) const {
    for (int i = 0; i < W; ++i)
      if (a[i] != b[i]) return false;
    return true;
  }
};

/// Any keys: an entry keeps the row that first showed its key; rows are hashed and compared
/// column by column (floats: -0.0 equals 0.0 and NaN equals NaN, as in the portable body).
struct row_keys {
  static constexpr int words = 1;
  static constexpr bool emits_rows = true;  // the output gathers each group's first row
  const column_device_view* cols;
  int count;

  const std::uint64_t* load(size_type row0, int m, std::uint64_t* w) const {
    for (int i = 0; i < m; ++i) w[i] = static_cast<std::uint64_t>(row0 + i);
    return w;
  }

  static std::uint64_t element_hash(const column_device_view& c, size_type i) {
    if (!c.is_valid(i)) return 0x5bd1e9955bd1e995ULL;
    switch (c.type) {
      case type_id::string: {
        auto s = c.string_at(i);
        return hash_bytes(s.data, s.size);
      }
      case type_id::float32:
      case type_id::float64: {
        double v = float_value(c, i);
        if (v == 0.0) v = 0.0;
        return v != v ? 0x7ff8000000000000ULL : as_word(v);
      }
      default:
        return static_cast<std::uint64_t>(int_value(c, i));
    }
  }
  static bool element_equal(const column_device_view& c, size_type a, size_type b) {
    bool va = c.is_valid(a), vb = c.is_valid(b);
    if (!va || !vb) return va == vb;
    switch (c.type) {
      case type_id::string:
        return c.string_at(a) == c.string_at(b);
      case type_id::float32:
      case type_id::float64: {
        double x = float_value(c, a), y = float_value(c, b);
        return x == y || (x != x && y != y);
      }
      default:
        return int_value(c, a) == int_value(c, b);
    }
  }
  [[nodiscard]] std::uint64_t hash(const std::uint64_t* w) const {
    auto row = static_cast<size_type>(w[0]);
    std::uint64_t h = 0x2545f4914f6cdd1dULL;
    for (int c = 0; c < count; ++c) h = mix64(h ^ element_hash(cols[c], row));
    return h;
  }
  [[nodiscard]] bool equal(const std::uint64_t* a, const std::uint64_t* b) const {
    auto ra = static_cast<size_type>(a[0]), rb = static_cast<size_type>(b[0]);
    if (ra == rb) return true;
    for (int c = 0; c < count; ++c)
      if (!element_equal(cols[c], ra, rb)) return false;
    return true;
  }
};

/// One string key (word counts, codes, names): its length and first 16 bytes inline, and the row
/// that first showed it (for the output, and to compare longer strings). Hashing and comparing
/// a key of up to 16 bytes then never goes back to the column's characters: a probe touches the
/// table's cache line only, where row_keys reads the first row's string from anywhere in the
/// input.
struct string_key {
  static constexpr int words = 4;  // row, length (bit 63: null), bytes 0-7, bytes 8-15
  static constexpr bool emits_rows = true;
  static constexpr std::uint64_t null_flag = std::uint64_t{1} << 63;
  static constexpr std::uint64_t inline_bytes = 16;
  const column_device_view* cols;

  const std::uint64_t* load(size_type row0, int m, std::uint64_t* w) const {
    const auto& c = cols[0];
    for (int i = 0; i < m; ++i) {
      std::uint64_t* k = w + i * words;
      auto row = row0 + i;
      k[0] = static_cast<std::uint64_t>(row);
      k[2] = 0;
      k[3] = 0;
      if (!c.is_valid(row)) {
        k[1] = null_flag;
        continue;
      }
      auto s = c.string_at(row);
      k[1] = static_cast<std::uint64_t>(s.size);
      std::memcpy(k + 2, s.data, std::min<std::uint64_t>(k[1], inline_bytes));
    }
    return w;
  }
  [[nodiscard]] std::uint64_t hash(const std::uint64_t* w) const {
    if (w[1] > inline_bytes && (w[1] & null_flag) == 0) {
      auto s = cols[0].string_at(static_cast<size_type>(w[0]));
      return hash_bytes(s.data, s.size);
    }
    std::uint64_t h = 0x2545f4914f6cdd1dULL;
    for (int i = 1; i < words; ++i) h = folded_multiply(h ^ w[i], 0x9e3779b97f4a7c15ULL);
    return h;
  }
  [[nodiscard]] bool equal(const std::uint64_t* a, const std::uint64_t* b) const {
    if (a[1] != b[1] || a[2] != b[2] || a[3] != b[3]) return false;
    if (a[1] <= inline_bytes || (a[1] & null_flag) != 0 || a[0] == b[0]) return true;
    return cols[0].string_at(static_cast<size_type>(a[0])) ==
           cols[0].string_at(static_cast<size_type>(b[0]));
  }
};

// ---- aggregation states -----------------------------------------------------------------------

/// One word of an entry's state and how a row or another entry updates it. An aggregation uses
/// one of these, plus a count_valid when its column is nullable (null result when 0).
enum class prim : std::uint8_t {
  count_rows,
  count_valid,
  sum_int,
  sum_float,
  min_int,
  max_int,
  min_float,
  max_float,
  min_string,  // the word holds the row of the smallest string so far, -1 for none
  max_string,
};

struct prim_op {
  prim kind;
  int word;
  column_device_view col;
};

std::uint64_t initial_word(prim kind) {
  switch (kind) {
    case prim::min_int:
      return static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    case prim::max_int:
      return static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::min());
    // NaN orders after every number, so it is min's identity; -inf is max's.
    case prim::min_float:
      return as_word(std::numeric_limits<double>::quiet_NaN());
    case prim::max_float:
      return as_word(-std::numeric_limits<double>::infinity());
    case prim::min_string:
    case prim::max_string:
      return static_cast<std::uint64_t>(size_type{-1});
    default:
      return 0;
  }
}

inline bool string_less(const column_device_view& c, size_type a, size_type b) {
  return c.string_at(a).compare(c.string_at(b)) < 0;
}

/// Calls fn(i, value) for the valid rows row0 + i, i < m, of a column of storage type T.
template <class T, class Fn>
inline void each_value(const column_device_view& c, size_type row0, int m, Fn&& fn) {
  const T* d = static_cast<const T*>(c.data) + row0;
  if (!c.nullable()) {
    for (int i = 0; i < m; ++i) fn(i, d[i]);
    return;
  }
  for (int i = 0; i < m; ++i)
    if (c.is_valid(row0 + i)) fn(i, d[i]);
}

/// each_value over an integral, timestamp or bool column, values widened to int64.
template <class Fn>
inline void each_int(const column_device_view& c, size_type row0, int m, Fn&& fn) {
  switch (c.type) {
    case type_id::int32:
      each_value<std::int32_t>(c, row0, m, [&](int i, std::int32_t v) { fn(i, std::int64_t{v}); });
      break;
    case type_id::bool8:
      each_value<std::uint8_t>(c, row0, m,
                               [&](int i, std::uint8_t v) { fn(i, std::int64_t{v != 0}); });
      break;
    default:
      each_value<std::int64_t>(c, row0, m, fn);
      break;
  }
}

/// each_value over a float column, values widened to double.
template <class Fn>
inline void each_float(const column_device_view& c, size_type row0, int m, Fn&& fn) {
  if (c.type == type_id::float32)
    each_value<float>(c, row0, m, [&](int i, float v) { fn(i, static_cast<double>(v)); });
  else
    each_value<double>(c, row0, m, fn);
}

/// Adds rows row0 + i, i < m, to the states at entries[i] + offset.
void update(std::uint64_t* const* entries, int offset, const prim_op* ops, int num_ops,
            size_type row0, int m) {
  for (int k = 0; k < num_ops; ++k) {
    const auto& op = ops[k];
    const int w = offset + op.word;
    switch (op.kind) {
      case prim::count_rows:
        for (int i = 0; i < m; ++i) ++entries[i][w];
        break;
      case prim::count_valid:
        for (int i = 0; i < m; ++i) entries[i][w] += op.col.is_valid(row0 + i) ? 1 : 0;
        break;
      case prim::sum_int:
        each_int(op.col, row0, m,
                 [&](int i, std::int64_t v) { entries[i][w] += static_cast<std::uint64_t>(v); });
        break;
      case prim::sum_float:
        each_float(op.col, row0, m,
                   [&](int i, double v) { entries[i][w] = as_word(as_double(entries[i][w]) + v); });
        break;
      case prim::min_int:
        each_int(op.col, row0, m, [&](int i, std::int64_t v) {
          if (v < static_cast<std::int64_t>(entries[i][w]))
            entries[i][w] = static_cast<std::uint64_t>(v);
        });
        break;
      case prim::max_int:
        each_int(op.col, row0, m, [&](int i, std::int64_t v) {
          if (v > static_cast<std::int64_t>(entries[i][w]))
            entries[i][w] = static_cast<std::uint64_t>(v);
        });
        break;
      case prim::min_float:
        each_float(op.col, row0, m, [&](int i, double v) {
          if (float_less(v, as_double(entries[i][w]))) entries[i][w] = as_word(v);
        });
        break;
      case prim::max_float:
        each_float(op.col, row0, m, [&](int i, double v) {
          if (float_less(as_double(entries[i][w]), v)) entries[i][w] = as_word(v);
        });
        break;
      case prim::min_string:
      case prim::max_string:
        for (int i = 0; i < m; ++i) {
          size_type row = row0 + i;
          if (!op.col.is_valid(row)) continue;
          auto best = static_cast<size_type>(entries[i][w]);
          bool better = best < 0 || (op.kind == prim::min_string ? string_less(op.col, row, best)
                                                                 : string_less(op.col, best, row));
          if (better) entries[i][w] = static_cast<std::uint64_t>(row);
        }
        break;
    }
  }
}

/// Merges the states at src[i] + offset into those at dst[i] + offset, for the i < m whose dst[i]
/// is not null.
void combine(std::uint64_t* const* dst, const std::uint64_t* const* src, int offset,
             const prim_op* ops, int num_ops, int m) {
  for (int k = 0; k < num_ops; ++k) {
    const auto& op = ops[k];
    const int w = offset + op.word;
    auto each = [&](auto&& fn) {
      for (int i = 0; i < m; ++i)
        if (dst[i] != nullptr) fn(dst[i][w], src[i][w]);
    };
    switch (op.kind) {
      case prim::count_rows:
      case prim::count_valid:
      case prim::sum_int:
        each([](std::uint64_t& d, std::uint64_t s) { d += s; });
        break;
      case prim::sum_float:
        each([](std::uint64_t& d, std::uint64_t s) { d = as_word(as_double(d) + as_double(s)); });
        break;
      case prim::min_int:
        each([](std::uint64_t& d, std::uint64_t s) {
          if (static_cast<std::int64_t>(s) < static_cast<std::int64_t>(d)) d = s;
        });
        break;
      case prim::max_int:
        each([](std::uint64_t& d, std::uint64_t s) {
          if (static_cast<std::int64_t>(s) > static_cast<std::int64_t>(d)) d = s;
        });
        break;
      case prim::min_float:
        each([](std::uint64_t& d, std::uint64_t s) {
          if (float_less(as_double(s), as_double(d))) d = s;
        });
        break;
      case prim::max_float:
        each([](std::uint64_t& d, std::uint64_t s) {
          if (float_less(as_double(d), as_double(s))) d = s;
        });
        break;
      case prim::min_string:
      case prim::max_string:
        each([&](std::uint64_t& d, std::uint64_t s) {
          auto a = static_cast<size_type>(d), b = static_cast<size_type>(s);
          if (b < 0) return;
          bool better = a < 0 || (op.kind == prim::min_string ? string_less(op.col, b, a)
                                                              : string_less(op.col, a, b));
          if (better) d = s;
        });
        break;
    }
  }
}

/// What one aggregation reads from an entry's states when the result is written.
struct agg_plan {
  aggregation_kind kind;
  type_id in_type;
  int value_word;
  int count_word;  // non-null values seen; -1 when every group has one
  bool nullable;   // the result column needs a null mask
};

struct layout {
  int state_words;
  int entry_words;
  std::vector<prim_op> ops;
  std::vector<std::uint64_t> initial;  // state_words initial values
};

// ---- open-addressing tables -------------------------------------------------------------------

/// Linear probing over entries of `entry_words` words; at most half full.
class entry_table {
 public:
  static constexpr std::size_t initial_slots = 16;

  entry_table(memory_resource& mr, int entry_words)
      : _entry_words(static_cast<std::size_t>(entry_words)), _slots(mr) {}

  void reset(std::size_t capacity) {
    _slots.release();
    _slots.reserve(capacity * _entry_words);
    _slots.grow_by(capacity * _entry_words);
    clear_with(capacity);
  }
  void release() {
    _slots.release();
    _data = nullptr;
    _capacity = _mask = _groups = 0;
  }

  [[nodiscard]] std::size_t capacity() const noexcept { return _capacity; }
  [[nodiscard]] std::size_t groups() const noexcept { return _groups; }
  /// More than half full: time to grow.
  [[nodiscard]] bool over_full() const noexcept { return _groups * 2 > _capacity; }
  [[nodiscard]] std::uint64_t* slot(std::size_t i) noexcept { return _data + i * _entry_words; }
  void prefetch(std::uint64_t h) const noexcept {
    __builtin_prefetch(_data + (h & _mask) * _entry_words);
  }

  /// The entry of key `key` with hash `h`, or the empty slot where it belongs (then `fresh`,
  /// and the caller fills it in before the next find). The table must have been reset.
  template <class Keys>
  std::uint64_t* find(const Keys& keys, std::uint64_t h, const std::uint64_t* key, bool& fresh) {
    std::size_t i = h & _mask;
    for (;;) {
      std::uint64_t* e = _data + i * _entry_words;
      if (e[0] == h && keys.equal(e + 1, key)) {
        fresh = false;
        return e;
      }
      if (e[0] == 0) {
        fresh = true;
        ++_groups;
        return e;
      }
      i = (i + 1) & _mask;
    }
  }

  /// Doubles the capacity, moving every entry.
  void grow(memory_resource& mr) {
    entry_table bigger(mr, static_cast<int>(_entry_words));
    bigger.reset(_capacity * 2);
    for (std::size_t i = 0; i < _capacity; ++i) {
      const std::uint64_t* e = slot(i);
      if (e[0] == 0) continue;
      std::size_t j = e[0] & bigger._mask;
      while (bigger.slot(j)[0] != 0) j = (j + 1) & bigger._mask;
      std::memcpy(bigger.slot(j), e, sizeof(std::uint64_t) * _entry_words);
    }
    bigger._groups = _groups;
    *this = std::move(bigger);
  }

 private:
  void clear_with(std::size_t capacity) {
    _capacity = capacity;
    _mask = capacity - 1;
    _groups = 0;
    _data = _slots.data();
    std::memset(_data, 0, capacity * _entry_words * sizeof(std::uint64_t));
  }

  // The fields a probe reads come first.
  std::uint64_t* _data = nullptr;
  std::size_t _mask = 0;
  std::size_t _entry_words;
  std::size_t _groups = 0;
  std::size_t _capacity = 0;
  scratch_array<std::uint64_t> _slots;
};

/// One thread's groups, in num_partitions tables chosen by the top bits of the hash (a table's
/// slots come from the low bits).
struct partitioned_table {
  std::vector<entry_table> parts;
  std::size_t slots = 0;  // of all parts
  partitioned_table(memory_resource& mr, int entry_words) {
    parts.reserve(num_partitions);
    for (int p = 0; p < num_partitions; ++p) {
      parts.emplace_back(mr, entry_words);
      parts.back().reset(entry_table::initial_slots);
      slots += entry_table::initial_slots;
    }
  }
  static int of(std::uint64_t h) { return static_cast<int>(h >> (64 - partition_bits)); }
};

/// Phase 1 on rows [begin, end) into one thread's tables.
template <class Keys>
void aggregate_rows(const Keys& keys, const layout& lay, size_type begin, size_type end,
                    partitioned_table& tables, memory_resource& mr) {
  constexpr int kw = Keys::words;
  const int num_ops = static_cast<int>(lay.ops.size());
  const std::size_t state_bytes = sizeof(std::uint64_t) * lay.state_words;
  auto& parts = tables.parts;
  std::array<std::uint64_t, chunk_rows*(kw == 0 ? 1 : kw)> key_words{};
  std::array<std::uint64_t, chunk_rows> hashes{};
  std::array<std::uint64_t*, chunk_rows> entries{};
  for (size_type row0 = begin; row0 < end; row0 += chunk_rows) {
    int m = static_cast<int>(std::min<size_type>(chunk_rows, end - row0));
    const std::uint64_t* key = keys.load(row0, m, key_words.data());
    for (int i = 0; i < m; ++i) {
      std::uint64_t h = keys.hash(key + i * kw);
      hashes[i] = h + (h == 0 ? 1 : 0);
    }
    // Each probe's slot is prefetched a few rows ahead, so that cache misses overlap; tables
    // that fit in L2 are not worth it.
    auto probe = [&](auto prefetch_tag) {
      constexpr bool prefetch = decltype(prefetch_tag)::value;
      if constexpr (prefetch) {
        for (int i = 0; i < std::min(m, prefetch_distance); ++i)
          parts[partitioned_table::of(hashes[i])].prefetch(hashes[i]);
      }
      int pending = 0;  // rows [pending, i) are found but not yet added
      for (int i = 0; i < m; ++i) {
        if constexpr (prefetch) {
          if (i + prefetch_distance < m) {
            auto ahead = hashes[i + prefetch_distance];
            parts[partitioned_table::of(ahead)].prefetch(ahead);
          }
        }
        auto& t = parts[partitioned_table::of(hashes[i])];
        bool fresh;
        std::uint64_t* e = t.find(keys, hashes[i], key + i * kw, fresh);
        if (fresh) {
          e[0] = hashes[i];
          for (int j = 0; j < kw; ++j) e[1 + j] = key[i * kw + j];
          std::memcpy(e + 1 + kw, lay.initial.data(), state_bytes);
          if (t.over_full()) {
            // Growing moves entries: add the rows found so far first.
            update(entries.data() + pending, 1 + kw, lay.ops.data(), num_ops, row0 + pending,
                   i - pending);
            pending = i;
            tables.slots -= t.capacity();
            t.grow(mr);
            tables.slots += t.capacity();
            e = t.find(keys, hashes[i], key + i * kw, fresh);
          }
        }
        entries[i] = e;
      }
      update(entries.data() + pending, 1 + kw, lay.ops.data(), num_ops, row0 + pending,
             m - pending);
    };
    if (tables.slots * lay.entry_words * sizeof(std::uint64_t) > prefetch_above_bytes)
      probe(std::true_type{});
    else
      probe(std::false_type{});
  }
}

/// Phase 2 for one partition: merges every thread's table of that partition into the largest.
template <class Keys>
entry_table merge_partition(const Keys& keys, const layout& lay,
                            const std::vector<entry_table*>& pieces, memory_resource& mr) {
  constexpr int kw = Keys::words;
  const int e_words = lay.entry_words;
  const int num_ops = static_cast<int>(lay.ops.size());
  std::size_t largest = 0;
  for (std::size_t t = 1; t < pieces.size(); ++t)
    if (pieces[t]->groups() > pieces[largest]->groups()) largest = t;
  entry_table merged = std::move(*pieces[largest]);
  std::array<std::uint64_t*, chunk_rows> dst{};
  std::array<const std::uint64_t*, chunk_rows> src{};
  for (std::size_t t = 0; t < pieces.size(); ++t) {
    if (t == largest || pieces[t]->groups() == 0) continue;
    auto& piece = *pieces[t];
    std::size_t slot = 0;
    while (slot < piece.capacity()) {
      int m = 0;
      for (; slot < piece.capacity() && m < chunk_rows; ++slot)
        if (piece.slot(slot)[0] != 0) src[m++] = piece.slot(slot);
      for (int i = 0; i < std::min(m, prefetch_distance); ++i) merged.prefetch(src[i][0]);
      int pending = 0;
      for (int i = 0; i < m; ++i) {
        if (i + prefetch_distance < m) merged.prefetch(src[i + prefetch_distance][0]);
        bool fresh;
        std::uint64_t* d = merged.find(keys, src[i][0], src[i] + 1, fresh);
        if (fresh) {
          std::memcpy(d, src[i], sizeof(std::uint64_t) * e_words);
          d = nullptr;
          if (merged.over_full()) {
            // Growing moves entries: combine the entries found so far first.
            combine(dst.data() + pending, src.data() + pending, 1 + kw, lay.ops.data(), num_ops,
                    i - pending);
            pending = i;
            merged.grow(mr);
          }
        }
        dst[i] = d;
      }
      combine(dst.data() + pending, src.data() + pending, 1 + kw, lay.ops.data(), num_ops,
              m - pending);
    }
    piece.release();
  }
  return merged;
}

/// Phases 1 and 2; leaves one merged table per partition.
template <class Keys>
std::vector<entry_table> aggregate(const Keys& keys, const layout& lay, size_type n, int threads,
                                   memory_resource& mr) {
  std::vector<partitioned_table> per_thread;
  for (int t = 0; t < threads; ++t) per_thread.emplace_back(mr, lay.entry_words);

  // OpenMP does not carry exceptions out of a parallel region: keep the first and rethrow.
  std::exception_ptr failure;
  auto keep_first = [&] {
#pragma omp critical(ember_groupby_failure)
    if (!failure) failure = std::current_exception();
  };
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num();
    size_type per = (n + threads - 1) / threads;
    size_type begin = std::min(n, per * t), end = std::min(n, begin + per);
    try {
      aggregate_rows(keys, lay, begin, end, per_thread[t], mr);
    } catch (...) {
      keep_first();
    }
  }
  if (failure) std::rethrow_exception(failure);

  std::vector<entry_table> merged;
  merged.reserve(num_partitions);
  for (int p = 0; p < num_partitions; ++p) merged.emplace_back(mr, lay.entry_words);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int p = 0; p < num_partitions; ++p) {
    try {
      std::vector<entry_table*> pieces;
      for (auto& pt : per_thread) pieces.push_back(&pt.parts[p]);
      merged[p] = merge_partition(keys, lay, pieces, mr);
    } catch (...) {
      keep_first();
    }
  }
  if (failure) std::rethrow_exception(failure);
  return merged;
}

// ---- results ----------------------------------------------------------------------------------

/// A bitmask from one byte per row.
buffer pack_valid(const std::uint8_t* valid, size_type n, memory_resource& mr, int threads) {
  size_type words = bitmask_words(n);
  buffer mask(static_cast<std::size_t>(words) * sizeof(bitmask_type), mr);
  auto* m = mask.data_as<bitmask_type>();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_type w = 0; w < words; ++w) {
    bitmask_type word = 0;
    size_type end = std::min(n, (w + 1) * 32);
    for (size_type i = w * 32; i < end; ++i)
      word |= static_cast<bitmask_type>(valid[i] != 0) << (i - w * 32);
    m[w] = word;
  }
  return mask;
}

/// Rows `map` of `src` (a negative entry gives a null row).
column gather(const column_device_view& src, const size_type* map, size_type n, bool nullable,
              memory_resource& mr, int threads) {
  buffer mask;
  if (nullable) {
    buffer valid(static_cast<std::size_t>(n), mr);
    auto* v = valid.data_as<std::uint8_t>();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_type i = 0; i < n; ++i) v[i] = map[i] >= 0 && src.is_valid(map[i]) ? 1 : 0;
    mask = pack_valid(v, n, mr, threads);
  }
  if (src.type == type_id::string) {
    buffer offsets(static_cast<std::size_t>(n + 1) * sizeof(size_type), mr);
    auto* o = offsets.data_as<size_type>();
    size_type total = 0;
    for (size_type i = 0; i < n; ++i) {
      o[i] = total;
      if (map[i] >= 0) total += src.offsets[map[i] + 1] - src.offsets[map[i]];
    }
    o[n] = total;
    buffer chars(static_cast<std::size_t>(total), mr);
    auto* c = chars.data_as<char>();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_type i = 0; i < n; ++i) {
      if (map[i] < 0) continue;
      auto s = src.string_at(map[i]);
      std::memcpy(c + o[i], s.data, static_cast<std::size_t>(s.size));
    }
    return column(n, std::move(offsets), std::move(chars), std::move(mask));
  }
  auto width = static_cast<std::size_t>(size_of(src.type));
  buffer data(static_cast<std::size_t>(n) * width, mr);
  auto* d = data.data_as<unsigned char>();
  const auto* s = static_cast<const unsigned char*>(src.data);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_type i = 0; i < n; ++i) {
    if (map[i] >= 0)
      std::memcpy(d + i * width, s + map[i] * width, width);
    else
      std::memset(d + i * width, 0, width);
  }
  return column(src.type, n, std::move(data), std::move(mask));
}

/// A fixed-width result column being written row by row, with one validity byte per row when it
/// can hold nulls.
struct fixed_sink {
  type_id type;
  buffer data;
  buffer valid;

  fixed_sink(type_id t, size_type n, bool nullable, memory_resource& mr)
      : type(t), data(static_cast<std::size_t>(n) * size_of(t), mr) {
    if (nullable) valid = buffer(static_cast<std::size_t>(n), mr);
  }
  void put_int(size_type i, std::int64_t v) {
    switch (type) {
      case type_id::int32:
        data.data_as<std::int32_t>()[i] = static_cast<std::int32_t>(v);
        break;
      case type_id::bool8:
        data.data_as<std::uint8_t>()[i] = v != 0 ? 1 : 0;
        break;
      default:
        data.data_as<std::int64_t>()[i] = v;
        break;
    }
  }
  void put_float(size_type i, double v) {
    if (type == type_id::float32)
      data.data_as<float>()[i] = static_cast<float>(v);
    else
      data.data_as<double>()[i] = v;
  }
  void put_valid(size_type i, bool ok) {
    if (!valid.empty()) valid.data_as<std::uint8_t>()[i] = ok ? 1 : 0;
  }
  column finish(size_type n, memory_resource& mr, int threads) {
    buffer mask;
    if (!valid.empty()) mask = pack_valid(valid.data_as<std::uint8_t>(), n, mr, threads);
    return column(type, n, std::move(data), std::move(mask));
  }
};

/// What the fast path was asked for, resolved against the input.
struct request {
  std::vector<column_device_view> keys;
  std::vector<type_id> key_types;
  std::vector<bool> key_nullable;
  std::vector<agg_plan> aggs;
  std::vector<column_device_view> agg_cols;
  layout lay;
};

/// Phase 3: the merged tables as the result table.
template <class Keys>
table emit(const Keys& keys, const request& req, std::vector<entry_table>& merged,
           const std::vector<std::string>& names, memory_resource& mr, int threads) {
  constexpr int kw = Keys::words;
  constexpr bool packed = !Keys::emits_rows;
  std::vector<size_type> offsets(num_partitions + 1, 0);
  for (int p = 0; p < num_partitions; ++p)
    offsets[p + 1] = offsets[p] + static_cast<size_type>(merged[p].groups());
  size_type groups = offsets[num_partitions];

  std::vector<fixed_sink> key_sinks;
  scratch_array<size_type> rep_rows(mr);
  if (packed) {
    for (std::size_t c = 0; c < req.keys.size(); ++c)
      key_sinks.emplace_back(req.key_types[c], groups, req.key_nullable[c], mr);
  } else {
    rep_rows.grow_by(static_cast<std::size_t>(groups));
  }
  std::vector<std::unique_ptr<fixed_sink>> agg_sinks;
  std::vector<std::unique_ptr<scratch_array<size_type>>> agg_rows;
  for (const auto& a : req.aggs) {
    bool string_extreme = a.in_type == type_id::string &&
                          (a.kind == aggregation_kind::min || a.kind == aggregation_kind::max);
    if (string_extreme) {
      agg_sinks.emplace_back();
      agg_rows.push_back(std::make_unique<scratch_array<size_type>>(mr));
      agg_rows.back()->grow_by(static_cast<std::size_t>(groups));
      continue;
    }
    type_id out = type_id::int64;
    if (a.kind == aggregation_kind::mean ||
        (a.kind == aggregation_kind::sum && is_floating(a.in_type)))
      out = type_id::float64;
    if (a.kind == aggregation_kind::min || a.kind == aggregation_kind::max) out = a.in_type;
    agg_sinks.push_back(std::make_unique<fixed_sink>(out, groups, a.nullable, mr));
    agg_rows.emplace_back();
  }

  const int nkeys = static_cast<int>(req.keys.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int p = 0; p < num_partitions; ++p) {
    auto& m = merged[p];
    size_type i = offsets[p];
    for (std::size_t slot = 0; slot < m.capacity(); ++slot) {
      const std::uint64_t* e = m.slot(slot);
      if (e[0] == 0) continue;
      const std::uint64_t* k = e + 1;
      const std::uint64_t* s = e + 1 + kw;
      if constexpr (packed) {
        std::uint64_t nulls = keys.null_word ? k[nkeys] : 0;
        for (int c = 0; c < nkeys; ++c) {
          key_sinks[c].put_int(i, static_cast<std::int64_t>(k[c]));
          key_sinks[c].put_valid(i, ((nulls >> c) & 1) == 0);
        }
      } else {
        rep_rows.data()[i] = static_cast<size_type>(k[0]);
      }
      for (std::size_t a = 0; a < req.aggs.size(); ++a) {
        const auto& plan = req.aggs[a];
        std::uint64_t w = s[plan.value_word];
        if (agg_rows[a]) {
          agg_rows[a]->data()[i] = static_cast<size_type>(w);
          continue;
        }
        auto& sink = *agg_sinks[a];
        bool has_value = plan.count_word < 0 || s[plan.count_word] > 0;
        sink.put_valid(i, has_value);
        switch (plan.kind) {
          case aggregation_kind::count:
          case aggregation_kind::count_all:
            sink.put_int(i, static_cast<std::int64_t>(w));
            break;
          case aggregation_kind::mean: {
            double sum = is_floating(plan.in_type)
                             ? as_double(w)
                             : static_cast<double>(static_cast<std::int64_t>(w));
            auto count = static_cast<double>(s[plan.count_word]);
            sink.put_float(i, has_value ? sum / count : 0.0);
            break;
          }
          default:  // sum, min, max
            if (is_floating(plan.in_type))
              sink.put_float(i, has_value ? as_double(w) : 0.0);
            else
              sink.put_int(i, has_value ? static_cast<std::int64_t>(w) : 0);
            break;
        }
      }
      ++i;
    }
  }
  merged.clear();

  std::vector<column> cols;
  for (int c = 0; c < nkeys; ++c) {
    if (packed)
      cols.push_back(key_sinks[c].finish(groups, mr, threads));
    else
      cols.push_back(
          gather(req.keys[c], rep_rows.data(), groups, req.key_nullable[c], mr, threads));
  }
  for (std::size_t a = 0; a < req.aggs.size(); ++a) {
    if (agg_rows[a])
      cols.push_back(
          gather(req.agg_cols[a], agg_rows[a]->data(), groups, req.aggs[a].nullable, mr, threads));
    else
      cols.push_back(agg_sinks[a]->finish(groups, mr, threads));
  }
  return table(std::move(cols), names);
}

template <class Keys>
table run(const Keys& keys, const request& req, size_type n, const std::vector<std::string>& names,
          memory_resource& mr, int threads) {
  auto merged = aggregate(keys, req.lay, n, threads, mr);
  if (req.keys.empty()) {
    // No keys: one row even for an empty input, from the states' initial values.
    std::size_t groups = 0;
    for (auto& m : merged) groups += m.groups();
    if (groups == 0) {
      auto& m = merged[0];
      m.reset(16);
      bool fresh;
      std::array<std::uint64_t, 4> no_key{};
      std::uint64_t* e = m.find(keys, 1, no_key.data(), fresh);
      e[0] = 1;
      std::memcpy(e + 1 + Keys::words, req.lay.initial.data(),
                  sizeof(std::uint64_t) * req.lay.state_words);
    }
  }
  return emit(keys, req, merged, names, mr, threads);
}

}  // namespace

std::optional<table> hash_group_by(const table_view& input, const std::vector<std::string>& keys,
                                   const std::vector<aggregation>& aggregations, context& ctx) {
  for (const auto& a : aggregations)
    if (a.kind == aggregation_kind::count_distinct) return std::nullopt;

  request req;
  bool all_words = true, any_nullable = false;
  for (const auto& k : keys) {
    const auto& c = input.column(k);
    req.keys.push_back(column_device_view::of(c));
    req.key_types.push_back(c.type());
    req.key_nullable.push_back(c.nullable());
    all_words &= is_integral(c.type()) || c.type() == type_id::bool8;
    any_nullable |= c.nullable();
  }
  int packed_words = static_cast<int>(keys.size()) + (any_nullable ? 1 : 0);
  bool packed = all_words && packed_words <= 3;
  bool one_string = keys.size() == 1 && req.key_types[0] == type_id::string;
  int key_words = packed ? packed_words : one_string ? string_key::words : row_keys::words;

  // With no keys an empty input still has its one group, whose values are then null.
  bool always_count = keys.empty();
  auto& lay = req.lay;
  int word = 0;
  for (const auto& a : aggregations) {
    agg_plan plan{a.kind, type_id::int64, -1, -1, false};
    column_device_view col{};
    if (a.kind != aggregation_kind::count_all) {
      col = column_device_view::of(input.column(a.column));
      plan.in_type = col.type;
    }
    bool nullable = col.nullable() || always_count;
    auto add = [&](prim kind) {
      lay.ops.push_back(prim_op{kind, word, col});
      lay.initial.push_back(initial_word(kind));
      return word++;
    };
    bool floating = is_floating(plan.in_type);
    switch (a.kind) {
      case aggregation_kind::count_all:
        plan.value_word = add(prim::count_rows);
        break;
      case aggregation_kind::count:
        plan.value_word = add(col.nullable() ? prim::count_valid : prim::count_rows);
        break;
      case aggregation_kind::sum:
        plan.value_word = add(floating ? prim::sum_float : prim::sum_int);
        if (nullable) plan.count_word = add(prim::count_valid);
        break;
      case aggregation_kind::mean:
        plan.value_word = add(floating ? prim::sum_float : prim::sum_int);
        plan.count_word = add(prim::count_valid);
        break;
      case aggregation_kind::min:
      case aggregation_kind::max: {
        bool is_min = a.kind == aggregation_kind::min;
        if (plan.in_type == type_id::string) {
          plan.value_word = add(is_min ? prim::min_string : prim::max_string);
          // The row stays -1 exactly when no value was seen, so no count is needed.
          plan.nullable = nullable;
        } else if (floating) {
          plan.value_word = add(is_min ? prim::min_float : prim::max_float);
          if (nullable) plan.count_word = add(prim::count_valid);
        } else {
          plan.value_word = add(is_min ? prim::min_int : prim::max_int);
          if (nullable) plan.count_word = add(prim::count_valid);
        }
        break;
      }
      case aggregation_kind::count_distinct:
        return std::nullopt;
    }
    if (plan.count_word >= 0) plan.nullable = true;
    req.aggs.push_back(plan);
    req.agg_cols.push_back(col);
  }
  lay.state_words = word;
  lay.entry_words = 1 + key_words + word;

  std::vector<std::string> names = keys;
  for (const auto& a : aggregations) names.push_back(a.output_name);

  auto n = input.num_rows();
  int threads = ctx.options().cpu_threads > 0 ? ctx.options().cpu_threads : omp_get_max_threads();
  threads = static_cast<int>(std::clamp<size_type>(n / rows_per_thread_min, 1, threads));
  auto& mr = ctx.resource();
  const auto* cols = req.keys.data();
  int count = static_cast<int>(req.keys.size());
  if (one_string) return run(string_key{cols}, req, n, names, mr, threads);
  if (!packed) return run(row_keys{cols, count}, req, n, names, mr, threads);
  switch (key_words) {
    case 0:
      return run(word_keys<0>{cols, count, false}, req, n, names, mr, threads);
    case 1:
      return run(word_keys<1>{cols, count, any_nullable}, req, n, names, mr, threads);
    case 2:
      return run(word_keys<2>{cols, count, any_nullable}, req, n, names, mr, threads);
    default:
      return run(word_keys<3>{cols, count, any_nullable}, req, n, names, mr, threads);
  }
}

}  // namespace ember::cpu
