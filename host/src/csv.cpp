#include <ember/host/csv.hpp>
#include <ember/host/error.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

// How files are read:
//   1. map them; read the headers; infer the types from the first records (serially);
//   2. cut each file's data into ranges (one for a small file) and scan them in parallel, once
//      for every state the quote automaton may be in at a range's first byte (outside or inside
//      quotes, after an escape or not): the state at its end, its first record start, and how
//      many records end in it;
//   3. stitch each file's ranges in order (its data starts outside quotes, at a record) to learn
//      every range's true start state, hence its first record and its number of records: the
//      rows of the result are then known, and so is every range's first row;
//   4. allocate the result's values and string offsets from the memory resource and parse the
//      ranges in parallel straight into them; only string characters and null flags are staged
//      per range, then copied into place (in parallel) once their sizes are known.
// The automaton treats every quote as a toggle. That agrees with the strict parser on every
// input the parser accepts, so the parser of the range holding the first malformed record reports
// it; ranges after it may see garbage, which is why the error of the lowest range wins.

namespace ember {
namespace {

constexpr std::size_t no_position = std::numeric_limits<std::size_t>::max();

// ---- the file -------------------------------------------------------------------------------

// A file's bytes: mapped when it is a regular file, read into memory otherwise (pipes, /proc).
// Inputs must not change while they are read: a mapped file truncated meanwhile raises SIGBUS.
class mapped_file {
 public:
  explicit mapped_file(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, std::strerror(errno));
    struct closer {
      int fd;
      ~closer() { ::close(fd); }
    } close_on_exit{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail(path, std::strerror(errno));
    if (S_ISDIR(st.st_mode)) fail(path, "it is a directory");
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
      _size = static_cast<std::size_t>(st.st_size);
      void* map = ::mmap(nullptr, _size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (map == MAP_FAILED) fail(path, std::strerror(errno));
      _map = map;
      return;
    }
    std::array<char, 1 << 16> chunk{};
    for (;;) {
      auto n = ::read(fd, chunk.data(), chunk.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail(path, std::strerror(errno));
      if (n == 0) break;
      _copy.append(chunk.data(), static_cast<std::size_t>(n));
    }
  }
  ~mapped_file() {
    if (_map != nullptr) ::munmap(_map, _size);
  }
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;

  [[nodiscard]] std::string_view bytes() const noexcept {
    return _map != nullptr ? std::string_view(static_cast<const char*>(_map), _size) : _copy;
  }

 private:
  [[noreturn]] static void fail(const std::filesystem::path& path, const std::string& why) {
    throw invalid_input("cannot read input file '" + path.string() + "': " + why);
  }
  void* _map = nullptr;
  std::size_t _size = 0;
  std::string _copy;
};

// One input file and where its parts start.
struct source {
  explicit source(std::filesystem::path p) : path(std::move(p)), file(path) {
    auto bytes = file.bytes();
    start = bytes.data();
    end = start + bytes.size();
    begin = start;
    if (bytes.starts_with("\xEF\xBB\xBF")) begin += 3;
    body = begin;
  }
  std::filesystem::path path;
  mapped_file file;
  const char* start = nullptr;  // the file's first byte
  const char* begin = nullptr;  // after a byte order mark
  const char* body = nullptr;   // the first record after the header
  const char* end = nullptr;

  [[nodiscard]] size_type line_of(const char* at) const {
    return 1 + static_cast<size_type>(std::count(start, at, '\n'));
  }
  [[nodiscard]] std::string name() const { return path.string(); }
};

// A malformed record. Thrown inside the parser, turned into an invalid_input with file:line once
// it is known to be the first error (counting lines costs a pass over the file).
struct record_failure {
  const char* record = nullptr;  // where the record starts
  std::string message;
  const char* quote_opened = nullptr;  // an unterminated quote's position
};

[[noreturn]] void raise(const source& s, const record_failure& f) {
  std::string msg = s.name() + ":" + std::to_string(s.line_of(f.record)) + ": " + f.message;
  if (f.quote_opened != nullptr)
    msg += " (opened at line " + std::to_string(s.line_of(f.quote_opened)) + ")";
  throw invalid_input(msg);
}

// ---- text helpers ---------------------------------------------------------------------------

// Offset of the first byte of an invalid UTF-8 sequence (overlong forms, surrogates and code
// points above U+10FFFF are invalid), or no_position.
std::size_t invalid_utf8_at(std::string_view text) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    if (i + 8 <= n) {
      std::uint64_t word;
      std::memcpy(&word, p + i, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (std::size_t k = 1; k < len; ++k) {
      const unsigned cc = p[i + k];
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return i;
    i += len;
  }
  return no_position;
}

// A value as error messages show it: quoted, at most 64 bytes, control bytes (and all bytes of
// invalid UTF-8) as \xNN.
std::string shown(std::string_view v) {
  constexpr std::size_t limit = 64;
  std::string_view head = v.substr(0, limit);
  while (head.size() < v.size() && !head.empty() &&
         (static_cast<unsigned char>(v[head.size()]) & 0xC0) == 0x80)
    head.remove_suffix(1);
  const bool utf8 = invalid_utf8_at(head) == no_position;
  std::string out = "'";
  for (char ch : head) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F || (c >= 0x80 && !utf8)) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  if (head.size() < v.size()) out += "...";
  out += "'";
  return out;
}

std::string a_type(type_id t) {
  auto name = std::string(to_string(t));
  return (name.front() == 'i' ? "an " : "a ") + name;
}

std::string fields_text(std::size_t n) {
  return std::to_string(n) + (n == 1 ? " field" : " fields");
}

// ---- values ---------------------------------------------------------------------------------

enum class parse_status : std::uint8_t { ok, invalid, out_of_range };

// Floating point: from_chars with an optional leading '+', the whole text consumed.
template <class T>
parse_status parse_number(std::string_view v, T& out) noexcept {
  const char* b = v.data();
  const char* e = b + v.size();
  if (b != e && *b == '+') {
    ++b;
    if (b != e && *b == '-') return parse_status::invalid;
  }
  auto [ptr, ec] = std::from_chars(b, e, out);
  if (ptr != e || b == e) return parse_status::invalid;
  if (ec == std::errc::result_out_of_range) return parse_status::out_of_range;
  return ec == std::errc{} ? parse_status::ok : parse_status::invalid;
}

// Decimal integers with an optional sign; faster than from_chars, which matters for numeric
// files where integer fields are most of the work.
template <class T>
parse_status parse_integer(std::string_view v, T& out) noexcept {
  const char* p = v.data();
  const char* e = p + v.size();
  const bool negative = p != e && *p == '-';
  if (p != e && (*p == '-' || *p == '+')) ++p;
  if (p == e) return parse_status::invalid;
  while (p + 1 < e && *p == '0') ++p;
  const char* significant = p;
  std::uint64_t value = 0;
  if constexpr (std::endian::native == std::endian::little) {
    // Eight digits at a time (the SWAR steps of simdjson and fast_float).
    for (; e - p >= 8; p += 8) {
      std::uint64_t word;
      std::memcpy(&word, p, 8);
      if ((((word & 0xF0F0F0F0F0F0F0F0ULL) |
            (((word + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4))) !=
          0x3333333333333333ULL)
        break;
      word -= 0x3030303030303030ULL;
      word = word * 10 + (word >> 8);
      word = (((word & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
              (((word >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >>
             32;
      value = value * 100000000 + word;
    }
  }
  for (; p != e; ++p) {
    const auto digit = static_cast<unsigned>(static_cast<unsigned char>(*p) - '0');
    if (digit > 9) return parse_status::invalid;
    value = value * 10 + digit;  // wraps beyond 19 digits, which the length check catches
  }
  const auto limit = static_cast<std::uint64_t>(std::numeric_limits<T>::max()) + (negative ? 1 : 0);
  if (e - significant > 19 || value > limit) return parse_status::out_of_range;
  out = static_cast<T>(negative ? 0 - value : value);
  return parse_status::ok;
}

parse_status parse_bool(std::string_view v, bool digits, std::uint8_t& out) noexcept {
  if (v == "true" || v == "True" || v == "TRUE" || (digits && v == "1")) {
    out = 1;
  } else if (v == "false" || v == "False" || v == "FALSE" || (digits && v == "0")) {
    out = 0;
  } else {
    return parse_status::invalid;
  }
  return parse_status::ok;
}

bool read_digits(const char* p, int n, int& out) noexcept {
  out = 0;
  for (int i = 0; i < n; ++i) {
    if (p[i] < '0' || p[i] > '9') return false;
    out = out * 10 + (p[i] - '0');
  }
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

int days_in_month(int y, int m) noexcept {
  static constexpr std::array<int, 12> days{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[static_cast<std::size_t>(m - 1)];
}

// YYYY-MM-DD[(T| )HH:MM:SS[.f{1,9}][Z|(+|-)HH:MM]] into nanoseconds since the epoch, UTC.
parse_status parse_timestamp(std::string_view v, std::int64_t& out) noexcept {
  const char* p = v.data();
  const char* e = p + v.size();
  int y, mo, d;
  if (e - p < 10 || !read_digits(p, 4, y) || p[4] != '-' || !read_digits(p + 5, 2, mo) ||
      p[7] != '-' || !read_digits(p + 8, 2, d))
    return parse_status::invalid;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return parse_status::invalid;
  p += 10;
  std::int64_t secs =
      days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400;
  std::int64_t frac = 0;
  if (p != e) {
    int h, mi, s;
    if ((*p != 'T' && *p != 't' && *p != ' ') || e - p < 9 || !read_digits(p + 1, 2, h) ||
        p[3] != ':' || !read_digits(p + 4, 2, mi) || p[6] != ':' || !read_digits(p + 7, 2, s))
      return parse_status::invalid;
    if (h > 23 || mi > 59 || s > 59) return parse_status::invalid;
    secs += h * 3600 + mi * 60 + s;
    p += 9;
    if (p != e && *p == '.') {
      ++p;
      int digits = 0;
      for (; p != e && *p >= '0' && *p <= '9'; ++p) {
        if (++digits > 9) return parse_status::invalid;
        frac = frac * 10 + (*p - '0');
      }
      if (digits == 0) return parse_status::invalid;
      for (; digits < 9; ++digits) frac *= 10;
    }
    if (p != e) {
      if ((*p == 'Z' || *p == 'z') && e - p == 1) {
        p = e;
      } else if ((*p == '+' || *p == '-') && e - p == 6 && p[3] == ':') {
        int oh, om;
        if (!read_digits(p + 1, 2, oh) || !read_digits(p + 4, 2, om) || oh > 23 || om > 59)
          return parse_status::invalid;
        const int offset = oh * 3600 + om * 60;
        secs += *p == '+' ? -offset : offset;
      } else {
        return parse_status::invalid;
      }
    }
  }
  // secs * 1e9 + frac, without overflowing on the way to the most negative representable time.
  if (secs < 0 && frac > 0) {
    secs += 1;
    frac -= 1'000'000'000;
  }
  std::int64_t ns;
  if (__builtin_mul_overflow(secs, std::int64_t{1'000'000'000}, &ns) ||
      __builtin_add_overflow(ns, frac, &ns))
    return parse_status::out_of_range;
  out = ns;
  return parse_status::ok;
}

// Inference candidates, in the order they are preferred.
constexpr std::uint8_t can_int64 = 1;
constexpr std::uint8_t can_float64 = 2;
constexpr std::uint8_t can_timestamp = 4;
constexpr std::uint8_t can_bool = 8;
constexpr std::uint8_t can_any = can_int64 | can_float64 | can_timestamp | can_bool;

std::uint8_t candidates(std::string_view v, std::uint8_t mask) noexcept {
  if ((mask & can_int64) != 0) {
    std::int64_t x;
    if (parse_integer(v, x) != parse_status::ok) mask &= ~can_int64;
  }
  if ((mask & can_float64) != 0) {
    double x;
    if (parse_number(v, x) != parse_status::ok) mask &= ~can_float64;
  }
  if ((mask & can_timestamp) != 0) {
    std::int64_t x;
    if (parse_timestamp(v, x) != parse_status::ok) mask &= ~can_timestamp;
  }
  if ((mask & can_bool) != 0) {
    std::uint8_t x;
    if (parse_bool(v, false, x) != parse_status::ok) mask &= ~can_bool;
  }
  return mask;
}

type_id inferred_type(std::uint8_t mask) noexcept {
  if ((mask & can_int64) != 0) return type_id::int64;
  if ((mask & can_float64) != 0) return type_id::float64;
  if ((mask & can_timestamp) != 0) return type_id::timestamp_ns;
  if ((mask & can_bool) != 0) return type_id::bool8;
  return type_id::string;
}

// ---- the dialect and the record reader -------------------------------------------------------

enum byte_class : std::uint8_t { plain, delimiter_byte, quote_byte, escape_byte, lf_byte, cr_byte };

struct dialect {
  explicit dialect(const csv_options& o)
      : delimiter(o.delimiter),
        quote(o.quote),
        escape(o.escape),
        quoting(o.quote != '\0'),
        escaping(o.escape != '\0') {
    classes[static_cast<unsigned char>(delimiter)] = delimiter_byte;
    classes['\n'] = lf_byte;
    classes['\r'] = cr_byte;
    if (quoting) classes[static_cast<unsigned char>(quote)] = quote_byte;
    if (escaping) classes[static_cast<unsigned char>(escape)] = escape_byte;
    auto lanes = [](char c) { return 0x0101010101010101ULL * static_cast<unsigned char>(c); };
    patterns = {lanes(delimiter), lanes('\n'), lanes('\r'), lanes(quoting ? quote : delimiter),
                lanes(escaping ? escape : delimiter)};
  }
  char delimiter;
  char quote;
  char escape;
  bool quoting;
  bool escaping;
  std::array<std::uint8_t, 256> classes{};  // of bytes in unquoted fields
  // The bytes that end or change an unquoted field, each in all 8 lanes of a word (repeated
  // where the dialect has fewer).
  std::array<std::uint64_t, 5> patterns{};
};

struct field {
  const char* data;
  std::size_t size;
  bool quoted;
  [[nodiscard]] std::string_view text() const noexcept { return {data, size}; }
};

// Splits records into fields. Fields point into the file, or into a scratch buffer when
// unquoting changed them (doubled quotes, escapes); they stay valid until the next read().
class record_reader {
 public:
  record_reader(const dialect& d, const char* end, const std::vector<std::string>* names)
      : _d(d), _end(end), _names(names) {}

  // Reads the record starting at `record` (< end); returns where the next one starts.
  const char* read(const char* const record) {
    _fields.clear();
    _in_scratch.clear();
    _scratch.clear();
    const char* p = record;
    for (;;) {
      if (_d.quoting && p < _end && *p == _d.quote) {
        p = read_quoted(record, p);
      } else if (const char* q = next_special(p); q == _end || *q == _d.delimiter || *q == '\n') {
        _fields.push_back({p, static_cast<std::size_t>(q - p), false});  // the common case
        p = q;
      } else {
        p = read_unquoted(record, p);
      }
      if (p == _end) {
        _content_end = p;
        break;
      }
      if (*p == _d.delimiter) {
        ++p;
        continue;
      }
      _content_end = p;
      p += *p == '\n' ? 1 : 2;  // LF or CR LF: the field readers stop at nothing else
      break;
    }
    // The scratch buffer may have moved while it grew: resolve its fields only now.
    for (const auto& [i, offset] : _in_scratch) _fields[i].data = _scratch.data() + offset;
    return p;
  }

  [[nodiscard]] std::span<const field> fields() const noexcept { return _fields; }
  // Bytes of the last record read, which started at `record`, without its line ending.
  [[nodiscard]] size_type record_bytes(const char* record) const noexcept {
    return _content_end - record;
  }

  [[nodiscard]] std::string column_label(std::size_t i) const {
    std::string label = "column " + std::to_string(i + 1);
    if (_names != nullptr && i < _names->size()) label += " ('" + (*_names)[i] + "')";
    return label;
  }

 private:
  const char* read_unquoted(const char* record, const char* p) {
    const char* segment = p;
    bool in_scratch = false;
    std::size_t scratch_begin = 0;
    for (;;) {
      p = next_special(p);
      if (p == _end) break;
      const auto c = _d.classes[static_cast<unsigned char>(*p)];
      if (c == delimiter_byte || c == lf_byte) break;
      if (c == cr_byte) {
        if (p + 1 < _end && p[1] == '\n') break;
        throw record_failure{record, column_label(_fields.size()) +
                                         ": a carriage return not followed by a line feed "
                                         "(quote the field to keep it)"};
      }
      if (c == quote_byte) {
        throw record_failure{record, column_label(_fields.size()) +
                                         ": a quote inside an unquoted field (quote the whole "
                                         "field and double the quote)"};
      }
      // The escape character: the next byte is taken as it is.
      if (p + 1 == _end) {
        throw record_failure{record,
                             column_label(_fields.size()) + ": the escape character ends the file"};
      }
      if (!in_scratch) {
        in_scratch = true;
        scratch_begin = _scratch.size();
      }
      _scratch.append(segment, p);
      _scratch.push_back(p[1]);
      p += 2;
      segment = p;
    }
    push(segment, p, in_scratch, scratch_begin, false);
    return p;
  }

  const char* read_quoted(const char* record, const char* open) {
    const char* p = open + 1;
    const char* segment = p;
    bool in_scratch = false;
    std::size_t scratch_begin = 0;
    for (;;) {
      const char* q = next_quote_or_escape(p);
      if (q == _end) throw record_failure{record, "unterminated quoted field", open};
      const bool escaped = _d.escaping && *q == _d.escape;
      const bool doubled = !escaped && q + 1 < _end && q[1] == _d.quote;
      if (!escaped && !doubled) {
        push(segment, q, in_scratch, scratch_begin, true);
        p = q + 1;
        break;
      }
      if (escaped && q + 1 == _end) throw record_failure{record, "unterminated quoted field", open};
      if (!in_scratch) {
        in_scratch = true;
        scratch_begin = _scratch.size();
      }
      _scratch.append(segment, q);
      _scratch.push_back(q[1]);
      p = q + 2;
      segment = p;
    }
    if (p < _end && *p != _d.delimiter && *p != '\n' &&
        !(*p == '\r' && p + 1 < _end && p[1] == '\n')) {
      throw record_failure{record, column_label(_fields.size() - 1) + ": " + shown({p, 1}) +
                                       " after the closing quote (a field that holds a quote "
                                       "must be quoted whole, with the quote doubled)"};
    }
    return p;
  }

  const char* next_special(const char* p) const noexcept {
    if constexpr (std::endian::native == std::endian::little) {
      constexpr std::uint64_t ones = 0x0101010101010101ULL;
      constexpr std::uint64_t highs = 0x8080808080808080ULL;
      const auto [a, b, c, d, e] = _d.patterns;
      // Eight bytes per step (SWAR). The lowest byte flagged by each term is a true match
      // (borrows only flag bytes above one), so the lowest flagged byte is the first special.
      auto flags = [](std::uint64_t x) { return (x - ones) & ~x & highs; };
      while (_end - p >= 8) {
        std::uint64_t word;
        std::memcpy(&word, p, 8);
        const auto hits =
            flags(word ^ a) | flags(word ^ b) | flags(word ^ c) | flags(word ^ d) | flags(word ^ e);
        if (hits != 0) return p + std::countr_zero(hits) / 8;
        p += 8;
      }
    }
    while (p < _end && _d.classes[static_cast<unsigned char>(*p)] == plain) ++p;
    return p;
  }

  const char* next_quote_or_escape(const char* p) const noexcept {
    if (!_d.escaping) {
      const void* q = std::memchr(p, _d.quote, static_cast<std::size_t>(_end - p));
      return q != nullptr ? static_cast<const char*>(q) : _end;
    }
    while (p < _end && *p != _d.quote && *p != _d.escape) ++p;
    return p;
  }

  void push(const char* segment, const char* p, bool in_scratch, std::size_t scratch_begin,
            bool quoted) {
    if (in_scratch) {
      _scratch.append(segment, p);
      _in_scratch.emplace_back(_fields.size(), scratch_begin);
      _fields.push_back({nullptr, _scratch.size() - scratch_begin, quoted});
    } else {
      _fields.push_back({segment, static_cast<std::size_t>(p - segment), quoted});
    }
  }

  const dialect& _d;
  const char* _end;
  const std::vector<std::string>* _names;
  std::vector<field> _fields;
  // Fields unquoting changed, by index: their text is in the scratch buffer, at an offset (the
  // buffer may move while it grows, so their pointers are set once the record is read).
  std::vector<std::pair<std::size_t, std::size_t>> _in_scratch;
  std::string _scratch;
  const char* _content_end = nullptr;
};

// ---- options and the plan of a read ---------------------------------------------------------

void validate(const csv_options& o) {
  auto line_end = [](char c) { return c == '\n' || c == '\r'; };
  EMBER_EXPECTS(o.delimiter != '\0' && !line_end(o.delimiter), invalid_input,
                "csv_options: the delimiter cannot be NUL, CR or LF");
  EMBER_EXPECTS(o.quote == '\0' || (o.quote != o.delimiter && !line_end(o.quote)), invalid_input,
                "csv_options: the quote must differ from the delimiter, CR and LF");
  EMBER_EXPECTS(
      o.escape == '\0' || (o.escape != o.delimiter && o.escape != o.quote && !line_end(o.escape)),
      invalid_input,
      "csv_options: the escape character must differ from the delimiter, the quote (a "
      "doubled quote is always understood), CR and LF");
  EMBER_EXPECTS(o.infer_rows >= 0, invalid_input, "csv_options: infer_rows cannot be negative");
  EMBER_EXPECTS(o.max_line_bytes > 0, invalid_input, "csv_options: max_line_bytes must be > 0");
  EMBER_EXPECTS(o.threads >= 0, invalid_input, "csv_options: threads cannot be negative");
  EMBER_EXPECTS(o.split_bytes > 0, invalid_input, "csv_options: split_bytes must be > 0");
  if (o.schema) {
    EMBER_EXPECTS(!o.schema->empty(), invalid_input, "csv_options: the schema has no columns");
    for (std::size_t i = 0; i < o.schema->size(); ++i) {
      const auto& name = (*o.schema)[i].first;
      EMBER_EXPECTS(!name.empty(), invalid_input,
                    "csv_options: column " + std::to_string(i + 1) + " of the schema has no name");
      for (std::size_t j = 0; j < i; ++j)
        EMBER_EXPECTS((*o.schema)[j].first != name, invalid_input,
                      "csv_options: the schema names '" + name + "' twice");
    }
  }
}

// The unquoted texts that read as null. Most fields are not null: a bitmask of the lengths of
// the null texts turns them away before any comparison.
class null_set {
 public:
  explicit null_set(const std::vector<std::string>& values) : _values(values) {
    for (const auto& v : values)
      _lengths |= std::uint64_t{1} << std::min<std::size_t>(v.size(), 63);
  }
  [[nodiscard]] bool matches(std::string_view v) const noexcept {
    if (((_lengths >> std::min<std::size_t>(v.size(), 63)) & 1) == 0) return false;
    return std::find(_values.begin(), _values.end(), v) != _values.end();
  }

 private:
  std::vector<std::string> _values;
  std::uint64_t _lengths = 0;
};

struct column_plan {
  type_id type;
  bool inferred;
};

// What every reader of a read_csv() call shares, read-only once built.
struct reader_setup {
  explicit reader_setup(const csv_options& o) : options(o), d(o), nulls(o.null_values) {}
  const csv_options& options;
  dialect d;
  null_set nulls;
  std::vector<std::string> names;
  std::vector<column_plan> columns;
  std::string inferred_note;
};

record_failure limit_failure(const char* record, size_type bytes, size_type limit) {
  auto lines = std::count(record, record + bytes, '\n');
  std::string what = lines == 0 ? "a line of " + std::to_string(bytes) + " bytes"
                                : "a record of " + std::to_string(bytes) + " bytes over " +
                                      std::to_string(lines + 1) + " lines";
  return {record, what + " exceeds the limit of " + std::to_string(limit) +
                      " (csv_options::max_line_bytes)"};
}

void check_record(const reader_setup& setup, const record_reader& reader, const char* record) {
  const auto bytes = reader.record_bytes(record);
  if (bytes > setup.options.max_line_bytes)
    throw limit_failure(record, bytes, setup.options.max_line_bytes);
  const auto n = reader.fields().size();
  if (n != setup.names.size())
    throw record_failure{record,
                         fields_text(n) + ", expected " + std::to_string(setup.names.size())};
}

// ---- the header and the types ----------------------------------------------------------------

std::vector<std::string> read_header(const reader_setup& setup, source& s) {
  if (s.begin == s.end) throw invalid_input(s.name() + ": empty file (no header)");
  record_reader reader(setup.d, s.end, nullptr);
  std::vector<std::string> names;
  try {
    const char* next = reader.read(s.begin);
    const auto bytes = reader.record_bytes(s.begin);
    if (bytes > setup.options.max_line_bytes)
      throw limit_failure(s.begin, bytes, setup.options.max_line_bytes);
    for (const auto& f : reader.fields()) {
      const auto i = names.size();
      if (auto bad = invalid_utf8_at(f.text()); bad != no_position) {
        throw record_failure{s.begin, "invalid UTF-8 in the name of column " +
                                          std::to_string(i + 1) + " at byte " +
                                          std::to_string(bad + 1)};
      }
      // A column without a name gets the name it would have in a file without a header.
      names.emplace_back(f.size > 0 ? std::string(f.text()) : "column_" + std::to_string(i + 1));
      for (std::size_t j = 0; j < i; ++j) {
        if (names[j] == names[i]) {
          throw record_failure{s.begin, "column " + std::to_string(i + 1) + " ('" + names[i] +
                                            "') has the name of column " + std::to_string(j + 1)};
        }
      }
    }
    s.body = next;
  } catch (const record_failure& f) {
    raise(s, f);
  }
  return names;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

constexpr std::uint8_t seen_value = 16;  // beside the candidates: a non-null value was sampled

void sample_types(const reader_setup& setup, const source& s, std::vector<std::uint8_t>& masks) {
  record_reader reader(setup.d, s.end, &setup.names);
  const auto limit = setup.options.infer_rows;
  const char* p = s.body;
  for (size_type n = 0; p < s.end && (limit == 0 || n < limit); ++n) {
    const char* record = p;
    p = reader.read(p);
    check_record(setup, reader, record);
    const auto fields = reader.fields();
    for (std::size_t c = 0; c < fields.size(); ++c) {
      const auto& f = fields[c];
      if (!f.quoted && setup.nulls.matches(f.text())) continue;
      masks[c] = static_cast<std::uint8_t>(seen_value | candidates(f.text(), masks[c]));
    }
  }
}

reader_setup describe(std::vector<std::unique_ptr<source>>& sources, const csv_options& o) {
  reader_setup setup(o);
  std::vector<std::string> schema_names;
  if (o.schema)
    for (const auto& [name, type] : *o.schema) schema_names.push_back(name);

  if (o.header) {
    for (std::size_t i = 0; i < sources.size(); ++i) {
      auto names = read_header(setup, *sources[i]);
      if (i == 0 && !o.schema) {
        setup.names = std::move(names);
        continue;
      }
      const auto& expected = o.schema ? schema_names : setup.names;
      if (names != expected) {
        throw invalid_input(
            sources[i]->name() + ":1: the header (" + joined(names) + ") differs from " +
            (o.schema ? std::string("the schema") : "the header of " + sources[0]->name()) + " (" +
            joined(expected) + ")");
      }
    }
  }
  if (o.schema) {
    setup.names = std::move(schema_names);
    for (const auto& [name, type] : *o.schema) setup.columns.push_back({type, false});
    return setup;
  }
  if (!o.header) {
    // Without a header or a schema, the first record says how many columns there are.
    auto first = std::find_if(sources.begin(), sources.end(),
                              [](const auto& s) { return s->body < s->end; });
    if (first == sources.end()) {
      throw invalid_input(sources.front()->name() +
                          ": empty file (no header, and no schema to give the columns)");
    }
    record_reader reader(setup.d, (*first)->end, nullptr);
    try {
      (void)reader.read((*first)->body);
    } catch (const record_failure& f) {
      raise(**first, f);
    }
    for (std::size_t c = 0; c < reader.fields().size(); ++c)
      setup.names.push_back("column_" + std::to_string(c + 1));
  }
  std::vector<std::uint8_t> masks(setup.names.size(), can_any);
  for (const auto& s : sources) {
    try {
      sample_types(setup, *s, masks);
    } catch (const record_failure& f) {
      raise(*s, f);
    }
  }
  for (auto mask : masks)
    setup.columns.push_back(
        {(mask & seen_value) != 0 ? inferred_type(mask) : type_id::string, true});
  setup.inferred_note = " (the type inferred from the first " + std::to_string(o.infer_rows) +
                        " records; give csv_options::schema to read it as another)";
  return setup;
}

// ---- record boundaries and counts ------------------------------------------------------------

// Occurrences of `c` in [p, e), eight bytes per step (without a popcount instruction, which
// the baseline x86-64 target lacks).
std::size_t count_byte(const char* p, const char* e, char c) noexcept {
  constexpr std::uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  const std::uint64_t pattern = ones * static_cast<unsigned char>(c);
  std::size_t n = 0;
  while (e - p >= 8) {
    // Per-byte counters, summed before any of them can pass 255.
    std::uint64_t counters = 0;
    for (int i = 0; i < 255 && e - p >= 8; ++i, p += 8) {
      std::uint64_t word;
      std::memcpy(&word, p, 8);
      const auto x = word ^ pattern;
      // High bit of each byte set when that byte of x is not zero, exactly (no borrows).
      const auto nonzero = ((x & low7) + low7) | x;
      counters += (~nonzero >> 7) & ones;
    }
    constexpr std::uint64_t even_bytes = 0x00FF00FF00FF00FFULL;
    const auto pairs = (counters & even_bytes) + ((counters >> 8) & even_bytes);
    n += static_cast<std::size_t>((pairs * 0x0001000100010001ULL) >> 48);
  }
  for (; p < e; ++p) n += *p == c ? 1 : 0;
  return n;
}

// States of the quote automaton that finds where records end (every quote toggles).
enum scan_state : std::uint8_t { outside = 0, inside = 1, outside_escaped = 2, inside_escaped = 3 };

// What a range looks like from each state it may start in.
struct range_scan {
  std::array<std::uint8_t, 4> end_state{};
  std::array<const char*, 4> first_record{};  // the first record start in (begin, end], or null
  std::array<bool, 4> ends_record{};          // its last byte ends a record
  std::array<size_type, 4> record_ends{};     // line feeds that end a record
};

// Scans [b, e) from every start state (only from `outside` when `from_outside`).
range_scan scan_range(const dialect& d, const char* b, const char* e, bool from_outside) noexcept {
  range_scan out;
  if (!d.escaping) {
    // The state at a byte is the start state flipped by the parity of the quotes before it, so
    // one pass over the segments between quotes serves both start states.
    std::array<size_type, 2> ends{0, 0};
    std::array<const char*, 2> first{nullptr, nullptr};
    std::size_t parity = 0;
    for (const char* p = b;;) {
      const char* q = e;
      if (d.quoting) {
        if (const void* found = std::memchr(p, d.quote, static_cast<std::size_t>(e - p)))
          q = static_cast<const char*>(found);
      }
      if (const auto n = count_byte(p, q, '\n'); n > 0) {
        ends[parity] += static_cast<size_type>(n);
        if (first[parity] == nullptr)
          first[parity] =
              static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(q - p))) + 1;
      }
      if (q == e) break;
      parity ^= 1;
      p = q + 1;
    }
    for (std::size_t s = 0; s < 4; ++s) {
      const std::size_t start = s & 1;
      out.end_state[s] = static_cast<std::uint8_t>(start ^ parity);
      out.first_record[s] = first[start];
      out.ends_record[s] = e[-1] == '\n' && parity == start;
      out.record_ends[s] = ends[start];
    }
    return out;
  }
  for (std::size_t s = 0; s < (from_outside ? 1U : 4U); ++s) {
    auto state = static_cast<std::uint8_t>(s);
    const char* first = nullptr;
    bool ended = false;
    size_type ends = 0;
    for (const char* p = b; p < e; ++p) {
      const char c = *p;
      ended = false;
      switch (state) {
        case outside:
          if (d.quoting && c == d.quote) {
            state = inside;
          } else if (c == d.escape) {
            state = outside_escaped;
          } else if (c == '\n') {
            ended = true;
            ++ends;
            if (first == nullptr) first = p + 1;
          }
          break;
        case outside_escaped:
          state = outside;
          break;
        case inside:
          if (c == d.escape) {
            state = inside_escaped;
          } else if (c == d.quote) {
            state = outside;
          }
          break;
        default:
          state = inside;
          break;
      }
    }
    out.end_state[s] = state;
    out.first_record[s] = first;
    out.ends_record[s] = ended;
    out.record_ends[s] = ends;
  }
  return out;
}

template <class F>
void parallel_for(std::size_t n, int threads, F&& body) {
  const auto workers = std::min(n, static_cast<std::size_t>(threads));
  if (workers <= 1) {
    for (std::size_t i = 0; i < n; ++i) body(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) body(i);
  };
  std::vector<std::jthread> pool;
  pool.reserve(workers - 1);
  for (std::size_t w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
}

// Records [from, to) of one file: `from` starts a record, `to` starts the next task's first
// record or is the end of the file; `rows` records start in between.
struct parse_task {
  const source* src;
  const char* from;
  const char* to;
  size_type rows;
};

// Cuts every file into ranges, scans them in parallel and stitches them into tasks with known
// row counts, so that every task writes its rows straight into the result's buffers.
std::vector<parse_task> plan_tasks(const std::vector<std::unique_ptr<source>>& sources,
                                   const dialect& d, std::size_t split_bytes, int threads) {
  struct cut {
    const source* src;
    std::vector<const char*> bounds;  // ranges + 1
    std::vector<range_scan> scans;
  };
  std::vector<cut> cuts;
  std::vector<std::pair<std::size_t, std::size_t>> jobs;  // (cut, range)
  for (const auto& s : sources) {
    const auto bytes = static_cast<std::size_t>(s->end - s->body);
    if (bytes == 0) continue;
    const auto ranges = bytes <= split_bytes
                            ? 1
                            : std::min(bytes, std::max((bytes + split_bytes - 1) / split_bytes,
                                                       static_cast<std::size_t>(threads)));
    cut c{s.get(), {}, std::vector<range_scan>(ranges)};
    for (std::size_t k = 0; k <= ranges; ++k)
      c.bounds.push_back(
          s->body + static_cast<std::ptrdiff_t>(bytes / ranges * k + bytes % ranges * k / ranges));
    for (std::size_t k = 0; k < ranges; ++k) jobs.emplace_back(cuts.size(), k);
    cuts.push_back(std::move(c));
  }
  parallel_for(jobs.size(), threads, [&](std::size_t j) {
    auto& c = cuts[jobs[j].first];
    const auto k = jobs[j].second;
    c.scans[k] = scan_range(d, c.bounds[k], c.bounds[k + 1], k == 0);
  });

  std::vector<parse_task> tasks;
  for (const auto& c : cuts) {
    // Stitch: the data starts outside quotes, at a record; each range's end state is the next
    // one's start state.
    const auto n = c.scans.size();
    std::vector<const char*> starts(n + 1, nullptr);
    std::vector<size_type> rows(n, 0);
    starts[n] = c.bounds[n];
    std::uint8_t state = outside;
    bool at_record = true;  // the range's first byte starts a record
    for (std::size_t k = 0; k < n; ++k) {
      const auto& scan = c.scans[k];
      starts[k] = at_record ? c.bounds[k] : scan.first_record[state];
      rows[k] = (at_record ? 1 : 0) + scan.record_ends[state] - (scan.ends_record[state] ? 1 : 0);
      at_record = scan.ends_record[state];
      state = scan.end_state[state];
    }
    // A range inside one record starts none: its task is empty, where the next one starts.
    for (std::size_t k = n; k-- > 0;)
      if (starts[k] == nullptr) starts[k] = starts[k + 1];
    for (std::size_t k = 0; k < n; ++k)
      if (rows[k] > 0) tasks.push_back({c.src, starts[k], starts[k + 1], rows[k]});
  }
  return tasks;
}

// ---- parsing tasks into the result -----------------------------------------------------------

// Bytes that grow without being zero-filled: string characters are written once and copied
// once, into the result when every task's size is known.
class staging_bytes {
 public:
  void reserve(std::size_t n) {
    if (n > _capacity) grow(n - _size);
  }
  char* extend(std::size_t n) {
    if (_size + n > _capacity) grow(n);
    char* p = _data.get() + _size;
    _size += n;
    return p;
  }
  [[nodiscard]] const char* data() const noexcept { return _data.get(); }
  [[nodiscard]] std::size_t size() const noexcept { return _size; }

 private:
  void grow(std::size_t n) {
    const auto capacity = std::max({_capacity + _capacity / 2, _size + n, std::size_t{4096}});
    auto data = std::make_unique_for_overwrite<char[]>(capacity);
    if (_size > 0) std::memcpy(data.get(), _data.get(), _size);
    _data = std::move(data);
    _capacity = capacity;
  }
  std::unique_ptr<char[]> _data;
  std::size_t _size = 0;
  std::size_t _capacity = 0;
};

// A result column while tasks fill it: fixed-width values and string offsets are allocated for
// every row up front and written in place; characters and null masks are put together after.
struct column_target {
  buffer data;     // values; for strings, the characters (allocated last)
  buffer offsets;  // strings: rows + 1, each task's first written relative to its characters
  buffer mask;
};

// What a task keeps aside for its columns.
struct column_stage {
  staging_bytes chars;              // strings
  std::vector<std::uint8_t> valid;  // empty until a null is read, then one flag per row
  bool has_nulls = false;
};

class range_parser {
 public:
  range_parser(const reader_setup& setup, const source& s, std::vector<column_target>& targets)
      : _setup(setup), _reader(setup.d, s.end, &setup.names), _targets(targets) {}

  // Parses `task`, whose first row is row `first_row` of the result, and returns early when
  // `stop()` says the result is no longer wanted. Throws record_failure.
  template <class Stop>
  void parse(const parse_task& task, size_type first_row, std::vector<column_stage>& stages,
             Stop&& stop) {
    stages.resize(_targets.size());
    const char* p = task.from;
    size_type rows = 0;
    while (p < task.to) {
      if ((rows & 1023) == 0) {
        if (stop()) return;
        if (rows == 1024)
          reserve(stages, static_cast<double>(task.to - task.from) / (p - task.from));
      }
      // The counts and the parser agree on every file the parser accepts up to here; when they
      // do not, an earlier task fails, and its error wins over this one.
      EMBER_EXPECTS(rows < task.rows, logic_error,
                    "read_csv: a range holds more records than counted");
      const char* record = p;
      p = _reader.read(p);
      check_record(_setup, _reader, record);
      const auto fields = _reader.fields();
      for (std::size_t c = 0; c < fields.size(); ++c)
        convert(stages[c], c, fields[c], rows, first_row + rows, record);
      ++rows;
    }
    EMBER_EXPECTS(p == task.to && rows == task.rows, logic_error,
                  "read_csv: a range's records differ from the count of its scan");
  }

 private:
  // Sizes the character buffers for `growth` times what the first rows took.
  static void reserve(std::vector<column_stage>& stages, double growth) {
    for (auto& stage : stages) {
      if (stage.chars.size() > 0)
        stage.chars.reserve(
            static_cast<std::size_t>(static_cast<double>(stage.chars.size()) * growth * 1.05));
    }
  }

  template <class T>
  void store(std::size_t c, size_type row, T value) {
    std::memcpy(_targets[c].data.data_as<T>() + row, &value, sizeof(T));
  }

  void convert(column_stage& stage, std::size_t c, const field& f, size_type local_row,
               size_type row, const char* record) {
    const auto& plan = _setup.columns[c];
    const auto v = f.text();
    if (!f.quoted && _setup.nulls.matches(v)) {
      if (stage.valid.empty()) stage.valid.assign(static_cast<std::size_t>(local_row), 1);
      stage.valid.push_back(0);
      stage.has_nulls = true;
      if (plan.type == type_id::string) {
        _targets[c].offsets.data_as<size_type>()[row + 1] =
            static_cast<size_type>(stage.chars.size());
      } else {
        const auto bytes = static_cast<std::size_t>(size_of(plan.type));
        std::memset(_targets[c].data.data_as<char>() + row * bytes, 0, bytes);
      }
      return;
    }
    if (!stage.valid.empty()) stage.valid.push_back(1);
    auto status = parse_status::ok;
    switch (plan.type) {
      case type_id::int32: {
        std::int32_t x = 0;
        status = parse_integer(v, x);
        store(c, row, x);
        break;
      }
      case type_id::int64: {
        std::int64_t x = 0;
        status = parse_integer(v, x);
        store(c, row, x);
        break;
      }
      case type_id::float32: {
        float x = 0;
        status = parse_number(v, x);
        store(c, row, x);
        break;
      }
      case type_id::float64: {
        double x = 0;
        status = parse_number(v, x);
        store(c, row, x);
        break;
      }
      case type_id::bool8: {
        std::uint8_t x = 0;
        status = parse_bool(v, !plan.inferred, x);
        store(c, row, x);
        break;
      }
      case type_id::timestamp_ns: {
        std::int64_t x = 0;
        status = parse_timestamp(v, x);
        store(c, row, x);
        break;
      }
      case type_id::string: {
        if (auto bad = invalid_utf8_at(v); bad != no_position) throw utf8_failure(c, bad, record);
        if (!v.empty()) std::memcpy(stage.chars.extend(v.size()), v.data(), v.size());
        _targets[c].offsets.data_as<size_type>()[row + 1] =
            static_cast<size_type>(stage.chars.size());
        return;
      }
    }
    if (status != parse_status::ok) fail_value(c, v, plan, status, record);
  }

  [[nodiscard]] record_failure utf8_failure(std::size_t c, std::size_t at,
                                            const char* record) const {
    return {record,
            "invalid UTF-8 in " + _reader.column_label(c) + " at byte " + std::to_string(at + 1)};
  }

  [[noreturn]] void fail_value(std::size_t c, std::string_view v, const column_plan& plan,
                               parse_status status, const char* record) const {
    if (auto bad = invalid_utf8_at(v); bad != no_position) throw utf8_failure(c, bad, record);
    std::string msg = _reader.column_label(c) + ": " + shown(v) +
                      (status == parse_status::out_of_range
                           ? " is out of range for " + std::string(to_string(plan.type))
                           : " is not " + a_type(plan.type));
    if (plan.inferred) msg += _setup.inferred_note;
    throw record_failure{record, msg};
  }

  const reader_setup& _setup;
  record_reader _reader;
  std::vector<column_target>& _targets;
};

// Sets the validity bits of rows [first, first + rows). Words shared with a neighbouring task
// are ORed atomically; the others belong to this task alone.
void write_validity(bitmask_type* mask, size_type first, size_type rows,
                    const std::vector<std::uint8_t>& valid) {
  for (size_type r = 0; r < rows;) {
    const size_type row = first + r;
    const auto bit = static_cast<int>(row % 32);
    const size_type take = std::min<size_type>(32 - bit, rows - r);
    bitmask_type bits = 0;
    for (size_type i = 0; i < take; ++i)
      if (valid.empty() || valid[static_cast<std::size_t>(r + i)] != 0)
        bits |= bitmask_type{1} << (bit + i);
    if (take == 32) {
      mask[row / 32] = bits;
    } else {
      std::atomic_ref<bitmask_type>(mask[row / 32]).fetch_or(bits, std::memory_order_relaxed);
    }
    r += take;
  }
}

table parse_all(const std::vector<std::unique_ptr<source>>& sources, const reader_setup& setup,
                int threads, memory_resource& mr) {
  const auto tasks = plan_tasks(sources, setup.d, setup.options.split_bytes, threads);
  std::vector<size_type> first_row(tasks.size() + 1, 0);
  for (std::size_t k = 0; k < tasks.size(); ++k) first_row[k + 1] = first_row[k] + tasks[k].rows;
  const auto rows = first_row.back();

  std::vector<column_target> targets(setup.columns.size());
  for (std::size_t c = 0; c < targets.size(); ++c) {
    const auto type = setup.columns[c].type;
    if (type == type_id::string) {
      targets[c].offsets = buffer(static_cast<std::size_t>(rows + 1) * sizeof(size_type), mr);
      targets[c].offsets.data_as<size_type>()[0] = 0;
    } else {
      targets[c].data = buffer(static_cast<std::size_t>(rows * size_of(type)), mr);
    }
  }

  // The first error in file order wins: tasks after a failed one stop early, and their errors,
  // which may be artefacts of the earlier fault, are dropped.
  std::vector<std::vector<column_stage>> stages(tasks.size());
  std::vector<std::optional<record_failure>> failures(tasks.size());
  std::vector<std::exception_ptr> errors(tasks.size());
  std::atomic<std::size_t> first_failed{no_position};
  parallel_for(tasks.size(), threads, [&](std::size_t k) {
    if (k > first_failed.load(std::memory_order_relaxed)) return;
    try {
      range_parser parser(setup, *tasks[k].src, targets);
      parser.parse(tasks[k], first_row[k], stages[k],
                   [&] { return first_failed.load(std::memory_order_relaxed) < k; });
      return;
    } catch (record_failure& f) {
      failures[k] = std::move(f);
    } catch (...) {
      errors[k] = std::current_exception();
    }
    auto current = first_failed.load();
    while (k < current && !first_failed.compare_exchange_weak(current, k)) {
    }
  });
  if (const auto k = first_failed.load(); k != no_position) {
    if (failures[k]) raise(*tasks[k].src, *failures[k]);
    std::rethrow_exception(errors[k]);
  }

  // Characters and null masks, now that every task's sizes are known.
  std::vector<std::vector<size_type>> char_begin(targets.size());
  for (std::size_t c = 0; c < targets.size(); ++c) {
    bool nulls = false;
    for (const auto& s : stages) nulls = nulls || s[c].has_nulls;
    if (nulls) {
      targets[c].mask =
          buffer(static_cast<std::size_t>(bitmask_words(rows)) * sizeof(bitmask_type), mr);
      std::memset(targets[c].mask.data(), 0, targets[c].mask.size());
    }
    if (setup.columns[c].type != type_id::string) continue;
    auto& begin = char_begin[c];
    begin.assign(tasks.size() + 1, 0);
    for (std::size_t k = 0; k < tasks.size(); ++k)
      begin[k + 1] = begin[k] + static_cast<size_type>(stages[k][c].chars.size());
    targets[c].data = buffer(static_cast<std::size_t>(begin.back()), mr);
  }
  parallel_for(tasks.size(), threads, [&](std::size_t k) {
    for (std::size_t c = 0; c < targets.size(); ++c) {
      auto& t = targets[c];
      auto& stage = stages[k][c];
      if (setup.columns[c].type == type_id::string) {
        const auto base = char_begin[c][k];
        if (stage.chars.size() > 0)
          std::memcpy(t.data.data_as<char>() + base, stage.chars.data(), stage.chars.size());
        auto* offsets = t.offsets.data_as<size_type>();
        for (auto r = first_row[k] + 1; r <= first_row[k + 1]; ++r) offsets[r] += base;
      }
      if (!t.mask.empty())
        write_validity(t.mask.data_as<bitmask_type>(), first_row[k], tasks[k].rows, stage.valid);
      stage = column_stage{};
    }
  });

  std::vector<column> columns;
  columns.reserve(targets.size());
  for (std::size_t c = 0; c < targets.size(); ++c) {
    auto& t = targets[c];
    const auto type = setup.columns[c].type;
    if (type == type_id::string) {
      columns.emplace_back(rows, std::move(t.offsets), std::move(t.data), std::move(t.mask));
    } else {
      columns.emplace_back(type, rows, std::move(t.data), std::move(t.mask));
    }
  }
  return table(std::move(columns), setup.names);
}

std::vector<std::unique_ptr<source>> open_sources(const std::vector<std::filesystem::path>& paths) {
  EMBER_EXPECTS(!paths.empty(), invalid_input, "read_csv: no files given");
  std::vector<std::unique_ptr<source>> sources;
  sources.reserve(paths.size());
  for (const auto& p : paths) sources.push_back(std::make_unique<source>(p));
  return sources;
}

int thread_count(const csv_options& o) {
  if (o.threads > 0) return o.threads;
  return static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
}

}  // namespace

table read_csv(const std::vector<std::filesystem::path>& paths, const csv_options& options,
               memory_resource& mr) {
  validate(options);
  auto sources = open_sources(paths);
  const auto setup = describe(sources, options);
  return parse_all(sources, setup, thread_count(options), mr);
}

table read_csv(const std::filesystem::path& path, const csv_options& options, memory_resource& mr) {
  return read_csv(std::vector<std::filesystem::path>{path}, options, mr);
}

csv_schema infer_csv_schema(const std::vector<std::filesystem::path>& paths,
                            const csv_options& options) {
  validate(options);
  auto sources = open_sources(paths);
  const auto setup = describe(sources, options);
  csv_schema schema;
  for (std::size_t c = 0; c < setup.names.size(); ++c)
    schema.emplace_back(setup.names[c], setup.columns[c].type);
  return schema;
}

csv_schema infer_csv_schema(const std::filesystem::path& path, const csv_options& options) {
  return infer_csv_schema(std::vector<std::filesystem::path>{path}, options);
}

}  // namespace ember
