#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ember/host/buffer.hpp>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/partition_file.hpp>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <unordered_set>
#include <utility>

namespace ember {
namespace {

namespace fs = std::filesystem;

// Values and bitmask words are copied between memory and the file as they are.
static_assert(std::endian::native == std::endian::little,
              "the partition file format is little-endian and so must the host be");

constexpr std::uint32_t file_magic = 0x50424d45u;  // "EMBP"
constexpr std::size_t header_bytes = 16;
constexpr std::size_t tail_bytes = 24;
constexpr std::size_t max_stat_bytes = 64;
constexpr std::uint8_t column_nullable = 1;
constexpr std::uint8_t stats_has_min_max = 1;
constexpr std::uint8_t stats_min_truncated = 2;
constexpr std::uint8_t stats_max_truncated = 4;
constexpr std::uint8_t stats_max_unbounded = 8;
// The smallest chunk record of the footer (without statistics values), and of a column entry.
constexpr std::size_t min_chunk_record_bytes = 4 * 8 + 1 + 1 + 2 * 8;
constexpr std::size_t min_column_entry_bytes = 4 + 1 + 1;
// zstd cannot expand data more than this: each block of at most 128 KiB costs at least 4 bytes.
// It bounds what a compressed chunk may claim before anything is allocated for it.
constexpr std::uint64_t max_zstd_ratio = 32768;

std::string named(const fs::path& path) { return path.string() + ": "; }

[[noreturn]] void io_failure(const std::string& what, const fs::path& path) {
  throw error(named(path) + "cannot " + what + ": " + std::strerror(errno));
}

std::uint64_t checksum(const void* p, std::size_t n) noexcept { return XXH3_64bits(p, n); }

std::size_t bitmap_bytes(size_type rows) { return static_cast<std::size_t>((rows + 7) / 8); }

bool bit(const std::uint8_t* bits, size_type i) { return ((bits[i >> 3] >> (i & 7)) & 1u) != 0; }

// Copies bits [s, s + n) of `src` to bits [d, d + n) of `dst`; the other bits of dst keep their
// values. `src` is read only up to the byte that holds bit s + n - 1.
void copy_bits(const std::uint8_t* src, size_type s, std::uint8_t* dst, size_type d, size_type n) {
  const size_type src_end = (s + n + 7) / 8;
  auto byte_at = [&](size_type at) -> std::uint8_t {
    auto b = at >> 3;
    auto shift = static_cast<unsigned>(at & 7);
    unsigned v = static_cast<unsigned>(src[b]) >> shift;
    if (shift != 0 && b + 1 < src_end) v |= static_cast<unsigned>(src[b + 1]) << (8 - shift);
    return static_cast<std::uint8_t>(v);
  };
  for (; n > 0 && (d & 7) != 0; ++s, ++d, --n) {
    auto m = static_cast<std::uint8_t>(1u << (d & 7));
    dst[d >> 3] = bit(src, s) ? (dst[d >> 3] | m) : (dst[d >> 3] & ~m);
  }
  if ((s & 7) == 0 && n >= 8) {
    std::memcpy(dst + (d >> 3), src + (s >> 3), static_cast<std::size_t>(n >> 3));
    auto done = n & ~size_type{7};
    s += done;
    d += done;
    n -= done;
  }
  for (; n >= 8; s += 8, d += 8, n -= 8) dst[d >> 3] = byte_at(s);
  if (n > 0) {
    auto m = static_cast<std::uint8_t>((1u << n) - 1);
    dst[d >> 3] = static_cast<std::uint8_t>((dst[d >> 3] & ~m) | (byte_at(s) & m));
  }
}

size_type count_set_bits(const std::uint8_t* bits, size_type n) {
  size_type set = 0;
  size_type whole = n / 64;
  for (size_type w = 0; w < whole; ++w) {
    std::uint64_t v;
    std::memcpy(&v, bits + w * 8, 8);
    set += std::popcount(v);
  }
  for (size_type i = whole * 64; i < n; ++i) set += bit(bits, i) ? 1 : 0;
  return set;
}

// ---- files --------------------------------------------------------------------------------------

class file_descriptor {
 public:
  file_descriptor(const fs::path& path, int flags) : _path(path) {
    _fd = ::open(path.c_str(), flags | O_CLOEXEC, 0666);
    if (_fd < 0) io_failure(flags & O_CREAT ? "create the file" : "open the file", path);
  }
  file_descriptor(const file_descriptor&) = delete;
  file_descriptor& operator=(const file_descriptor&) = delete;
  ~file_descriptor() { close_quietly(); }

  [[nodiscard]] size_type size() const {
    struct stat st {};
    if (::fstat(_fd, &st) != 0) io_failure("stat the file", _path);
    return static_cast<size_type>(st.st_size);
  }
  void write_all(const void* data, std::size_t n) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    while (n > 0) {
      auto w = ::write(_fd, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        io_failure("write", _path);
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }
  void pwrite_all(const void* data, std::size_t n, size_type at) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    while (n > 0) {
      auto w = ::pwrite(_fd, p, n, static_cast<off_t>(at));
      if (w < 0) {
        if (errno == EINTR) continue;
        io_failure("write", _path);
      }
      p += w;
      at += w;
      n -= static_cast<std::size_t>(w);
    }
  }
  // Reads exactly n bytes at `at`; a file that ends first was truncated while being read.
  void pread_all(void* data, std::size_t n, size_type at) const {
    auto* p = static_cast<std::uint8_t*>(data);
    while (n > 0) {
      auto r = ::pread(_fd, p, n, static_cast<off_t>(at));
      if (r < 0) {
        if (errno == EINTR) continue;
        io_failure("read", _path);
      }
      if (r == 0)
        throw invalid_input(named(_path) + "truncated (it ends at byte " + std::to_string(at) +
                            " while being read)");
      p += r;
      at += r;
      n -= static_cast<std::size_t>(r);
    }
  }
  void sync() {
    if (::fsync(_fd) != 0) io_failure("sync", _path);
  }
  void close() {
    int fd = std::exchange(_fd, -1);
    if (::close(fd) != 0) io_failure("close", _path);
  }

 private:
  void close_quietly() noexcept {
    if (_fd >= 0) ::close(_fd);
    _fd = -1;
  }
  fs::path _path;
  int _fd = -1;
};

void sync_folder(const fs::path& file) {
  auto dir = file.parent_path();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) io_failure("open its folder " + dir.string() + " to sync it", file);
  if (::fsync(fd) != 0) {
    ::close(fd);
    io_failure("sync its folder " + dir.string(), file);
  }
  ::close(fd);
}

// ---- footer encoding ----------------------------------------------------------------------------

class byte_writer {
 public:
  template <class T>
  void put(T v) {
    std::uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    _bytes.insert(_bytes.end(), b, b + sizeof(T));
  }
  void put_bytes(std::string_view s) { _bytes.insert(_bytes.end(), s.begin(), s.end()); }
  [[nodiscard]] std::vector<std::uint8_t>& bytes() noexcept { return _bytes; }

 private:
  std::vector<std::uint8_t> _bytes;
};

// Bounds-checked reads of the footer; every failure names the file.
class byte_reader {
 public:
  byte_reader(std::span<const std::uint8_t> bytes, const fs::path& path)
      : _bytes(bytes), _path(path) {}

  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, _bytes.data() + _at, sizeof(T));
    _at += sizeof(T);
    return v;
  }
  std::string get_string(std::size_t n, const char* what) {
    need(n, what);
    std::string s(reinterpret_cast<const char*>(_bytes.data() + _at), n);
    _at += n;
    return s;
  }
  // `count` items of at least `item_bytes` each must fit in what is left, before any of them is
  // allocated.
  void need_items(std::uint64_t count, std::size_t item_bytes, const char* what) {
    if (item_bytes > 0 && count > remaining() / item_bytes)
      fail("it claims " + std::to_string(count) + " " + what + " but has room for at most " +
           std::to_string(remaining() / item_bytes));
  }
  [[nodiscard]] std::size_t remaining() const noexcept { return _bytes.size() - _at; }
  [[noreturn]] void fail(const std::string& why) const {
    throw invalid_input(named(_path) + "malformed footer: " + why);
  }

 private:
  void need(std::size_t n, const char* what) const {
    if (n > remaining()) fail(std::string("it ends inside ") + what);
  }
  std::span<const std::uint8_t> _bytes;
  std::size_t _at = 0;
  const fs::path& _path;
};

std::uint8_t stats_flags(const column_stats& s) {
  std::uint8_t f = 0;
  if (s.has_min_max()) f |= stats_has_min_max;
  if (s.min_truncated) f |= stats_min_truncated;
  if (s.max_truncated) f |= stats_max_truncated;
  if (s.max_unbounded) f |= stats_max_unbounded;
  return f;
}

void put_bound(byte_writer& w, type_id type, const scalar& v) {
  if (type == type_id::string) {
    w.put(static_cast<std::uint8_t>(v.as_string().size()));
    w.put_bytes(v.as_string());
  } else if (is_floating(type)) {
    w.put(std::bit_cast<std::uint64_t>(v.as_float()));
  } else {
    w.put(v.as_int());
  }
}

std::vector<std::uint8_t> encode_footer(const partition_file_info& info) {
  byte_writer w;
  w.put(static_cast<std::uint32_t>(info.columns.size()));
  for (const auto& c : info.columns) {
    w.put(static_cast<std::uint32_t>(c.name.size()));
    w.put_bytes(c.name);
    w.put(static_cast<std::uint8_t>(c.type));
    w.put(static_cast<std::uint8_t>(c.nullable ? column_nullable : 0));
  }
  w.put(static_cast<std::uint64_t>(info.rows));
  w.put(static_cast<std::uint64_t>(info.row_group_rows));
  w.put(static_cast<std::uint32_t>(info.row_groups.size()));
  for (const auto& g : info.row_groups) {
    w.put(static_cast<std::uint64_t>(g.rows));
    for (std::size_t c = 0; c < g.chunks.size(); ++c) {
      const auto& k = g.chunks[c];
      w.put(static_cast<std::uint64_t>(k.offset));
      w.put(static_cast<std::uint64_t>(k.stored_bytes));
      w.put(static_cast<std::uint64_t>(k.raw_bytes));
      w.put(k.checksum);
      w.put(static_cast<std::uint8_t>(k.codec));
      w.put(stats_flags(k.stats));
      w.put(static_cast<std::uint64_t>(k.stats.null_count));
      w.put(static_cast<std::uint64_t>(k.stats.nan_count));
      if (k.stats.has_min_max()) {
        auto type = info.columns[c].type;
        put_bound(w, type, k.stats.min);
        if (k.stats.max_unbounded) {
          w.put(std::uint8_t{0});
        } else {
          put_bound(w, type, k.stats.max);
        }
      }
    }
  }
  return std::move(w.bytes());
}

// ---- statistics ---------------------------------------------------------------------------------

scalar numeric_scalar(type_id type, std::int64_t i, double f) {
  switch (type) {
    case type_id::int32:
      return scalar::int32(static_cast<std::int32_t>(i));
    case type_id::int64:
      return scalar::int64(i);
    case type_id::timestamp_ns:
      return scalar::timestamp(i);
    case type_id::bool8:
      return scalar::boolean(i != 0);
    case type_id::float32:
      return scalar::float32(static_cast<float>(f));
    case type_id::float64:
      return scalar::float64(f);
    case type_id::string:
      break;
  }
  return scalar::null(type);
}

// -1, 0 or 1 as a <=> b, exactly, for an integer and a double that is not NaN.
int compare_int_double(std::int64_t a, double b) {
  constexpr double two63 = 9223372036854775808.0;
  if (b >= two63) return -1;
  if (b < -two63) return 1;
  auto whole = std::trunc(b);
  auto w = static_cast<std::int64_t>(whole);
  if (a != w) return a < w ? -1 : 1;
  auto frac = b - whole;
  return frac > 0 ? -1 : (frac < 0 ? 1 : 0);
}

int compare_scalars(const scalar& a, const scalar& b) {
  if (a.type() == type_id::string) {
    auto c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  bool fa = is_floating(a.type());
  bool fb = is_floating(b.type());
  if (fa && fb) return a.as_float() < b.as_float() ? -1 : (a.as_float() > b.as_float() ? 1 : 0);
  if (!fa && !fb) return a.as_int() < b.as_int() ? -1 : (a.as_int() > b.as_int() ? 1 : 0);
  if (fb) return compare_int_double(a.as_int(), b.as_float());
  return -compare_int_double(b.as_int(), a.as_float());
}

// Statistics of the non-null values of one chunk of a fixed-width column. `bits` is the chunk's
// bitmap (null when the column is not nullable). The values follow the bitmap in the chunk, so
// they need not be aligned.
template <class T>
column_stats fixed_width_stats(type_id type, const std::uint8_t* v, const std::uint8_t* bits,
                               size_type rows, size_type null_count) {
  column_stats s;
  s.null_count = null_count;
  bool any = false;
  T lo{};
  T hi{};
  size_type nans = 0;
  for (size_type i = 0; i < rows; ++i) {
    if (bits != nullptr && !bit(bits, i)) continue;
    T x;
    std::memcpy(&x, v + i * static_cast<size_type>(sizeof(T)), sizeof(T));
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(x)) {
        ++nans;
        continue;
      }
    }
    if (!any) {
      lo = hi = x;
      any = true;
    } else {
      lo = x < lo ? x : lo;
      hi = x > hi ? x : hi;
    }
  }
  s.nan_count = nans;
  if (any) {
    if constexpr (std::is_floating_point_v<T>) {
      s.min = numeric_scalar(type, 0, lo);
      s.max = numeric_scalar(type, 0, hi);
    } else {
      s.min = numeric_scalar(type, static_cast<std::int64_t>(lo), 0);
      s.max = numeric_scalar(type, static_cast<std::int64_t>(hi), 0);
    }
  } else {
    s.min = s.max = scalar::null(type);
  }
  return s;
}

// A string's bounds, cut to max_stat_bytes (see the header for why max is incremented).
void set_string_bounds(column_stats& s, std::string_view lo, std::string_view hi) {
  if (lo.size() > max_stat_bytes) {
    s.min = scalar::string(std::string(lo.substr(0, max_stat_bytes)));
    s.min_truncated = true;
  } else {
    s.min = scalar::string(std::string(lo));
  }
  if (hi.size() <= max_stat_bytes) {
    s.max = scalar::string(std::string(hi));
    return;
  }
  std::string bound(hi.substr(0, max_stat_bytes));
  while (!bound.empty() && static_cast<unsigned char>(bound.back()) == 0xff) bound.pop_back();
  if (bound.empty()) {
    s.max = scalar::null(type_id::string);
    s.max_unbounded = true;
    return;
  }
  bound.back() = static_cast<char>(static_cast<unsigned char>(bound.back()) + 1);
  s.max = scalar::string(std::move(bound));
  s.max_truncated = true;
}

// Statistics of a whole file: every chunk's merged. min/max are bounds of bounds, so they stay
// bounds; an exact bound wins a tie with a truncated one since it is a value of the column.
column_stats merge_stats(type_id type, const std::vector<row_group_info>& groups, std::size_t c) {
  column_stats out;
  out.min = out.max = scalar::null(type);
  for (const auto& g : groups) {
    const auto& s = g.chunks[c].stats;
    out.null_count += s.null_count;
    out.nan_count += s.nan_count;
    if (!s.has_min_max()) continue;
    if (!out.has_min_max()) {
      out.min = s.min;
      out.min_truncated = s.min_truncated;
      out.max = s.max;
      out.max_truncated = s.max_truncated;
      out.max_unbounded = s.max_unbounded;
      continue;
    }
    auto lo = compare_scalars(s.min, out.min);
    if (lo < 0 || (lo == 0 && !s.min_truncated)) {
      out.min = s.min;
      out.min_truncated = s.min_truncated;
    }
    if (out.max_unbounded) continue;
    if (s.max_unbounded) {
      out.max = s.max;
      out.max_truncated = false;
      out.max_unbounded = true;
      continue;
    }
    auto hi = compare_scalars(s.max, out.max);
    if (hi > 0 || (hi == 0 && !s.max_truncated)) {
      out.max = s.max;
      out.max_truncated = s.max_truncated;
    }
  }
  return out;
}

// ---- writing ------------------------------------------------------------------------------------

struct zstd_cctx_deleter {
  void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
};
struct zstd_dctx_deleter {
  void operator()(ZSTD_DCtx* c) const noexcept { ZSTD_freeDCtx(c); }
};

// A chunk's raw bytes and statistics, built from rows [begin, begin + rows) of a column view.
// `raw` is reused from chunk to chunk.
column_stats encode_chunk(const column_view& col, size_type begin, size_type rows,
                          std::vector<std::uint8_t>& raw) {
  std::size_t mask_bytes = col.nullable() ? bitmap_bytes(rows) : 0;
  const std::uint8_t* bits = nullptr;
  size_type null_count = 0;
  if (col.type() == type_id::string) {
    const size_type* off = col.offsets() + begin;
    auto chars = static_cast<std::size_t>(off[rows] - off[0]);
    std::size_t offsets_bytes = static_cast<std::size_t>(rows + 1) * sizeof(size_type);
    raw.resize(mask_bytes + offsets_bytes + chars);
    if (col.nullable()) {
      raw[mask_bytes - 1] = 0;
      copy_bits(reinterpret_cast<const std::uint8_t*>(col.null_mask()), col.mask_offset() + begin,
                raw.data(), 0, rows);
      bits = raw.data();
      null_count = rows - count_set_bits(bits, rows);
    }
    for (size_type i = 0; i <= rows; ++i) {
      size_type o = off[i] - off[0];
      std::memcpy(raw.data() + mask_bytes + static_cast<std::size_t>(i) * sizeof(size_type), &o,
                  sizeof o);
    }
    if (chars > 0)
      std::memcpy(raw.data() + mask_bytes + offsets_bytes, col.chars() + off[0], chars);
    column_stats s;
    s.null_count = null_count;
    bool any = false;
    std::string_view lo;
    std::string_view hi;
    for (size_type i = 0; i < rows; ++i) {
      if (bits != nullptr && !bit(bits, i)) continue;
      std::string_view v(col.chars() + off[i], static_cast<std::size_t>(off[i + 1] - off[i]));
      if (!any) {
        lo = hi = v;
        any = true;
      } else {
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
      }
    }
    if (any) {
      set_string_bounds(s, lo, hi);
    } else {
      s.min = s.max = scalar::null(type_id::string);
    }
    return s;
  }

  auto width = static_cast<std::size_t>(size_of(col.type()));
  std::size_t value_bytes = static_cast<std::size_t>(rows) * width;
  raw.resize(mask_bytes + value_bytes);
  std::uint8_t* values = raw.data() + mask_bytes;
  std::memcpy(values, static_cast<const std::uint8_t*>(col.data()) + begin * width, value_bytes);
  if (col.nullable()) {
    raw[mask_bytes - 1] = 0;
    copy_bits(reinterpret_cast<const std::uint8_t*>(col.null_mask()), col.mask_offset() + begin,
              raw.data(), 0, rows);
    bits = raw.data();
    null_count = rows - count_set_bits(bits, rows);
    // Null rows hold whatever their producer left there: 0 keeps files reproducible and
    // compressible, and bool chunks valid.
    if (null_count > 0)
      for (size_type i = 0; i < rows; ++i)
        if (!bit(bits, i)) std::memset(values + i * width, 0, width);
  }
  if (col.type() == type_id::bool8)
    for (std::size_t i = 0; i < value_bytes; ++i) values[i] = values[i] != 0 ? 1 : 0;
  return dispatch_type(col.type(), [&]<type_id T>() -> column_stats {
    if constexpr (T == type_id::string) {
      return {};
    } else {
      using V = storage_t<T>;
      return fixed_width_stats<V>(T, values, bits, rows, null_count);
    }
  });
}

void check_write_options(const fs::path& path, const partition_write_options& o, size_type rows) {
  EMBER_EXPECTS(o.row_group_rows > 0, invalid_input,
                named(path) + "row_group_rows must be positive (got " +
                    std::to_string(o.row_group_rows) + ")");
  EMBER_EXPECTS(rows / o.row_group_rows < std::numeric_limits<std::uint32_t>::max(), invalid_input,
                named(path) + std::to_string(rows) + " rows in row groups of " +
                    std::to_string(o.row_group_rows) + " make more row groups than a file holds");
  EMBER_EXPECTS(
      o.compression == compression_codec::none || o.compression == compression_codec::zstd,
      invalid_input, named(path) + "unknown compression codec");
  if (o.compression == compression_codec::zstd)
    EMBER_EXPECTS(o.level >= ZSTD_minCLevel() && o.level <= ZSTD_maxCLevel(), invalid_input,
                  named(path) + "zstd level " + std::to_string(o.level) + " is outside [" +
                      std::to_string(ZSTD_minCLevel()) + ", " + std::to_string(ZSTD_maxCLevel()) +
                      "]");
}

partition_file_info write_file(const fs::path& path, const table_view& t,
                               const partition_write_options& o, file_descriptor& file) {
  partition_file_info info;
  for (size_type c = 0; c < t.num_columns(); ++c)
    info.columns.push_back({t.names()[c], t.column(c).type(), t.column(c).nullable()});
  info.rows = t.num_rows();
  info.row_group_rows = o.row_group_rows;

  std::uint8_t header[header_bytes] = {};
  std::memcpy(header, &file_magic, 4);
  std::memcpy(header + 4, &partition_file_version, 2);
  file.write_all(header, header_bytes);
  size_type at = header_bytes;

  std::unique_ptr<ZSTD_CCtx, zstd_cctx_deleter> cctx;
  if (o.compression == compression_codec::zstd) {
    cctx.reset(ZSTD_createCCtx());
    if (!cctx) throw out_of_memory(named(path) + "cannot create a zstd compression context");
  }
  std::vector<std::uint8_t> raw;
  std::vector<std::uint8_t> packed;
  for (size_type first = 0; first < info.rows; first += o.row_group_rows) {
    row_group_info g;
    g.first_row = first;
    g.rows = std::min(o.row_group_rows, info.rows - first);
    for (size_type c = 0; c < t.num_columns(); ++c) {
      chunk_info k;
      k.stats = encode_chunk(t.column(c), first, g.rows, raw);
      k.raw_bytes = static_cast<size_type>(raw.size());
      std::span<const std::uint8_t> stored(raw);
      if (cctx) {
        packed.resize(ZSTD_compressBound(raw.size()));
        auto n = ZSTD_compressCCtx(cctx.get(), packed.data(), packed.size(), raw.data(), raw.size(),
                                   o.level);
        if (ZSTD_isError(n))
          throw error(named(path) + "zstd failed on column '" + info.columns[c].name +
                      "' row group " + std::to_string(info.row_groups.size()) + ": " +
                      ZSTD_getErrorName(n));
        if (n < raw.size()) {
          stored = std::span<const std::uint8_t>(packed.data(), n);
          k.codec = compression_codec::zstd;
        }
      }
      k.offset = at;
      k.stored_bytes = static_cast<size_type>(stored.size());
      k.checksum = checksum(stored.data(), stored.size());
      file.write_all(stored.data(), stored.size());
      at += k.stored_bytes;
      g.chunks.push_back(std::move(k));
    }
    info.row_groups.push_back(std::move(g));
  }

  auto footer = encode_footer(info);
  info.footer_bytes = static_cast<size_type>(footer.size());
  info.footer_checksum = checksum(footer.data(), footer.size());
  byte_writer tail;
  tail.put(static_cast<std::uint64_t>(footer.size()));
  tail.put(info.footer_checksum);
  tail.put(partition_file_version);
  tail.put(std::uint16_t{0});
  tail.put(file_magic);
  file.write_all(footer.data(), footer.size());
  file.write_all(tail.bytes().data(), tail.bytes().size());
  info.file_bytes = at + info.footer_bytes + static_cast<size_type>(tail_bytes);
  // Last: until the size is in the header, a reader sees a file whose writer did not finish.
  auto size = static_cast<std::uint64_t>(info.file_bytes);
  file.pwrite_all(&size, sizeof size, 8);
  for (std::size_t c = 0; c < info.columns.size(); ++c)
    info.stats.push_back(merge_stats(info.columns[c].type, info.row_groups, c));
  return info;
}

// ---- reading ------------------------------------------------------------------------------------

std::string chunk_name(const partition_file_info& info, std::size_t g, std::size_t c) {
  return "column '" + info.columns[c].name + "' row group " + std::to_string(g);
}

column_stats read_chunk_stats(byte_reader& r, type_id type) {
  column_stats s;
  auto flags = r.get<std::uint8_t>("a chunk's statistics flags");
  if ((flags & ~0xfu) != 0) r.fail("unknown statistics flags " + std::to_string(flags));
  auto nulls = r.get<std::uint64_t>("a null count");
  auto nans = r.get<std::uint64_t>("a NaN count");
  if (nulls > static_cast<std::uint64_t>(std::numeric_limits<size_type>::max()) ||
      nans > static_cast<std::uint64_t>(std::numeric_limits<size_type>::max()))
    r.fail("a null or NaN count of 2^63 or more");
  s.null_count = static_cast<size_type>(nulls);
  s.nan_count = static_cast<size_type>(nans);
  s.min_truncated = (flags & stats_min_truncated) != 0;
  s.max_truncated = (flags & stats_max_truncated) != 0;
  s.max_unbounded = (flags & stats_max_unbounded) != 0;
  s.min = s.max = scalar::null(type);
  if ((flags & stats_has_min_max) == 0) {
    if (flags != 0) r.fail("truncation flags on statistics without min/max");
    return s;
  }
  if (type == type_id::string) {
    auto lo_len = r.get<std::uint8_t>("a string minimum's length");
    auto lo = r.get_string(lo_len, "a string minimum");
    auto hi_len = r.get<std::uint8_t>("a string maximum's length");
    auto hi = r.get_string(hi_len, "a string maximum");
    if (lo_len > max_stat_bytes || hi_len > max_stat_bytes)
      r.fail("a string bound longer than " + std::to_string(max_stat_bytes) + " bytes");
    s.min = scalar::string(std::move(lo));
    if (s.max_unbounded) {
      if (hi_len != 0 || s.max_truncated) r.fail("an unbounded maximum with a value");
    } else {
      s.max = scalar::string(std::move(hi));
    }
  } else {
    if (flags != stats_has_min_max) r.fail("truncation flags on a numeric column");
    auto lo = r.get<std::int64_t>("a minimum");
    auto hi = r.get<std::int64_t>("a maximum");
    if (is_floating(type)) {
      auto flo = std::bit_cast<double>(lo);
      auto fhi = std::bit_cast<double>(hi);
      if (std::isnan(flo) || std::isnan(fhi)) r.fail("a NaN minimum or maximum");
      if (type == type_id::float32 && (static_cast<double>(static_cast<float>(flo)) != flo ||
                                       static_cast<double>(static_cast<float>(fhi)) != fhi))
        r.fail("a float32 minimum or maximum that is not a float32");
      s.min = numeric_scalar(type, 0, flo);
      s.max = numeric_scalar(type, 0, fhi);
    } else {
      bool fits = true;
      for (auto v : {lo, hi}) {
        if (type == type_id::int32)
          fits = fits && v >= std::numeric_limits<std::int32_t>::min() &&
                 v <= std::numeric_limits<std::int32_t>::max();
        if (type == type_id::bool8) fits = fits && (v == 0 || v == 1);
      }
      if (!fits) r.fail("a minimum or maximum outside the column's type");
      s.min = numeric_scalar(type, lo, 0);
      s.max = numeric_scalar(type, hi, 0);
    }
  }
  if (!s.max_unbounded && compare_scalars(s.min, s.max) > 0) r.fail("a minimum above its maximum");
  return s;
}

// The footer of an open file, parsed and checked against the file (see the header's list).
partition_file_info read_info(const fs::path& path, const file_descriptor& file) {
  const auto size = file.size();
  auto bad = [&](const std::string& why) -> invalid_input {
    return invalid_input(named(path) + why);
  };
  std::uint8_t header[header_bytes] = {};
  file.pread_all(header, static_cast<std::size_t>(std::min<size_type>(size, header_bytes)), 0);
  std::uint32_t magic = 0;
  std::memcpy(&magic, header, 4);
  if (size < 4) {
    if (size == 0) throw bad("empty file (not an ember partition file)");
    if (std::memcmp(header, &file_magic, static_cast<std::size_t>(size)) != 0)
      throw bad("not an ember partition file (bad magic)");
  } else if (magic != file_magic) {
    throw bad("not an ember partition file (bad magic)");
  }
  if (size < static_cast<size_type>(header_bytes))
    throw bad("truncated (" + std::to_string(size) + " bytes, shorter than the " +
              std::to_string(header_bytes) + "-byte header)");
  std::uint16_t version = 0;
  std::uint16_t flags = 0;
  std::uint64_t claimed = 0;
  std::memcpy(&version, header + 4, 2);
  std::memcpy(&flags, header + 6, 2);
  std::memcpy(&claimed, header + 8, 8);
  if (version != partition_file_version)
    throw bad("unsupported version " + std::to_string(version) + " (this build reads version " +
              std::to_string(partition_file_version) + ")");
  if (flags != 0) throw bad("unsupported header flags " + std::to_string(flags));
  if (claimed == 0) throw bad("incomplete (its writer did not finish: the header holds no size)");
  if (claimed > static_cast<std::uint64_t>(size))
    throw bad("truncated (the header claims " + std::to_string(claimed) +
              " bytes but the file has " + std::to_string(size) + ")");
  if (claimed < static_cast<std::uint64_t>(size))
    throw bad("the header claims " + std::to_string(claimed) + " bytes but the file has " +
              std::to_string(size) + " (trailing bytes or a damaged header)");
  if (size < static_cast<size_type>(header_bytes + tail_bytes))
    throw bad("too short (" + std::to_string(size) + " bytes) to hold a header and a tail");

  std::uint8_t tail[tail_bytes];
  file.pread_all(tail, tail_bytes, size - static_cast<size_type>(tail_bytes));
  std::uint64_t footer_bytes = 0;
  std::uint64_t footer_sum = 0;
  std::uint16_t tail_version = 0;
  std::uint16_t reserved = 0;
  std::memcpy(&footer_bytes, tail, 8);
  std::memcpy(&footer_sum, tail + 8, 8);
  std::memcpy(&tail_version, tail + 16, 2);
  std::memcpy(&reserved, tail + 18, 2);
  std::memcpy(&magic, tail + 20, 4);
  if (magic != file_magic) throw bad("not an ember partition file (bad magic at the end)");
  if (tail_version != partition_file_version)
    throw bad("unsupported version " + std::to_string(tail_version) +
              " in the tail (this build reads version " + std::to_string(partition_file_version) +
              ")");
  if (reserved != 0) throw bad("unsupported tail flags " + std::to_string(reserved));
  const auto room = static_cast<std::uint64_t>(size) - header_bytes - tail_bytes;
  if (footer_bytes > room)
    throw bad("the footer claims " + std::to_string(footer_bytes) + " bytes but only " +
              std::to_string(room) + " lie between the header and the tail");
  const auto footer_at = size - static_cast<size_type>(tail_bytes + footer_bytes);
  std::vector<std::uint8_t> footer(static_cast<std::size_t>(footer_bytes));
  file.pread_all(footer.data(), footer.size(), footer_at);
  if (checksum(footer.data(), footer.size()) != footer_sum) throw bad("footer checksum mismatch");

  partition_file_info info;
  info.file_bytes = size;
  info.footer_bytes = static_cast<size_type>(footer_bytes);
  info.footer_checksum = footer_sum;
  byte_reader r(footer, path);
  auto columns = r.get<std::uint32_t>("the column count");
  r.need_items(columns, min_column_entry_bytes, "columns");
  std::unordered_set<std::string> seen;
  for (std::uint32_t c = 0; c < columns; ++c) {
    auto n = r.get<std::uint32_t>("a column name's length");
    partition_column col;
    col.name = r.get_string(n, "a column name");
    auto type = r.get<std::uint8_t>("a column type");
    auto cflags = r.get<std::uint8_t>("a column's flags");
    if (type >= type_count)
      r.fail("column '" + col.name + "' has unknown type " + std::to_string(type));
    if ((cflags & ~column_nullable) != 0)
      r.fail("column '" + col.name + "' has unknown flags " + std::to_string(cflags));
    if (!seen.insert(col.name).second) r.fail("column '" + col.name + "' appears twice");
    col.type = static_cast<type_id>(type);
    col.nullable = (cflags & column_nullable) != 0;
    info.columns.push_back(std::move(col));
  }
  auto rows = r.get<std::uint64_t>("the row count");
  auto group_rows = r.get<std::uint64_t>("the row group size");
  auto groups = r.get<std::uint32_t>("the row group count");
  if (rows > static_cast<std::uint64_t>(std::numeric_limits<size_type>::max()) || group_rows == 0 ||
      group_rows > static_cast<std::uint64_t>(std::numeric_limits<size_type>::max()))
    r.fail("a row count of " + std::to_string(rows) + " in row groups of " +
           std::to_string(group_rows));
  if (columns == 0 && rows != 0) r.fail(std::to_string(rows) + " rows without columns");
  auto expected_groups = rows / group_rows + (rows % group_rows != 0 ? 1 : 0);
  if (groups != expected_groups)
    r.fail(std::to_string(groups) + " row groups for " + std::to_string(rows) +
           " rows in groups of " + std::to_string(group_rows));
  info.rows = static_cast<size_type>(rows);
  info.row_group_rows = static_cast<size_type>(group_rows);
  r.need_items(groups, 8 + std::size_t{columns} * min_chunk_record_bytes, "row groups");

  // Chunks tile [header, footer) in order, so every byte of the file is under a checksum.
  size_type at = header_bytes;
  for (std::uint32_t gi = 0; gi < groups; ++gi) {
    row_group_info g;
    g.first_row = static_cast<size_type>(gi) * info.row_group_rows;
    auto grows = r.get<std::uint64_t>("a row group's row count");
    auto want = std::min<std::uint64_t>(group_rows, rows - static_cast<std::uint64_t>(g.first_row));
    if (grows != want)
      r.fail("row group " + std::to_string(gi) + " claims " + std::to_string(grows) +
             " rows instead of " + std::to_string(want));
    g.rows = static_cast<size_type>(grows);
    for (std::uint32_t c = 0; c < columns; ++c) {
      const auto& col = info.columns[c];
      auto where = chunk_name(info, gi, c);
      chunk_info k;
      auto offset = r.get<std::uint64_t>("a chunk offset");
      auto stored = r.get<std::uint64_t>("a chunk's stored size");
      auto raw = r.get<std::uint64_t>("a chunk's raw size");
      k.checksum = r.get<std::uint64_t>("a chunk checksum");
      auto codec = r.get<std::uint8_t>("a chunk codec");
      if (offset != static_cast<std::uint64_t>(at))
        r.fail(where + " starts at byte " + std::to_string(offset) + " instead of " +
               std::to_string(at));
      if (stored == 0 || stored > static_cast<std::uint64_t>(footer_at - at))
        r.fail(where + " claims " + std::to_string(stored) + " bytes but " +
               std::to_string(footer_at - at) + " remain before the footer");
      if (codec > static_cast<std::uint8_t>(compression_codec::zstd))
        r.fail(where + " has unknown codec " + std::to_string(codec));
      k.codec = static_cast<compression_codec>(codec);
      if (k.codec == compression_codec::none && raw != stored)
        r.fail(where + " is not compressed but claims " + std::to_string(raw) + " raw bytes for " +
               std::to_string(stored) + " stored");
      if (k.codec == compression_codec::zstd && raw / max_zstd_ratio > stored)
        r.fail(where + " claims " + std::to_string(raw) + " raw bytes from " +
               std::to_string(stored) + " compressed, more than zstd can expand");
      // Divisions first, so that no product of claimed sizes can overflow.
      bool is_string = col.type == type_id::string;
      std::uint64_t width = is_string ? sizeof(size_type) : size_of(col.type);
      std::uint64_t fixed = (col.nullable ? bitmap_bytes(g.rows) : 0) + (is_string ? width : 0);
      bool sized = raw >= fixed && grows <= (raw - fixed) / width &&
                   (is_string || raw - fixed == grows * width);
      if (!sized)
        r.fail(where + " has " + std::to_string(raw) + " raw bytes, which cannot hold " +
               std::to_string(grows) + " rows of " + std::string(to_string(col.type)));
      k.offset = at;
      k.stored_bytes = static_cast<size_type>(stored);
      k.raw_bytes = static_cast<size_type>(raw);
      k.stats = read_chunk_stats(r, col.type);
      if (!col.nullable && k.stats.null_count != 0)
        r.fail(where + " counts nulls in a column that is not nullable");
      if (!is_floating(col.type) && k.stats.nan_count != 0)
        r.fail(where + " counts NaNs in a column of " + std::string(to_string(col.type)));
      if (k.stats.null_count > g.rows || k.stats.nan_count > g.rows - k.stats.null_count)
        r.fail(where + " counts more nulls and NaNs than rows");
      bool has_values = k.stats.null_count + k.stats.nan_count < g.rows;
      if (has_values != k.stats.has_min_max())
        r.fail(where + (has_values ? " has values but no min/max" : " has min/max but no values"));
      at += k.stored_bytes;
      g.chunks.push_back(std::move(k));
    }
    info.row_groups.push_back(std::move(g));
  }
  if (r.remaining() != 0)
    r.fail(std::to_string(r.remaining()) + " bytes follow the last row group");
  if (at != footer_at)
    throw bad("the chunks end at byte " + std::to_string(at) + " but the footer starts at " +
              std::to_string(footer_at));
  for (std::size_t c = 0; c < info.columns.size(); ++c)
    info.stats.push_back(merge_stats(info.columns[c].type, info.row_groups, c));
  return info;
}

// Scratch memory from the reader's resource, grown as chunks need it.
class scratch {
 public:
  explicit scratch(memory_resource& mr) : _mr(mr) {}
  std::uint8_t* get(std::size_t n) {
    if (_buf.empty() || _buf.size() < n) _buf = buffer(n, _mr);
    return _buf.data_as<std::uint8_t>();
  }

 private:
  memory_resource& _mr;
  buffer _buf;
};

// One projected column being filled row group by row group.
struct column_builder {
  explicit column_builder(std::size_t i) : index(i) {}
  std::size_t index;  // in the schema
  buffer data;        // values, or a string column's characters
  buffer offsets;
  buffer mask;
  size_type chars_done = 0;
};

void decode_chunk(const fs::path& path, const partition_file_info& info, std::size_t g,
                  column_builder& out, std::span<const std::uint8_t> raw) {
  const auto& col = info.columns[out.index];
  const auto& group = info.row_groups[g];
  const auto& k = group.chunks[out.index];
  const size_type rows = group.rows;
  auto damaged = [&](const std::string& why) {
    return invalid_input(named(path) + chunk_name(info, g, out.index) + ": " + why);
  };
  std::size_t mask_bytes = col.nullable ? bitmap_bytes(rows) : 0;
  if (col.nullable) {
    auto valid = count_set_bits(raw.data(), rows);
    if (rows - valid != k.stats.null_count)
      throw damaged("its bitmap holds " + std::to_string(rows - valid) +
                    " nulls but the footer counts " + std::to_string(k.stats.null_count));
    copy_bits(raw.data(), 0, out.mask.data_as<std::uint8_t>(), group.first_row, rows);
  }
  auto body = raw.subspan(mask_bytes);
  if (col.type == type_id::string) {
    std::size_t offsets_bytes = static_cast<std::size_t>(rows + 1) * sizeof(size_type);
    auto chars = body.subspan(offsets_bytes);
    auto* dst = out.offsets.data_as<size_type>() + group.first_row;
    size_type prev = 0;
    for (size_type i = 0; i <= rows; ++i) {
      size_type o;
      std::memcpy(&o, body.data() + static_cast<std::size_t>(i) * sizeof(size_type), sizeof o);
      if ((i == 0 && o != 0) || o < prev || o > static_cast<size_type>(chars.size()))
        throw damaged("string offset " + std::to_string(i) + " is " + std::to_string(o) +
                      " (after " + std::to_string(prev) + ", of " + std::to_string(chars.size()) +
                      " characters)");
      dst[i] = out.chars_done + o;
      prev = o;
    }
    if (prev != static_cast<size_type>(chars.size()))
      throw damaged("its strings end at " + std::to_string(prev) + " of " +
                    std::to_string(chars.size()) + " characters");
    if (!chars.empty())
      std::memcpy(out.data.data_as<std::uint8_t>() + out.chars_done, chars.data(), chars.size());
    out.chars_done += static_cast<size_type>(chars.size());
    return;
  }
  if (col.type == type_id::bool8) {
    std::uint8_t high = 0;
    for (auto b : body) high |= b;
    if ((high & 0xfe) != 0) throw damaged("a bool value is neither 0 nor 1");
  }
  auto width = static_cast<std::size_t>(size_of(col.type));
  std::memcpy(out.data.data_as<std::uint8_t>() + static_cast<std::size_t>(group.first_row) * width,
              body.data(), body.size());
}

}  // namespace

std::string_view to_string(compression_codec c) noexcept {
  return c == compression_codec::zstd ? "zstd" : "none";
}

size_type partition_file_info::index_of(std::string_view name) const {
  for (std::size_t i = 0; i < columns.size(); ++i)
    if (columns[i].name == name) return static_cast<size_type>(i);
  std::string have;
  for (const auto& c : columns) have += (have.empty() ? "" : ", ") + c.name;
  throw invalid_input("unknown column '" + std::string(name) +
                      "' (the file has: " + (have.empty() ? "no columns" : have) + ")");
}

std::vector<std::string> partition_file_info::names() const {
  std::vector<std::string> out;
  for (const auto& c : columns) out.push_back(c.name);
  return out;
}

size_type partition_file_info::raw_bytes() const noexcept {
  size_type n = 0;
  for (const auto& g : row_groups)
    for (const auto& k : g.chunks) n += k.raw_bytes;
  return n;
}

partition_file_info write_partition_file(const fs::path& path, const table_view& table,
                                         const partition_write_options& options) {
  check_write_options(path, options, table.num_rows());
  for (size_type c = 0; c < table.num_columns(); ++c)
    EMBER_EXPECTS(table.column(c).kind() != memory_kind::device, invalid_input,
                  named(path) + "cannot write column '" + table.names()[c] +
                      "': it is in device memory (copy it to the host first)");
  file_descriptor file(path, O_WRONLY | O_CREAT | O_TRUNC);
  try {
    auto info = write_file(path, table, options, file);
    if (options.sync) file.sync();
    file.close();
    if (options.sync) sync_folder(path);
    return info;
  } catch (...) {
    std::error_code ec;
    fs::remove(path, ec);
    throw;
  }
}

partition_file_info read_partition_info(const fs::path& path) {
  file_descriptor file(path, O_RDONLY);
  return read_info(path, file);
}

table read_partition_file(const fs::path& path, const std::vector<std::string>& columns,
                          memory_resource& mr) {
  return read_partition_file(path, columns, mr, {});
}

table read_partition_file(const fs::path& path, const std::vector<std::string>& columns,
                          memory_resource& mr,
                          const std::function<void(const partition_file_info&)>& check) {
  EMBER_EXPECTS(mr.kind() != memory_kind::device, invalid_input,
                named(path) + "cannot read into device memory: pass a host memory resource");
  file_descriptor file(path, O_RDONLY);
  auto info = read_info(path, file);
  if (check) check(info);
  std::vector<column_builder> out;
  std::vector<std::string> names;
  if (columns.empty()) {
    for (std::size_t c = 0; c < info.columns.size(); ++c) out.emplace_back(c);
    names = info.names();
  } else {
    for (const auto& name : columns) {
      try {
        out.emplace_back(static_cast<std::size_t>(info.index_of(name)));
      } catch (const invalid_input& e) {
        throw invalid_input(named(path) + e.what());
      }
    }
    names = columns;
  }

  // Every size below was checked against the file by read_info.
  for (auto& b : out) {
    const auto& col = info.columns[b.index];
    if (col.nullable) {
      b.mask =
          buffer(static_cast<std::size_t>(bitmask_words(info.rows)) * sizeof(bitmask_type), mr);
      std::memset(b.mask.data(), 0, b.mask.size());
    }
    if (col.type == type_id::string) {
      size_type chars = 0;
      for (const auto& g : info.row_groups)
        chars += g.chunks[b.index].raw_bytes -
                 static_cast<size_type>(col.nullable ? bitmap_bytes(g.rows) : 0) -
                 (g.rows + 1) * static_cast<size_type>(sizeof(size_type));
      b.offsets = buffer(static_cast<std::size_t>(info.rows + 1) * sizeof(size_type), mr);
      b.offsets.data_as<size_type>()[0] = 0;
      b.data = buffer(static_cast<std::size_t>(chars), mr);
    } else {
      b.data = buffer(static_cast<std::size_t>(info.rows * size_of(col.type)), mr);
    }
  }

  scratch stored_scratch(mr);
  scratch raw_scratch(mr);
  std::unique_ptr<ZSTD_DCtx, zstd_dctx_deleter> dctx;
  for (std::size_t g = 0; g < info.row_groups.size(); ++g) {
    for (auto& b : out) {
      const auto& k = info.row_groups[g].chunks[b.index];
      auto damaged = [&](const std::string& why) {
        return invalid_input(named(path) + why + " in " + chunk_name(info, g, b.index) +
                             " (chunk at byte " + std::to_string(k.offset) + ", " +
                             std::to_string(k.stored_bytes) + " bytes)");
      };
      auto stored_n = static_cast<std::size_t>(k.stored_bytes);
      auto* stored = stored_scratch.get(stored_n);
      file.pread_all(stored, stored_n, k.offset);
      if (checksum(stored, stored_n) != k.checksum) throw damaged("checksum mismatch");
      std::span<const std::uint8_t> raw(stored, stored_n);
      if (k.codec == compression_codec::zstd) {
        if (!dctx) {
          dctx.reset(ZSTD_createDCtx());
          if (!dctx)
            throw out_of_memory(named(path) + "cannot create a zstd decompression context");
        }
        auto raw_n = static_cast<std::size_t>(k.raw_bytes);
        auto content = ZSTD_getFrameContentSize(stored, stored_n);
        if (content != static_cast<unsigned long long>(raw_n))
          throw damaged("zstd frame of " +
                        (content == ZSTD_CONTENTSIZE_UNKNOWN || content == ZSTD_CONTENTSIZE_ERROR
                             ? std::string("unknown size")
                             : std::to_string(content) + " bytes") +
                        " where " + std::to_string(raw_n) + " raw bytes are recorded");
        auto* dst = raw_scratch.get(raw_n);
        auto n = ZSTD_decompressDCtx(dctx.get(), dst, raw_n, stored, stored_n);
        if (ZSTD_isError(n)) throw damaged(std::string("zstd error: ") + ZSTD_getErrorName(n));
        if (n != raw_n)
          throw damaged("zstd gave " + std::to_string(n) + " bytes instead of " +
                        std::to_string(raw_n));
        raw = std::span<const std::uint8_t>(dst, raw_n);
      }
      decode_chunk(path, info, g, b, raw);
    }
  }

  std::vector<column> cols;
  for (auto& b : out) {
    const auto& col = info.columns[b.index];
    if (col.type == type_id::string) {
      cols.emplace_back(info.rows, std::move(b.offsets), std::move(b.data), std::move(b.mask));
    } else {
      cols.emplace_back(col.type, info.rows, std::move(b.data), std::move(b.mask));
    }
  }
  try {
    return table(std::move(cols), std::move(names));
  } catch (const invalid_input& e) {
    throw invalid_input(named(path) + e.what());
  }
}

bool may_contain(const column_stats& stats, comparison op, const scalar& value) {
  if (!value.valid()) return false;
  if (stats.nan_count > 0) return true;
  if (!stats.has_min_max()) return false;
  bool stats_string = stats.min.type() == type_id::string;
  bool value_string = value.type() == type_id::string;
  EMBER_EXPECTS(stats_string == value_string, invalid_input,
                "may_contain: cannot compare a " + std::string(to_string(stats.min.type())) +
                    " column with a " + std::string(to_string(value.type())) + " value");
  if (is_floating(value.type()) && std::isnan(value.as_float())) return true;
  const int lo = compare_scalars(stats.min, value);
  const int hi = stats.max_unbounded ? 1 : compare_scalars(stats.max, value);
  switch (op) {
    case comparison::eq:
      return lo <= 0 && hi >= 0;
    case comparison::ne:
      return !(lo == 0 && hi == 0 && !stats.min_truncated && !stats.max_truncated &&
               !stats.max_unbounded);
    case comparison::lt:
      return lo < 0;
    case comparison::le:
      return lo <= 0;
    case comparison::gt:
      return hi > 0;
    case comparison::ge:
      return hi >= 0;
  }
  return true;
}

}  // namespace ember
