// The CPU backend's sort. Fixed-width keys: a stable radix sort of (key, row) pairs, where each
// key is mapped to an unsigned integer with the same order (compare_elements' order: NaN above
// every number, -0.0 equal to 0.0), inverted when descending. Several keys are sorted one at a
// time from the last to the first, each pass stable (LSD over keys); null rows are split off
// stably before each pass.
//
// The radix sort is MSD first: one parallel pass scatters the pairs into 2^11 buckets by the
// highest 11 bits that vary, and then each thread finishes whole buckets inside its cache, by
// further MSD levels down to insertion sorts of a few pairs, or by one or two LSD passes when
// the bits that still vary in a bucket span two 8-bit digits or fewer. Out-of-cache traffic is
// thus about one scatter, against one per digit for a plain LSD sort. A bucket too big for one
// thread's share (a skewed key) is split by all threads the same way.
#include "cpu/sort_fast.hpp"

#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include <ember/host/buffer.hpp>
#include <ember/host/column_device_view.hpp>

#include "cpu/exec.hpp"
#include "portable/row_operators.inl"

namespace ember::cpu::fast {
namespace {

constexpr int msd_bits = 11;
constexpr int lsd_bits = 8;
/// Buckets at most this big (pairs, in bytes) may be finished by LSD passes (they fit in L2).
constexpr std::size_t lsd_limit_bytes = std::size_t{384} << 10;
/// Below this many pairs a radix pass is not worth a parallel region.
constexpr std::size_t parallel_min = std::size_t{1} << 15;
constexpr std::size_t insertion_max = 32;

int thread_count(const context& ctx) {
  int t = ctx.options().cpu_threads > 0 ? ctx.options().cpu_threads : omp_get_max_threads();
  return t > 0 ? t : 1;
}

// ---- Order-preserving unsigned keys --------------------------------------------------------

inline std::uint32_t ordered(std::int32_t v) { return static_cast<std::uint32_t>(v) ^ 0x80000000u; }
inline std::uint64_t ordered(std::int64_t v) {
  return static_cast<std::uint64_t>(v) ^ 0x8000000000000000ULL;
}
inline std::uint8_t ordered(std::uint8_t v) { return v != 0 ? 1 : 0; }
inline std::uint32_t ordered(float v) {
  auto bits = std::isnan(v) ? 0x7fc00000u : std::bit_cast<std::uint32_t>(v == 0.0f ? 0.0f : v);
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}
inline std::uint64_t ordered(double v) {
  auto bits =
      std::isnan(v) ? 0x7ff8000000000000ULL : std::bit_cast<std::uint64_t>(v == 0.0 ? 0.0 : v);
  return (bits & 0x8000000000000000ULL) != 0 ? ~bits : bits | 0x8000000000000000ULL;
}

/// Reads row r of a fixed-width column as its ordered key (bits flipped when descending).
template <class T>
struct key_reader {
  using key_type = decltype(ordered(T{}));
  const T* data;
  key_type flip;
  key_type operator()(size_type r) const { return static_cast<key_type>(ordered(data[r]) ^ flip); }
};

// Packed to 4 bytes: a 64-bit key with a 32-bit row takes 12 bytes instead of 16, which is a
// quarter less memory traffic in every radix pass (x86 loads unaligned keys at full speed).
#pragma pack(push, 4)
template <class K, class I>
struct pair_t {
  K key;
  I row;
};
#pragma pack(pop)

/// Pair i of the rows to sort comes from a column, a permuted column or a pair array.
template <class Reader, class I>
struct column_source {
  using pair = pair_t<typename Reader::key_type, I>;
  Reader key;
  pair operator()(std::size_t i) const {
    return {key(static_cast<size_type>(i)), static_cast<I>(i)};
  }
};

template <class Reader, class I>
struct permuted_source {
  using pair = pair_t<typename Reader::key_type, I>;
  Reader key;
  const size_type* perm;
  pair operator()(std::size_t i) const {
    size_type r = perm[i];
    return {key(r), static_cast<I>(r)};
  }
};

template <class K, class I>
struct array_source {
  using pair = pair_t<K, I>;
  const pair* data;
  pair operator()(std::size_t i) const { return data[i]; }
};

template <class K>
int bit_width_of(K v) {
  return std::bit_width(static_cast<std::uint64_t>(v));
}

template <class K>
K low_bits_mask(int bits) {
  return bits <= 0 ? K{0} : static_cast<K>(~std::uint64_t{0} >> (64 - bits));
}

template <class P>
void write_rows(const P* data, std::size_t n, size_type* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<size_type>(data[i].row);
}

/// Sort scratch from the context's resource. Large buffers ask for transparent huge pages: the
/// first touch of fresh 4 KiB pages costs more than a radix pass over them.
buffer scratch_buffer(std::size_t bytes, memory_resource& mr) {
  buffer b(bytes, mr);
#ifdef MADV_HUGEPAGE
  constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
  if (bytes >= 8 * huge && b.kind() == memory_kind::host) {
    auto first = (reinterpret_cast<std::uintptr_t>(b.data()) + huge - 1) & ~(huge - 1);
    auto last = (reinterpret_cast<std::uintptr_t>(b.data()) + bytes) & ~(huge - 1);
    if (last > first) (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
#endif
  return b;
}

// ---- Serial radix sort of one bucket ---------------------------------------------------------

template <class P>
void insertion_sort(P* a, std::size_t n) {
  for (std::size_t i = 1; i < n; ++i) {
    P x = a[i];
    std::size_t j = i;
    for (; j > 0 && a[j - 1].key > x.key; --j) a[j] = a[j - 1];
    a[j] = x;
  }
}

/// LSD passes over the digits that cover `varying`; the result's rows go to `out`.
template <class P>
void lsd_sort(P* data, P* scratch, std::size_t n, decltype(P::key) varying, size_type* out) {
  constexpr int radix = 1 << lsd_bits;
  int lo = std::countr_zero(static_cast<std::uint64_t>(varying));
  int passes = (bit_width_of(varying) - lo + lsd_bits - 1) / lsd_bits;
  std::uint32_t counts[64 / lsd_bits + 1][radix] = {};
  for (std::size_t i = 0; i < n; ++i) {
    auto k = data[i].key;
    for (int p = 0; p < passes; ++p) ++counts[p][(k >> (lo + p * lsd_bits)) & (radix - 1)];
  }
  P* src = data;
  P* dst = scratch;
  for (int p = 0; p < passes; ++p) {
    int shift = lo + p * lsd_bits;
    auto* c = counts[p];
    if (c[(src[0].key >> shift) & (radix - 1)] == n) continue;  // one digit value: nothing moves
    std::uint32_t sum = 0;
    for (int d = 0; d < radix; ++d) {
      std::uint32_t v = c[d];
      c[d] = sum;
      sum += v;
    }
    for (std::size_t i = 0; i < n; ++i) dst[c[(src[i].key >> shift) & (radix - 1)]++] = src[i];
    std::swap(src, dst);
  }
  write_rows(src, n, out);
}

/// Sorts data[0, n) by the key bits in `mask` (stable; data and scratch are clobbered) and writes
/// the rows in order to `out`.
template <class P>
void sort_serial(P* data, P* scratch, std::size_t n, decltype(P::key) mask, size_type* out) {
  using K = decltype(P::key);
  if (n <= insertion_max) {
    insertion_sort(data, n);
    write_rows(data, n, out);
    return;
  }
  K first = data[0].key;
  K varying = 0;
  for (std::size_t i = 0; i < n; ++i) varying |= data[i].key ^ first;
  varying &= mask;
  if (varying == 0) {
    write_rows(data, n, out);
    return;
  }
  int hi = bit_width_of(varying);
  int span = hi - std::countr_zero(static_cast<std::uint64_t>(varying));
  // In cache, LSD pays one scatter per digit and MSD one per level: LSD for two digits or
  // fewer, else an MSD level whose buckets hold a handful of pairs each.
  if (span <= 2 * lsd_bits && n * sizeof(P) <= lsd_limit_bytes) {
    lsd_sort(data, scratch, n, varying, out);
    return;
  }
  int digit = std::min(msd_bits, std::max(1, bit_width_of(n) - 2));
  int shift = hi > digit ? hi - digit : 0;
  std::size_t buckets = std::size_t{1} << (hi - shift);
  std::size_t start[(std::size_t{1} << msd_bits) + 1];
  std::fill_n(start, buckets + 1, 0);
  for (std::size_t i = 0; i < n; ++i) ++start[((data[i].key >> shift) & (buckets - 1)) + 1];
  for (std::size_t d = 1; d <= buckets; ++d) start[d] += start[d - 1];
  for (std::size_t i = 0; i < n; ++i)
    scratch[start[(data[i].key >> shift) & (buckets - 1)]++] = data[i];
  // start[d] is now the end of bucket d.
  K low = mask & low_bits_mask<K>(shift);
  std::size_t s = 0;
  for (std::size_t d = 0; d < buckets; ++d) {
    std::size_t size = start[d] - s;
    if (size > 0) sort_serial(scratch + s, data + s, size, low, out + s);
    s = start[d];
  }
}

// ---- Parallel radix sort ---------------------------------------------------------------------

/// Sorts the n pairs of `src` stably by the key bits in `mask` and writes their rows in order to
/// `out`. `a` holds n pairs; `b` is null or holds n more, and `src` may read from `b` (never from
/// `a`). Without `b`, scratch comes per bucket from `mr`.
template <class Source>
void sort_parallel(Source src, std::size_t n, typename Source::pair* a, typename Source::pair* b,
                   decltype(Source::pair::key) mask, size_type* out, memory_resource& mr,
                   int threads) {
  using P = typename Source::pair;
  using K = decltype(P::key);
  if (n == 0) return;
  if (threads == 1 || n < parallel_min) {
    for (std::size_t i = 0; i < n; ++i) a[i] = src(i);
    buffer own;
    if (b == nullptr) {
      own = scratch_buffer(n * sizeof(P), mr);
      b = own.data_as<P>();
    }
    sort_serial(a, b, n, mask, out);
    return;
  }
  const int T = threads;
  auto chunk_begin = [&](int t) { return n * static_cast<std::size_t>(t) / T; };
  K first = src(0).key;
  K varying = 0;
#pragma omp parallel for num_threads(T) reduction(| : varying) schedule(static)
  for (std::size_t i = 0; i < n; ++i) varying |= src(i).key ^ first;
  varying &= mask;
  if (varying == 0) {
#pragma omp parallel for num_threads(T) schedule(static)
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<size_type>(src(i).row);
    return;
  }
  int hi = bit_width_of(varying);
  int shift = hi > msd_bits ? hi - msd_bits : 0;
  std::size_t buckets = std::size_t{1} << (hi - shift);
  // counts[t * buckets + d]: rows of chunk t in bucket d, then where chunk t writes bucket d.
  std::vector<std::size_t> counts(static_cast<std::size_t>(T) * buckets, 0);
#pragma omp parallel for num_threads(T) schedule(static, 1)
  for (int t = 0; t < T; ++t) {
    std::size_t* c = counts.data() + static_cast<std::size_t>(t) * buckets;
    for (std::size_t i = chunk_begin(t), e = chunk_begin(t + 1); i < e; ++i)
      ++c[(src(i).key >> shift) & (buckets - 1)];
  }
  std::vector<std::size_t> start(buckets + 1);
  std::size_t sum = 0;
  for (std::size_t d = 0; d < buckets; ++d) {
    start[d] = sum;
    for (int t = 0; t < T; ++t) {
      std::size_t v = counts[t * buckets + d];
      counts[t * buckets + d] = sum;
      sum += v;
    }
  }
  start[buckets] = sum;
  // Chunk t's rows follow chunk t-1's within each bucket: the scatter is stable.
#pragma omp parallel for num_threads(T) schedule(static, 1)
  for (int t = 0; t < T; ++t) {
    std::size_t* next = counts.data() + static_cast<std::size_t>(t) * buckets;
    for (std::size_t i = chunk_begin(t), e = chunk_begin(t + 1); i < e; ++i) {
      P p = src(i);
      a[next[(p.key >> shift) & (buckets - 1)]++] = p;
    }
  }
  K low = mask & low_bits_mask<K>(shift);
  // A bucket too big for one thread (a skewed key) is sorted by all threads, the rest in parallel.
  std::vector<std::size_t> small;
  std::size_t small_max = 0;
  for (std::size_t d = 0; d < buckets; ++d) {
    std::size_t s = start[d], size = start[d + 1] - s;
    if (size * sizeof(P) > lsd_limit_bytes && size > n / (2 * static_cast<std::size_t>(T))) {
      buffer own;
      P* target = b != nullptr ? b + s : nullptr;
      if (target == nullptr) {
        own = scratch_buffer(size * sizeof(P), mr);
        target = own.data_as<P>();
      }
      sort_parallel(array_source<K, decltype(P::row)>{a + s}, size, target, a + s, low, out + s, mr,
                    T);
    } else if (size > 0) {
      small.push_back(d);
      small_max = std::max(small_max, size);
    }
  }
  std::vector<buffer> per_thread;
  if (b == nullptr) {
    for (int t = 0; t < T; ++t) per_thread.push_back(scratch_buffer(small_max * sizeof(P), mr));
  }
#pragma omp parallel for num_threads(T) schedule(dynamic, 1)
  for (std::size_t j = 0; j < small.size(); ++j) {
    std::size_t s = start[small[j]], size = start[small[j] + 1] - s;
    P* scratch = b != nullptr ? b + s : per_thread[omp_get_thread_num()].template data_as<P>();
    sort_serial(a + s, scratch, size, low, out + s);
  }
}

// ---- One stable pass over one fixed-width key ------------------------------------------------

/// Scratch shared by the passes of one sort: `a` holds n pairs of the widest key; `b` holds n
/// pairs of the widest key whose pass gathers its pairs first (a nullable key, or any key but the
/// last), or is null when there is none; all further scratch comes from `mr`.
struct pass_buffers {
  void* a;
  void* b;
  memory_resource* mr;
};

/// Stable sort of the rows perm_in[0, n) (the identity when null) by one key into perm_out.
template <class I, class Reader>
void sort_pass(Reader key, const column_view& col, bool nulls_first, const size_type* perm_in,
               size_type* perm_out, std::size_t n, pass_buffers buf, int T) {
  using K = typename Reader::key_type;
  using P = pair_t<K, I>;
  auto* a = static_cast<P*>(buf.a);
  auto* b = static_cast<P*>(buf.b);
  const K all = static_cast<K>(~K{0});
  if (!col.nullable() && perm_in == nullptr) {
    sort_parallel(column_source<Reader, I>{key}, n, a, nullptr, all, perm_out, *buf.mr, T);
    return;
  }
  if (!col.nullable()) {
    // Reading the key through the permutation is a random access; the radix passes read their
    // source three times, so gather the pairs into `b` once.
    permuted_source<Reader, I> src{key, perm_in};
#pragma omp parallel for num_threads(T) schedule(static) if (n >= parallel_min)
    for (std::size_t i = 0; i < n; ++i) b[i] = src(i);
    sort_parallel(array_source<K, I>{b}, n, a, b, all, perm_out, *buf.mr, T);
    return;
  }
  // Stable split: valid pairs into b in order, null rows straight to their end of perm_out.
  auto mask = col.null_mask();
  auto offset = col.mask_offset();
  int chunks = n < parallel_min ? 1 : T;
  auto chunk_begin = [&](int t) { return n * static_cast<std::size_t>(t) / chunks; };
  std::vector<std::size_t> valid_before(static_cast<std::size_t>(chunks) + 1, 0);
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
  for (int t = 0; t < chunks; ++t) {
    std::size_t v = 0;
    for (std::size_t i = chunk_begin(t), e = chunk_begin(t + 1); i < e; ++i) {
      size_type r = perm_in != nullptr ? perm_in[i] : static_cast<size_type>(i);
      v += bit_is_set(mask, offset + r) ? 1 : 0;
    }
    valid_before[t + 1] = v;
  }
  for (int t = 0; t < chunks; ++t) valid_before[t + 1] += valid_before[t];
  std::size_t valid = valid_before[chunks];
  size_type* nulls_out = nulls_first ? perm_out : perm_out + valid;
  size_type* valid_out = nulls_first ? perm_out + (n - valid) : perm_out;
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
  for (int t = 0; t < chunks; ++t) {
    std::size_t v = valid_before[t];
    std::size_t z = chunk_begin(t) - valid_before[t];
    for (std::size_t i = chunk_begin(t), e = chunk_begin(t + 1); i < e; ++i) {
      size_type r = perm_in != nullptr ? perm_in[i] : static_cast<size_type>(i);
      if (bit_is_set(mask, offset + r))
        b[v++] = P{key(r), static_cast<I>(r)};
      else
        nulls_out[z++] = r;
    }
  }
  sort_parallel(array_source<K, I>{b}, valid, a, b, all, valid_out, *buf.mr, T);
}

template <class I>
void sort_pass(const column_view& col, const sort_key& order, const size_type* perm_in,
               size_type* perm_out, std::size_t n, pass_buffers buf, int T) {
  auto run = [&](auto reader) {
    sort_pass<I>(reader, col, order.nulls_first, perm_in, perm_out, n, buf, T);
  };
  auto flip = [&](auto zero) {
    using K = decltype(zero);
    return order.descending ? static_cast<K>(~K{0}) : K{0};
  };
  switch (col.type()) {
    case type_id::int32:
      return run(key_reader<std::int32_t>{col.data<std::int32_t>(), flip(std::uint32_t{})});
    case type_id::int64:
    case type_id::timestamp_ns:
      return run(key_reader<std::int64_t>{col.data<std::int64_t>(), flip(std::uint64_t{})});
    case type_id::float32:
      return run(key_reader<float>{col.data<float>(), flip(std::uint32_t{})});
    case type_id::float64:
      return run(key_reader<double>{col.data<double>(), flip(std::uint64_t{})});
    case type_id::bool8:
      return run(key_reader<std::uint8_t>{col.data<std::uint8_t>(), flip(std::uint8_t{})});
    case type_id::string:
      break;
  }
  throw logic_error("sort: radix pass over a string key");
}

template <class I>
std::size_t pair_bytes(type_id t) {
  switch (size_of(t)) {
    case 1:
      return sizeof(pair_t<std::uint8_t, I>);
    case 4:
      return sizeof(pair_t<std::uint32_t, I>);
    default:
      return sizeof(pair_t<std::uint64_t, I>);
  }
}

void radix_sorted_order(const std::vector<column_view>& cols, const std::vector<sort_key>& keys,
                        size_type* out, std::size_t n, context& ctx, int T) {
  bool narrow = n <= std::numeric_limits<std::uint32_t>::max();
  std::size_t a_bytes = 0, b_bytes = 0;
  for (std::size_t k = 0; k < cols.size(); ++k) {
    const auto& c = cols[k];
    std::size_t bytes =
        (narrow ? pair_bytes<std::uint32_t>(c.type()) : pair_bytes<std::uint64_t>(c.type())) * n;
    a_bytes = std::max(a_bytes, bytes);
    // Only the last key's pass reads the column directly; the others gather into `b`.
    if (c.nullable() || k + 1 < cols.size()) b_bytes = std::max(b_bytes, bytes);
  }
  buffer a = scratch_buffer(a_bytes, ctx.resource());
  buffer b = b_bytes > 0 ? scratch_buffer(b_bytes, ctx.resource()) : buffer{};
  buffer other;
  if (cols.size() > 1) other = scratch_buffer(n * sizeof(size_type), ctx.resource());
  pass_buffers buf{a.data(), b_bytes > 0 ? b.data() : nullptr, &ctx.resource()};
  const size_type* perm_in = nullptr;
  std::size_t m = cols.size();
  // Stable passes from the last key to the first; the first key's pass writes `out`.
  for (std::size_t j = 0; j < m; ++j) {
    std::size_t k = m - 1 - j;
    size_type* perm_out = k % 2 == 0 ? out : other.data_as<size_type>();
    if (narrow)
      sort_pass<std::uint32_t>(cols[k], keys[k], perm_in, perm_out, n, buf, T);
    else
      sort_pass<std::uint64_t>(cols[k], keys[k], perm_in, perm_out, n, buf, T);
    perm_in = perm_out;
  }
}

// ---- Comparator sorts (string keys) and selection --------------------------------------------

/// Row comparator over host columns, with the column views kept alive alongside.
class host_comparator {
 public:
  host_comparator(const std::vector<column_view>& cols, const std::vector<sort_key>& keys) {
    for (std::size_t k = 0; k < cols.size(); ++k) {
      _cols.push_back(column_device_view::of(cols[k]));
      _orders.push_back(detail::key_order{keys[k].descending, keys[k].nulls_first});
    }
  }
  [[nodiscard]] detail::row_comparator get() const {
    return detail::row_comparator{
        detail::table_device_view{_cols.data(), static_cast<int>(_cols.size())}, _orders.data()};
  }

 private:
  std::vector<column_device_view> _cols;
  std::vector<detail::key_order> _orders;
};

/// First position i of `a` such that a[0, i) and b[0, k - i) are the first k outputs of a stable
/// merge of a and b (merge path).
template <class Less>
std::size_t co_rank(std::size_t k, const size_type* a, std::size_t m, const size_type* b,
                    std::size_t l, const Less& less) {
  std::size_t lo = k > l ? k - l : 0, hi = std::min(k, m);
  while (lo < hi) {
    std::size_t i = (lo + hi) / 2, j = k - i;
    if (j > 0 && i < m && !less(b[j - 1], a[i]))
      lo = i + 1;
    else
      hi = i;
  }
  return lo;
}

/// Stable parallel merge sort of `data` (n row indices) with `less`; `tmp` holds n values.
template <class Less>
void parallel_stable_sort(size_type* data, size_type* tmp, std::size_t n, const Less& less, int T) {
  if (T == 1 || n < parallel_min) {
    std::stable_sort(data, data + n, less);
    return;
  }
  std::vector<std::size_t> bounds;
  for (int t = 0; t <= T; ++t) bounds.push_back(n * static_cast<std::size_t>(t) / T);
#pragma omp parallel for num_threads(T) schedule(static, 1)
  for (int t = 0; t < T; ++t) std::stable_sort(data + bounds[t], data + bounds[t + 1], less);
  size_type* src = data;
  size_type* dst = tmp;
  struct piece {
    std::size_t a0, a1, b0, b1, out;
  };
  while (bounds.size() > 2) {
    // Merge runs pairwise; each merge is cut into T pieces of equal output so that every round
    // uses every thread.
    std::vector<piece> pieces;
    std::vector<std::size_t> next{0};
    for (std::size_t r = 0; r + 1 < bounds.size(); r += 2) {
      std::size_t a0 = bounds[r], mid = bounds[r + 1];
      std::size_t b1 = r + 2 < bounds.size() ? bounds[r + 2] : mid;
      std::size_t m = mid - a0, l = b1 - mid, total = m + l;
      std::size_t prev_i = 0, prev_k = 0;
      for (int t = 1; t <= T; ++t) {
        std::size_t k = total * static_cast<std::size_t>(t) / T;
        std::size_t i = co_rank(k, src + a0, m, src + mid, l, less);
        pieces.push_back(
            piece{a0 + prev_i, a0 + i, mid + (prev_k - prev_i), mid + (k - i), a0 + prev_k});
        prev_i = i;
        prev_k = k;
      }
      next.push_back(b1);
    }
#pragma omp parallel for num_threads(T) schedule(dynamic, 1)
    for (std::size_t p = 0; p < pieces.size(); ++p) {
      const auto& q = pieces[p];
      std::merge(src + q.a0, src + q.a1, src + q.b0, src + q.b1, dst + q.out, less);
    }
    bounds = std::move(next);
    std::swap(src, dst);
  }
  if (src != data) std::memcpy(data, src, n * sizeof(size_type));
}

/// A strict total order on rows: the key order, then the row index (which makes a stable sort's
/// order unique, so selection and sorting agree).
template <class KeyLess>
struct stable_less {
  KeyLess key_less;
  bool operator()(size_type i, size_type j) const {
    int c = key_less.compare(i, j);
    return c != 0 ? c < 0 : i < j;
  }
};

/// One fixed-width key as a three-way comparison, without the row comparator's type switch.
template <class Reader>
struct fixed_key_compare {
  Reader key;
  const bitmask_type* mask;
  size_type offset;
  bool nulls_first;
  int compare(size_type i, size_type j) const {
    if (mask != nullptr) {
      bool vi = bit_is_set(mask, offset + i), vj = bit_is_set(mask, offset + j);
      if (vi != vj) return (vi ? 1 : -1) * (nulls_first ? 1 : -1);
      if (!vi) return 0;
    }
    auto a = key(i), b = key(j);
    return a < b ? -1 : (b < a ? 1 : 0);
  }
};

/// Keeps the k smallest of `rows` under `less`, unordered.
template <class Less>
void keep_smallest(std::vector<size_type>& rows, std::size_t k, const Less& less) {
  if (rows.size() <= k) return;
  std::nth_element(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(k - 1), rows.end(),
                   less);
  rows.resize(k);
}

/// The k smallest rows under `less` (a strict total order), in order. Each thread scans a chunk
/// and keeps the rows that beat its threshold in a buffer of 2k; a full buffer is cut back to its
/// k best, whose worst becomes the new threshold. Every cut costs O(k) and frees k slots, so the
/// scan is O(n) whatever the input order (a bounded heap pays log k per row on reversed input).
template <class Less>
void select_top_k(std::size_t n, std::size_t k, const Less& less, size_type* out, int T) {
  int chunks = n < parallel_min ? 1 : T;
  std::vector<std::vector<size_type>> kept(static_cast<std::size_t>(chunks));
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
  for (int t = 0; t < chunks; ++t) {
    auto& rows = kept[t];
    rows.reserve(2 * k);
    bool bounded = false;
    size_type threshold = 0;
    std::size_t begin = n * static_cast<std::size_t>(t) / chunks;
    std::size_t end = n * static_cast<std::size_t>(t + 1) / chunks;
    for (std::size_t i = begin; i < end; ++i) {
      auto r = static_cast<size_type>(i);
      if (bounded && !less(r, threshold)) continue;
      rows.push_back(r);
      if (rows.size() == 2 * k) {
        keep_smallest(rows, k, less);
        threshold = rows[k - 1];
        bounded = true;
      }
    }
  }
  std::vector<size_type> candidates;
  for (auto& rows : kept) candidates.insert(candidates.end(), rows.begin(), rows.end());
  keep_smallest(candidates, k, less);
  std::sort(candidates.begin(), candidates.end(), less);
  std::copy_n(candidates.begin(), k, out);
}

std::vector<column_view> key_columns(const table_view& input, const std::vector<sort_key>& keys) {
  std::vector<column_view> cols;
  for (const auto& k : keys) cols.push_back(input.column(k.column));
  return cols;
}

bool all_fixed_width(const std::vector<column_view>& cols) {
  return std::all_of(cols.begin(), cols.end(),
                     [](const column_view& c) { return is_fixed_width(c.type()); });
}

}  // namespace

column sorted_order(const table_view& input, const std::vector<sort_key>& keys, context& ctx) {
  auto n = static_cast<std::size_t>(input.num_rows());
  buffer out = scratch_buffer(n * sizeof(size_type), ctx.resource());
  auto* o = out.data_as<size_type>();
  int T = thread_count(ctx);
  auto cols = key_columns(input, keys);
  if (n <= 1) {
    if (n == 1) o[0] = 0;
  } else if (all_fixed_width(cols)) {
    radix_sorted_order(cols, keys, o, n, ctx, T);
  } else {
#pragma omp parallel for num_threads(T) schedule(static) if (n >= parallel_min)
    for (std::size_t i = 0; i < n; ++i) o[i] = static_cast<size_type>(i);
    buffer tmp(T > 1 && n >= parallel_min ? n * sizeof(size_type) : 0, ctx.resource());
    host_comparator cmp(cols, keys);
    parallel_stable_sort(o, tmp.data_as<size_type>(), n, cmp.get(), T);
  }
  return column(type_id::int64, static_cast<size_type>(n), std::move(out));
}

column top_k_order(const table_view& input, const std::vector<sort_key>& keys, size_type k,
                   context& ctx) {
  auto n = static_cast<std::size_t>(input.num_rows());
  auto want = static_cast<std::size_t>(k);
  // Selection compares rows through their keys at random; for large k a radix sort is cheaper.
  if (want > n / 32) {
    column order = fast::sorted_order(input, keys, ctx);
    if (want == n) return order;
    buffer first(want * sizeof(size_type), ctx.resource());
    std::memcpy(first.data(), order.view().data(), want * sizeof(size_type));
    return column(type_id::int64, k, std::move(first));
  }
  buffer out(want * sizeof(size_type), ctx.resource());
  int T = thread_count(ctx);
  auto cols = key_columns(input, keys);
  if (want > 0) {
    auto* o = out.data_as<size_type>();
    const auto& c = cols.front();
    auto select = [&](auto reader) {
      using R = decltype(reader);
      stable_less<fixed_key_compare<R>> less{
          fixed_key_compare<R>{reader, c.null_mask(), c.mask_offset(), keys.front().nulls_first}};
      select_top_k(n, want, less, o, T);
    };
    auto flip = [&](auto zero) {
      using K = decltype(zero);
      return keys.front().descending ? static_cast<K>(~K{0}) : K{0};
    };
    switch (cols.size() == 1 ? c.type() : type_id::string) {
      case type_id::int32:
        select(key_reader<std::int32_t>{c.data<std::int32_t>(), flip(std::uint32_t{})});
        break;
      case type_id::int64:
      case type_id::timestamp_ns:
        select(key_reader<std::int64_t>{c.data<std::int64_t>(), flip(std::uint64_t{})});
        break;
      case type_id::float32:
        select(key_reader<float>{c.data<float>(), flip(std::uint32_t{})});
        break;
      case type_id::float64:
        select(key_reader<double>{c.data<double>(), flip(std::uint64_t{})});
        break;
      case type_id::bool8:
        select(key_reader<std::uint8_t>{c.data<std::uint8_t>(), flip(std::uint8_t{})});
        break;
      case type_id::string: {
        host_comparator cmp(cols, keys);
        select_top_k(n, want, stable_less<detail::row_comparator>{cmp.get()}, o, T);
        break;
      }
    }
  }
  return column(type_id::int64, k, std::move(out));
}

}  // namespace ember::cpu::fast
