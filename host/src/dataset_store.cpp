#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <ember/host/column_device_view.hpp>
#include <ember/host/column_factories.hpp>
#include <ember/host/json_text.hpp>
#include <ember/host/dataset_store.hpp>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <utility>

namespace ember {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view manifest_format = "ember-dataset-manifest";
constexpr std::size_t max_manifest_bytes = std::size_t{256} << 20;
constexpr std::size_t max_name_chars = 200;
constexpr int max_json_depth = 32;
constexpr int crash_exit_code = 42;
constexpr const char* current_file = "CURRENT";
constexpr const char* current_tmp_file = ".CURRENT.tmp";
constexpr const char* lock_file = ".lock";
constexpr const char* staging_folder = "_staging";
constexpr const char* trash_folder = ".trash";

// ---- files ------------------------------------------------------------------------------------

[[noreturn]] void io_failure(const std::string& what, const fs::path& path, int err = errno) {
  throw error("dataset store: cannot " + what + " " + path.string() + ": " + std::strerror(err));
}

std::string in_quotes(std::string_view name) {
  std::string out(1, '\'');
  out += name;
  out += '\'';
  return out;
}

class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : _fd(fd) {}
  unique_fd(unique_fd&& other) noexcept : _fd(std::exchange(other._fd, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      _fd = std::exchange(other._fd, -1);
    }
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }
  [[nodiscard]] int get() const noexcept { return _fd; }
  explicit operator bool() const noexcept { return _fd >= 0; }
  void reset() noexcept {
    if (_fd >= 0) ::close(_fd);
    _fd = -1;
  }
  [[nodiscard]] int release() noexcept { return std::exchange(_fd, -1); }

 private:
  int _fd = -1;
};

void sync_path(const fs::path& path, bool directory) {
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0)));
  if (!fd) io_failure("open", path);
  if (::fsync(fd.get()) != 0) io_failure("sync", path);
}
void sync_dir(const fs::path& dir) { sync_path(dir, true); }

// Writes `text` to `path` (replacing it) and fsyncs it.
void write_file_synced(const fs::path& path, std::string_view text) {
  unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) io_failure("create", path);
  const char* p = text.data();
  std::size_t n = text.size();
  while (n > 0) {
    auto w = ::write(fd.get(), p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      io_failure("write", path);
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  if (::fsync(fd.get()) != 0) io_failure("sync", path);
  if (::close(fd.release()) != 0) io_failure("close", path);
}

// The whole file; std::nullopt when it does not exist. Throws ember::invalid_input when it is
// larger than `limit` (a damaged store must not make a reader allocate without bound).
std::optional<std::string> read_small_file(const fs::path& path, std::size_t limit) {
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    io_failure("open", path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) io_failure("stat", path);
  if (!S_ISREG(st.st_mode)) throw invalid_input(path.string() + " is not a regular file");
  if (static_cast<std::uint64_t>(st.st_size) > limit) {
    throw invalid_input(path.string() + " is damaged: " + std::to_string(st.st_size) +
                        " bytes, more than the " + std::to_string(limit) + " it may hold");
  }
  std::string out(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t at = 0;
  while (at < out.size()) {
    auto r = ::read(fd.get(), out.data() + at, out.size() - at);
    if (r < 0) {
      if (errno == EINTR) continue;
      io_failure("read", path);
    }
    if (r == 0) break;
    at += static_cast<std::size_t>(r);
  }
  out.resize(at);
  return out;
}

void rename_path(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) io_failure("rename " + from.string() + " to", to);
}

// Whether `path` exists (as anything); throws ember::error when that cannot be told.
bool path_exists(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) return true;
  if (errno == ENOENT || errno == ENOTDIR) return false;
  io_failure("stat", path);
}

// Removes a file or a folder with everything in it; false (and a warning) when it cannot.
bool remove_quietly(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    logger().warn("dataset store: cannot remove {}: {}", path.string(), ec.message());
    return false;
  }
  return true;
}

// The test hook of the header's file comment.
void crash_point(std::string_view step) noexcept {
  const char* at = std::getenv("EMBER_DATASET_CRASH_AT");
  if (at != nullptr && step == at) ::_exit(crash_exit_code);
}

// ---- names --------------------------------------------------------------------------------------

std::string digits20(std::uint64_t v) {
  char text[32];
  std::snprintf(text, sizeof text, "%020llu", static_cast<unsigned long long>(v));
  return text;
}

std::optional<std::uint64_t> parse_digits20(std::string_view s) {
  if (s.size() != 20) return std::nullopt;
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.front() == '+') return std::nullopt;
  return v;
}

std::string manifest_name(std::uint64_t v) {
  std::string out = "manifest-";
  out += digits20(v);
  out += ".json";
  return out;
}
std::string version_dir_name(std::uint64_t v) {
  std::string out = "v";
  out += digits20(v);
  return out;
}
std::string partition_file_name(std::size_t index) {
  char text[48];
  std::snprintf(text, sizeof text, "part-%05zu.emb", index);
  return text;
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

bool valid_partition_file_name(std::string_view s) {
  constexpr std::string_view prefix = "part-", suffix = ".emb";
  if (s.size() <= prefix.size() + suffix.size() || s.size() > prefix.size() + 20 + suffix.size())
    return false;
  if (s.substr(0, prefix.size()) != prefix || s.substr(s.size() - suffix.size()) != suffix)
    return false;
  auto digits = s.substr(prefix.size(), s.size() - prefix.size() - suffix.size());
  return std::all_of(digits.begin(), digits.end(), is_digit);
}

std::string make_writer_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "host");
  std::string clean;
  for (const char* p = host; *p != '\0' && clean.size() < 32; ++p) {
    char c = *p;
    bool ok = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
    clean += ok ? c : '_';
  }
  if (clean.empty()) clean = "host";
  static std::mutex mutex;  // guards rng
  static std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t r = 0;
  {
    std::lock_guard lock(mutex);
    r = rng();
  }
  char tail[48];
  std::snprintf(tail, sizeof tail, "-%d-%08llx", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(r & 0xffffffffULL));
  return clean + tail;
}

std::string hex16(std::uint64_t v) {
  char text[24];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(v));
  return text;
}

std::string join(const std::vector<std::string>& items, std::size_t limit = 50) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < limit; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > limit) out += ", ... (" + std::to_string(items.size()) + " in all)";
  return out;
}

std::string describe(const std::vector<partition_column>& columns) {
  std::vector<std::string> parts;
  for (const auto& c : columns) parts.push_back(c.name + " " + std::string(to_string(c.type)));
  return "(" + join(parts) + ")";
}

// ---- JSON out -----------------------------------------------------------------------------------

bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0, min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

void put_string(std::string& out, std::string_view s) { out += json_quote(s); }

// Finite doubles in the shortest form that reads back exactly; the others as strings, which
// JSON has no numbers for.
void put_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "\"nan\"";
  } else if (std::isinf(v)) {
    out += v < 0 ? "\"-inf\"" : "\"inf\"";
  } else {
    char text[64];
    auto [end, ec] = std::to_chars(text, text + sizeof text, v);
    out.append(text, end);
  }
}

// A statistics bound as JSON: a number, a bool, a string (as {"hex": ...} when its bytes are not
// UTF-8, which a truncated bound may not be), or null.
void put_scalar(std::string& out, const scalar& s, type_id type) {
  if (!s.valid()) {
    out += "null";
    return;
  }
  switch (type) {
    case type_id::int32:
    case type_id::int64:
    case type_id::timestamp_ns:
      out += std::to_string(s.as_int());
      break;
    case type_id::bool8:
      out += s.as_int() != 0 ? "true" : "false";
      break;
    case type_id::float32:
    case type_id::float64:
      put_double(out, s.as_float());
      break;
    case type_id::string:
      if (valid_utf8(s.as_string())) {
        put_string(out, s.as_string());
      } else {
        std::string hex;
        for (char c : s.as_string()) {
          char b[4];
          std::snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(c));
          hex += b;
        }
        out += "{\"hex\": \"" + hex + "\"}";
      }
      break;
  }
}

std::string format_time(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  auto secs = ms / 1000 - (ms % 1000 < 0 ? 1 : 0);
  auto frac = ms - secs * 1000;
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(frac));
  return text;
}

// The manifest's text; with `checksum`, its stored form (the canonical text plus that field).
std::string emit_manifest(const dataset_manifest& m, const std::uint64_t* checksum) {
  std::string o = "{\n  \"format\": ";
  put_string(o, manifest_format);
  o += ",\n  \"format_version\": " + std::to_string(dataset_manifest_version);
  o += ",\n  \"dataset\": ";
  put_string(o, m.dataset);
  o += ",\n  \"version\": " + std::to_string(m.version);
  o += ",\n  \"parent_version\": " + std::to_string(m.parent_version);
  o += ",\n  \"created\": ";
  put_string(o, format_time(m.created));
  o += ",\n  \"writer\": ";
  put_string(o, m.writer);
  o += ",\n  \"fence\": ";
  if (m.fence) {
    o += "{\"lock\": ";
    put_string(o, m.fence->lock);
    o += ", \"token\": " + std::to_string(m.fence->token) + "}";
  } else {
    o += "null";
  }
  o += ",\n  \"rows\": " + std::to_string(m.rows);
  o += ",\n  \"bytes\": " + std::to_string(m.bytes);
  o += ",\n  \"schema\": [";
  for (std::size_t c = 0; c < m.schema.size(); ++c) {
    o += c ? ",\n    {\"name\": " : "\n    {\"name\": ";
    put_string(o, m.schema[c].name);
    o += ", \"type\": ";
    put_string(o, to_string(m.schema[c].type));
    o += std::string(", \"nullable\": ") + (m.schema[c].nullable ? "true" : "false") + "}";
  }
  o += m.schema.empty() ? "]" : "\n  ]";
  o += ",\n  \"partitions\": [";
  for (std::size_t i = 0; i < m.partitions.size(); ++i) {
    const auto& p = m.partitions[i];
    o += i ? ",\n    {\n      \"file\": " : "\n    {\n      \"file\": ";
    put_string(o, p.file);
    o += ",\n      \"rows\": " + std::to_string(p.rows);
    o += ",\n      \"bytes\": " + std::to_string(p.bytes);
    o += ",\n      \"footer_checksum\": \"" + hex16(p.footer_checksum) + "\"";
    o += ",\n      \"stats\": [";
    for (std::size_t c = 0; c < p.stats.size(); ++c) {
      const auto& s = p.stats[c];
      auto type = c < m.schema.size() ? m.schema[c].type : type_id::int64;
      o += c ? ",\n        " : "\n        ";
      o += "{\"null_count\": " + std::to_string(s.null_count);
      o += ", \"nan_count\": " + std::to_string(s.nan_count) + ", \"min\": ";
      put_scalar(o, s.min, type);
      o += ", \"max\": ";
      put_scalar(o, s.max, type);
      o += std::string(", \"min_truncated\": ") + (s.min_truncated ? "true" : "false");
      o += std::string(", \"max_truncated\": ") + (s.max_truncated ? "true" : "false");
      o += std::string(", \"max_unbounded\": ") + (s.max_unbounded ? "true" : "false") + "}";
    }
    o += p.stats.empty() ? "]\n    }" : "\n      ]\n    }";
  }
  o += m.partitions.empty() ? "]" : "\n  ]";
  if (checksum != nullptr) o += ",\n  \"checksum\": \"xxh3:" + hex16(*checksum) + "\"";
  o += "\n}\n";
  return o;
}

std::uint64_t manifest_checksum(const dataset_manifest& m) {
  auto text = emit_manifest(m, nullptr);
  return XXH3_64bits(text.data(), text.size());
}

// ---- JSON in ------------------------------------------------------------------------------------

struct json_value {
  enum class kind : std::uint8_t { null, boolean, number, string, array, object };
  kind type = kind::null;
  bool boolean = false;
  std::string text;  // a number's literal, or a string's value
  std::vector<json_value> items;
  std::vector<std::pair<std::string, json_value>> members;
};

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// Strict RFC 8259 JSON, with a nesting limit.
class json_parser {
 public:
  json_parser(std::string_view text, const std::string& where) : _s(text), _where(where) {}

  json_value document() {
    skip_space();
    auto v = value(0);
    skip_space();
    if (_at != _s.size()) fail("text after the end of the manifest");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw invalid_input("dataset manifest " + _where + ": not valid JSON at byte " +
                        std::to_string(_at) + ": " + what);
  }
  [[nodiscard]] char peek() const noexcept { return _at < _s.size() ? _s[_at] : '\0'; }
  void skip_space() noexcept {
    while (_at < _s.size() &&
           (_s[_at] == ' ' || _s[_at] == '\n' || _s[_at] == '\r' || _s[_at] == '\t'))
      ++_at;
  }
  void expect(char c) {
    if (_at >= _s.size() || _s[_at] != c) fail(std::string("expected '") + c + "'");
    ++_at;
  }
  void literal(std::string_view word) {
    if (_s.substr(_at, word.size()) != word) fail("an unexpected character");
    _at += word.size();
  }

  json_value value(int depth) {
    if (depth > max_json_depth) fail("nested too deeply");
    if (_at >= _s.size()) fail("an unexpected end");
    json_value v;
    char c = _s[_at];
    if (c == '{') {
      v.type = json_value::kind::object;
      ++_at;
      skip_space();
      if (peek() == '}') {
        ++_at;
        return v;
      }
      for (;;) {
        skip_space();
        if (peek() != '"') fail("expected a field name");
        auto key = string();
        skip_space();
        expect(':');
        skip_space();
        auto item = value(depth + 1);
        v.members.emplace_back(std::move(key), std::move(item));
        skip_space();
        if (peek() == ',') {
          ++_at;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.type = json_value::kind::array;
      ++_at;
      skip_space();
      if (peek() == ']') {
        ++_at;
        return v;
      }
      for (;;) {
        skip_space();
        v.items.push_back(value(depth + 1));
        skip_space();
        if (peek() == ',') {
          ++_at;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.type = json_value::kind::string;
      v.text = string();
      return v;
    }
    if (c == 't' || c == 'f') {
      literal(c == 't' ? "true" : "false");
      v.type = json_value::kind::boolean;
      v.boolean = c == 't';
      return v;
    }
    if (c == 'n') {
      literal("null");
      return v;
    }
    if (c == '-' || is_digit(c)) {
      v.type = json_value::kind::number;
      v.text = number();
      return v;
    }
    fail("an unexpected character");
  }

  std::string number() {
    auto start = _at;
    if (peek() == '-') ++_at;
    if (peek() == '0') {
      ++_at;
    } else if (is_digit(peek())) {
      while (is_digit(peek())) ++_at;
    } else {
      fail("a malformed number");
    }
    if (peek() == '.') {
      ++_at;
      if (!is_digit(peek())) fail("a malformed number");
      while (is_digit(peek())) ++_at;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++_at;
      if (peek() == '+' || peek() == '-') ++_at;
      if (!is_digit(peek())) fail("a malformed number");
      while (is_digit(peek())) ++_at;
    }
    return std::string(_s.substr(start, _at - start));
  }

  std::uint32_t hex4() {
    if (_s.size() - _at < 4) fail("a truncated \\u escape");
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = _s[_at++];
      int d = is_digit(c)              ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0) fail("a malformed \\u escape");
      v = v * 16 + static_cast<std::uint32_t>(d);
    }
    return v;
  }

  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (_at >= _s.size()) fail("an unterminated string");
      auto c = static_cast<unsigned char>(_s[_at++]);
      if (c == '"') return out;
      if (c < 0x20) fail("a control character in a string");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (_at >= _s.size()) fail("an unterminated string");
      switch (_s[_at++]) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          auto cp = hex4();
          if (cp >= 0xd800 && cp <= 0xdbff) {
            if (_s.substr(_at, 2) != "\\u") fail("a lone surrogate");
            _at += 2;
            auto low = hex4();
            if (low < 0xdc00 || low > 0xdfff) fail("a lone surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            fail("a lone surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default:
          fail("a bad escape");
      }
    }
  }

  std::string_view _s;
  const std::string& _where;
  std::size_t _at = 0;
};

// Reads the manifest's JSON tree into a dataset_manifest, checking every field.
class manifest_reader {
 public:
  explicit manifest_reader(const std::string& where) : _where(where) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw invalid_input("dataset manifest " + _where + ": " + what);
  }

  // `v` must be an object with exactly these fields.
  void expect_fields(const json_value& v, const std::string& what,
                     std::initializer_list<std::string_view> keys) const {
    if (v.type != json_value::kind::object) fail(what + " is not an object");
    std::set<std::string_view> seen;
    for (const auto& [key, item] : v.members) {
      if (std::find(keys.begin(), keys.end(), key) == keys.end())
        fail("unknown field '" + key + "' in " + what);
      if (!seen.insert(key).second) fail("field '" + key + "' repeats in " + what);
    }
    for (auto key : keys)
      if (!seen.count(key)) fail("field '" + std::string(key) + "' is missing in " + what);
  }
  static const json_value& field(const json_value& v, std::string_view key) {
    for (const auto& [k, item] : v.members)
      if (k == key) return item;
    throw logic_error("manifest_reader: field checked before");
  }

  std::string text(const json_value& v, const std::string& what) const {
    if (v.type != json_value::kind::string) fail(what + " is not a string");
    return v.text;
  }
  bool boolean(const json_value& v, const std::string& what) const {
    if (v.type != json_value::kind::boolean) fail(what + " is not true or false");
    return v.boolean;
  }
  template <class T>
  T integer(const json_value& v, const std::string& what) const {
    if (v.type != json_value::kind::number) fail(what + " is not a number");
    T out{};
    const auto& s = v.text;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || end != s.data() + s.size())
      fail(what + " is not an integer in range: " + s);
    return out;
  }
  size_type count(const json_value& v, const std::string& what) const {
    auto n = integer<size_type>(v, what);
    if (n < 0) fail(what + " is negative: " + std::to_string(n));
    return n;
  }
  double real(const json_value& v, const std::string& what) const {
    if (v.type == json_value::kind::string) {
      if (v.text == "nan") return std::numeric_limits<double>::quiet_NaN();
      if (v.text == "inf") return std::numeric_limits<double>::infinity();
      if (v.text == "-inf") return -std::numeric_limits<double>::infinity();
    }
    if (v.type != json_value::kind::number) fail(what + " is not a number");
    double out = 0;
    const auto& s = v.text;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || end != s.data() + s.size()) fail(what + " is out of range: " + s);
    return out;
  }
  std::uint64_t hex(const std::string& s, const std::string& what) const {
    std::uint64_t out = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
    if (s.size() != 16 || ec != std::errc() || end != s.data() + s.size() ||
        std::any_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'F'; }))
      fail(what + " is not 16 lowercase hex digits: " + s);
    return out;
  }

  scalar bound(const json_value& v, type_id type, const std::string& what) const {
    if (v.type == json_value::kind::null) return scalar::null(type);
    switch (type) {
      case type_id::int32: {
        auto i = integer<std::int32_t>(v, what);
        return scalar::int32(i);
      }
      case type_id::int64:
        return scalar::int64(integer<std::int64_t>(v, what));
      case type_id::timestamp_ns:
        return scalar::timestamp(integer<std::int64_t>(v, what));
      case type_id::bool8:
        return scalar::boolean(boolean(v, what));
      case type_id::float32:
        return scalar::float32(static_cast<float>(real(v, what)));
      case type_id::float64:
        return scalar::float64(real(v, what));
      case type_id::string:
        break;
    }
    if (v.type == json_value::kind::object) {
      expect_fields(v, what, {"hex"});
      auto h = text(field(v, "hex"), what + " hex");
      if (h.size() % 2 != 0) fail(what + " hex has an odd number of digits");
      std::string bytes;
      for (std::size_t i = 0; i < h.size(); i += 2) {
        unsigned value = 0;
        auto [end, ec] = std::from_chars(h.data() + i, h.data() + i + 2, value, 16);
        if (ec != std::errc() || end != h.data() + i + 2) fail(what + " hex is malformed");
        bytes += static_cast<char>(value);
      }
      return scalar::string(std::move(bytes));
    }
    return scalar::string(text(v, what));
  }

  std::chrono::system_clock::time_point time(const std::string& s) const {
    // YYYY-MM-DDTHH:MM:SS.mmmZ
    static constexpr std::string_view shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    bool ok = s.size() == shape.size();
    for (std::size_t i = 0; ok && i < s.size(); ++i)
      ok = shape[i] == 'd' ? is_digit(s[i]) : s[i] == shape[i];
    if (!ok) fail("created is not a time like 2024-01-31T12:00:00.000Z: " + s);
    auto num = [&](std::size_t at, std::size_t n) { return std::stoi(s.substr(at, n)); };
    std::tm tm{};
    tm.tm_year = num(0, 4) - 1900;
    tm.tm_mon = num(5, 2) - 1;
    tm.tm_mday = num(8, 2);
    tm.tm_hour = num(11, 2);
    tm.tm_min = num(14, 2);
    tm.tm_sec = num(17, 2);
    if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
      fail("created is not a valid time: " + s);
    auto secs = ::timegm(&tm);
    return std::chrono::system_clock::time_point(
        std::chrono::milliseconds(static_cast<std::int64_t>(secs) * 1000 + num(20, 3)));
  }

  column_stats column_statistics(const json_value& v, const partition_column& column,
                                 size_type rows, const std::string& what) const {
    expect_fields(v, what,
                  {"null_count", "nan_count", "min", "max", "min_truncated", "max_truncated",
                   "max_unbounded"});
    column_stats s;
    s.null_count = count(field(v, "null_count"), what + " null_count");
    s.nan_count = count(field(v, "nan_count"), what + " nan_count");
    s.min = bound(field(v, "min"), column.type, what + " min");
    s.max = bound(field(v, "max"), column.type, what + " max");
    s.min_truncated = boolean(field(v, "min_truncated"), what + " min_truncated");
    s.max_truncated = boolean(field(v, "max_truncated"), what + " max_truncated");
    s.max_unbounded = boolean(field(v, "max_unbounded"), what + " max_unbounded");
    if (s.null_count > rows || s.nan_count > rows - s.null_count)
      fail(what + " counts more nulls and NaNs than the partition's " + std::to_string(rows) +
           " rows");
    if (s.null_count > 0 && !column.nullable) fail(what + " has nulls in a non-nullable column");
    if (s.nan_count > 0 && !is_floating(column.type))
      fail(what + " has NaNs in a " + std::string(to_string(column.type)) + " column");
    bool string_flags = s.min_truncated || s.max_truncated || s.max_unbounded;
    if (string_flags && column.type != type_id::string)
      fail(what + " has string bound flags on a " + std::string(to_string(column.type)) +
           " column");
    bool consistent =
        s.min.valid() ? (s.max.valid() != s.max_unbounded) && !(s.max_truncated && s.max_unbounded)
                      : !s.max.valid() && !string_flags;
    if (!consistent) fail(what + " has inconsistent min/max bounds");
    return s;
  }

  dataset_manifest read(const json_value& root) const {
    const std::string top = "the manifest";
    expect_fields(root, top,
                  {"format", "format_version", "dataset", "version", "parent_version", "created",
                   "writer", "fence", "rows", "bytes", "schema", "partitions", "checksum"});
    if (text(field(root, "format"), "format") != manifest_format)
      fail("not an ember dataset manifest (format is not \"" + std::string(manifest_format) +
           "\")");
    auto format_version = integer<std::int64_t>(field(root, "format_version"), "format_version");
    if (format_version != dataset_manifest_version)
      fail("format version " + std::to_string(format_version) +
           " is not supported (this build reads version " +
           std::to_string(dataset_manifest_version) + ")");
    dataset_manifest m;
    m.dataset = text(field(root, "dataset"), "dataset");
    try {
      dataset_store::validate_name(m.dataset);
    } catch (const invalid_input& e) {
      fail(e.what());
    }
    m.version = integer<std::uint64_t>(field(root, "version"), "version");
    m.parent_version = integer<std::uint64_t>(field(root, "parent_version"), "parent_version");
    if (m.version == 0) fail("version is 0 (versions start at 1)");
    if (m.parent_version >= m.version)
      fail("parent_version " + std::to_string(m.parent_version) + " is not below version " +
           std::to_string(m.version));
    m.created = time(text(field(root, "created"), "created"));
    m.writer = text(field(root, "writer"), "writer");
    const auto& fence = field(root, "fence");
    if (fence.type != json_value::kind::null) {
      expect_fields(fence, "fence", {"lock", "token"});
      m.fence = fence_token{text(field(fence, "lock"), "fence lock"),
                            integer<std::uint64_t>(field(fence, "token"), "fence token")};
    }
    m.rows = count(field(root, "rows"), "rows");
    m.bytes = count(field(root, "bytes"), "bytes");

    const auto& schema = field(root, "schema");
    if (schema.type != json_value::kind::array) fail("schema is not an array");
    std::set<std::string> names;
    for (std::size_t c = 0; c < schema.items.size(); ++c) {
      auto what = "schema column " + std::to_string(c);
      const auto& item = schema.items[c];
      expect_fields(item, what, {"name", "type", "nullable"});
      partition_column col;
      col.name = text(field(item, "name"), what + " name");
      auto type = text(field(item, "type"), what + " type");
      try {
        col.type = type_from_string(type);
      } catch (const invalid_input& e) {
        fail(what + " ('" + col.name + "'): " + e.what());
      }
      col.nullable = boolean(field(item, "nullable"), what + " nullable");
      if (!names.insert(col.name).second) fail("column '" + col.name + "' repeats in the schema");
      m.schema.push_back(std::move(col));
    }

    const auto& partitions = field(root, "partitions");
    if (partitions.type != json_value::kind::array) fail("partitions is not an array");
    if (!partitions.items.empty() && m.schema.empty())
      fail("the manifest has partitions but no columns");
    std::set<std::string> files;
    size_type rows = 0, bytes = 0;
    for (std::size_t i = 0; i < partitions.items.size(); ++i) {
      auto what = "partition " + std::to_string(i);
      const auto& item = partitions.items[i];
      expect_fields(item, what, {"file", "rows", "bytes", "footer_checksum", "stats"});
      dataset_partition p;
      p.file = text(field(item, "file"), what + " file");
      if (!valid_partition_file_name(p.file))
        fail(what + " file '" + p.file + "' is not a name like part-00000.emb");
      if (!files.insert(p.file).second) fail("partition file '" + p.file + "' repeats");
      what += " (" + p.file + ")";
      p.rows = count(field(item, "rows"), what + " rows");
      p.bytes = count(field(item, "bytes"), what + " bytes");
      p.footer_checksum = hex(text(field(item, "footer_checksum"), what + " footer_checksum"),
                              what + " footer_checksum");
      const auto& stats = field(item, "stats");
      if (stats.type != json_value::kind::array || stats.items.size() != m.schema.size())
        fail(what + " stats is not an array of one entry per column (" +
             std::to_string(m.schema.size()) + ")");
      for (std::size_t c = 0; c < stats.items.size(); ++c)
        p.stats.push_back(column_statistics(stats.items[c], m.schema[c], p.rows,
                                            what + " column '" + m.schema[c].name + "'"));
      if (__builtin_add_overflow(rows, p.rows, &rows) ||
          __builtin_add_overflow(bytes, p.bytes, &bytes))
        fail("the partitions' rows or bytes overflow");
      m.partitions.push_back(std::move(p));
    }
    if (rows != m.rows)
      fail("rows is " + std::to_string(m.rows) + " but the partitions hold " +
           std::to_string(rows));
    if (bytes != m.bytes)
      fail("bytes is " + std::to_string(m.bytes) + " but the partition files hold " +
           std::to_string(bytes));

    auto stored = text(field(root, "checksum"), "checksum");
    if (stored.rfind("xxh3:", 0) != 0) fail("checksum is not \"xxh3:<16 hex digits>\"");
    m.checksum = hex(stored.substr(5), "checksum");
    auto actual = manifest_checksum(m);
    if (actual != m.checksum)
      fail("checksum mismatch (stored " + hex16(m.checksum) + ", content " + hex16(actual) +
           "): the manifest is damaged");
    return m;
  }

 private:
  const std::string& _where;
};

// ---- dataset folders
// ------------------------------------------------------------------------------

// Locks dir/.lock (blocking). std::nullopt when the folder does not exist (any more).
std::optional<unique_fd> lock_dataset(const fs::path& dir) {
  auto path = dir / lock_file;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    unique_fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) {
      if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
      io_failure("open", path);
    }
    while (::flock(fd.get(), LOCK_EX) != 0)
      if (errno != EINTR) io_failure("lock", path);
    // remove() renames the folder while holding its lock: whoever waited holds the lock of a
    // folder that is gone, and must look again.
    struct stat held {
    }, now{};
    if (::fstat(fd.get(), &held) != 0) io_failure("stat", path);
    if (::stat(path.c_str(), &now) == 0 && now.st_ino == held.st_ino && now.st_dev == held.st_dev)
      return fd;
  }
  throw error("dataset store: cannot lock " + path.string() + ": it keeps being replaced");
}

// The version CURRENT names; std::nullopt when there is no CURRENT.
std::optional<std::uint64_t> read_current(const fs::path& dir, std::string_view name) {
  auto path = dir / current_file;
  std::optional<std::string> text;
  try {
    text = read_small_file(path, 64);
  } catch (const invalid_input& e) {
    throw invalid_input("dataset " + in_quotes(name) + ": " + e.what());
  }
  if (!text) return std::nullopt;
  auto v = text->size() == 21 && text->back() == '\n' ? parse_digits20(text->substr(0, 20))
                                                      : std::nullopt;
  if (!v || *v == 0)
    throw invalid_input("dataset " + in_quotes(name) + ": " + path.string() +
                        " is damaged: it does not hold a 20-digit version and a newline (" +
                        std::to_string(text->size()) + " bytes)");
  return v;
}

struct dataset_files {
  std::set<std::uint64_t> versions;  // with a manifest or a folder (or both)
  std::set<std::uint64_t> manifests;
  std::vector<fs::path> temporary;
};

dataset_files scan(const fs::path& dir) {
  dataset_files out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name == current_tmp_file || (name.rfind(".manifest-", 0) == 0 && name.size() > 9 &&
                                     name.substr(name.size() - 9) == ".json.tmp")) {
      out.temporary.push_back(it->path());
    } else if (name.size() == 34 && name.rfind("manifest-", 0) == 0 && name.substr(29) == ".json") {
      if (auto v = parse_digits20(std::string_view(name).substr(9, 20))) {
        out.manifests.insert(*v);
        out.versions.insert(*v);
      }
    } else if (name.size() == 21 && name[0] == 'v') {
      if (auto v = parse_digits20(std::string_view(name).substr(1))) out.versions.insert(*v);
    }
  }
  if (ec) io_failure("list", dir, ec.value());
  return out;
}

dataset_manifest load_manifest(const fs::path& dir, std::string_view name, std::uint64_t version) {
  auto path = dir / manifest_name(version);
  std::optional<std::string> text;
  try {
    text = read_small_file(path, max_manifest_bytes);
  } catch (const invalid_input& e) {
    throw invalid_input(std::string("dataset manifest ") + e.what());
  }
  if (!text)
    throw invalid_input("dataset " + in_quotes(name) + ": the manifest of version " +
                        std::to_string(version) + ", " + path.string() + ", is missing");
  auto m = parse_dataset_manifest(*text, path.string());
  if (m.dataset != name || m.version != version)
    throw invalid_input("dataset manifest " + path.string() + ": it describes version " +
                        std::to_string(m.version) + " of dataset " + in_quotes(m.dataset) +
                        ", not version " + std::to_string(version) + " of " + in_quotes(name));
  return m;
}

// Removes one version: its manifest first, so that no manifest names a folder being deleted.
void remove_version(const fs::path& dir, std::uint64_t v) {
  remove_quietly(dir / manifest_name(v));
  remove_quietly(dir / version_dir_name(v));
}

}  // namespace

// ---- manifest -----------------------------------------------------------------------------------

std::vector<std::string> dataset_manifest::names() const {
  std::vector<std::string> out;
  for (const auto& c : schema) out.push_back(c.name);
  return out;
}

std::string to_json(const dataset_manifest& manifest) {
  auto sum = manifest_checksum(manifest);
  return emit_manifest(manifest, &sum);
}

dataset_manifest parse_dataset_manifest(std::string_view json, const std::string& where) {
  auto tree = json_parser(json, where).document();
  return manifest_reader(where).read(tree);
}

// ---- writer
// ---------------------------------------------------------------------------------------

struct dataset_writer::impl {
  struct staged_partition {
    dataset_partition entry;
    std::vector<partition_column> columns;
    bool synced = false;
  };
  enum class state : std::uint8_t { open, committed, aborted };

  fs::path dir;      // ROOT/NAME
  fs::path staging;  // ROOT/NAME/_staging/<id>
  fs::path staging_lock_path;
  std::string name;
  std::string id;
  std::uint64_t base = 0;
  std::optional<fence_token> fence;
  unique_fd staging_lock;  // flock'ed while this writer lives

  std::mutex mutex;  // guards everything below
  state st = state::open;
  std::size_t next_index = 0;
  std::size_t in_flight = 0;
  std::optional<std::vector<partition_column>> schema;  // names and types of the write
  std::map<std::size_t, staged_partition> staged;

  ~impl() { abort(); }

  void expect_open(const char* doing) const {
    EMBER_EXPECTS(st == state::open, logic_error,
                  "dataset writer " + id + " of " + in_quotes(name) + ": cannot " + doing +
                      (st == state::committed ? " after commit" : " after abort"));
  }

  void release_staging() noexcept {
    std::error_code ec;
    fs::remove(staging_lock_path, ec);
    staging_lock.reset();
  }

  void abort() noexcept {
    std::lock_guard lock(mutex);
    if (st != state::open) return;
    st = state::aborted;
    // Other processes may still be writing partition files into the folder (tasks of a failed
    // job that are not finished yet): once it is renamed they cannot create files at its path,
    // and what one of them was already writing is left for clean_up (no lock file names it).
    auto gone = staging;
    gone += ".aborted";
    if (::rename(staging.c_str(), gone.c_str()) != 0) gone = staging;
    remove_quietly(gone);
    release_staging();
  }
};

dataset_writer::dataset_writer(std::unique_ptr<impl> state) : _impl(std::move(state)) {}
dataset_writer::dataset_writer(dataset_writer&&) noexcept = default;
dataset_writer& dataset_writer::operator=(dataset_writer&& other) noexcept {
  if (this != &other) {
    abort();
    _impl = std::move(other._impl);
  }
  return *this;
}
dataset_writer::~dataset_writer() = default;

const std::string& dataset_writer::dataset() const noexcept { return _impl->name; }
const std::string& dataset_writer::id() const noexcept { return _impl->id; }
std::uint64_t dataset_writer::base_version() const noexcept { return _impl->base; }
const std::filesystem::path& dataset_writer::staging_dir() const noexcept { return _impl->staging; }

void dataset_writer::abort() noexcept {
  if (_impl) _impl->abort();
}

dataset_partition dataset_writer::write_partition(const table_view& table,
                                                  const partition_write_options& options) {
  auto& s = *_impl;
  std::vector<partition_column> columns;
  for (size_type c = 0; c < table.num_columns(); ++c)
    columns.push_back({table.names()[static_cast<std::size_t>(c)], table.column(c).type(),
                       table.column(c).nullable()});
  auto same_shape = [](const std::vector<partition_column>& a,
                       const std::vector<partition_column>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
      return x.name == y.name && x.type == y.type;
    });
  };
  std::size_t index = 0;
  {
    std::lock_guard lock(s.mutex);
    s.expect_open("write a partition");
    if (!s.schema) s.schema = columns;
    EMBER_EXPECTS(same_shape(*s.schema, columns), invalid_input,
                  "dataset " + in_quotes(s.name) + ": partition " + std::to_string(s.next_index) +
                      " has the columns " + describe(columns) + ", the write's others " +
                      describe(*s.schema));
    index = s.next_index++;
    ++s.in_flight;
  }
  auto file = partition_file_name(index);
  partition_file_info info;
  try {
    info = write_partition_file(s.staging / file, table, options);
  } catch (...) {
    std::lock_guard lock(s.mutex);
    --s.in_flight;
    throw;
  }
  dataset_partition entry{file, info.rows, info.file_bytes, info.footer_checksum, info.stats};
  std::lock_guard lock(s.mutex);
  --s.in_flight;
  s.staged[index] = impl::staged_partition{entry, info.columns, options.sync};
  return entry;
}

dataset_partition dataset_writer::adopt_partition(const dataset_partition& written) {
  auto& s = *_impl;
  const auto& name = s.name;
  auto refuse = [&](const std::string& why) {
    return invalid_input("dataset " + in_quotes(name) + ": cannot adopt partition file " +
                         in_quotes(written.file) + ": " + why);
  };
  if (written.file.empty() || written.file.front() == '.' ||
      written.file.find('/') != std::string::npos || written.file == "..")
    throw refuse("not a file name in the staging folder");
  if (valid_partition_file_name(written.file))
    throw refuse("names like part-00000.emb are the writer's own");
  {
    std::lock_guard lock(s.mutex);
    s.expect_open("adopt a partition");
    ++s.in_flight;
  }
  struct in_flight_guard {
    impl& s;
    ~in_flight_guard() {
      std::lock_guard lock(s.mutex);
      --s.in_flight;
    }
  } guard{s};

  auto source = s.staging / written.file;
  if (!path_exists(source)) throw refuse("there is no such file in " + s.staging.string());
  partition_file_info info;
  try {
    info = read_partition_info(source);
  } catch (const invalid_input& e) {
    throw refuse(e.what());
  }
  auto mismatch = [&](const char* what, auto found, auto reported) {
    return refuse(std::string("its ") + what + " is " + std::to_string(found) + ", not " +
                  std::to_string(reported) + " as its writer reported");
  };
  if (info.file_bytes != written.bytes) throw mismatch("size", info.file_bytes, written.bytes);
  if (info.rows != written.rows) throw mismatch("row count", info.rows, written.rows);
  if (info.footer_checksum != written.footer_checksum)
    throw mismatch("footer checksum", info.footer_checksum, written.footer_checksum);
  if (!written.stats.empty() && written.stats != info.stats)
    throw refuse("its statistics differ from what its writer reported");

  auto same_shape = [](const std::vector<partition_column>& a,
                       const std::vector<partition_column>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
      return x.name == y.name && x.type == y.type;
    });
  };
  std::lock_guard lock(s.mutex);
  s.expect_open("adopt a partition");
  if (!s.schema) s.schema = info.columns;
  if (!same_shape(*s.schema, info.columns))
    throw refuse("it has the columns " + describe(info.columns) + ", the write's others " +
                 describe(*s.schema));
  auto index = s.next_index;
  auto file = partition_file_name(index);
  // The rename is within one folder: atomic, and the name the manifest records is this
  // writer's, so a file a retried task wrote twice is adopted at most once.
  rename_path(source, s.staging / file);
  ++s.next_index;
  dataset_partition entry{file, info.rows, info.file_bytes, info.footer_checksum, info.stats};
  s.staged[index] = impl::staged_partition{entry, info.columns, false};
  return entry;
}

std::uint64_t dataset_writer::commit(const commit_options& options) {
  auto& s = *_impl;
  std::lock_guard guard(s.mutex);
  s.expect_open("commit");
  EMBER_EXPECTS(s.in_flight == 0, logic_error,
                "dataset writer " + s.id + " of " + in_quotes(s.name) +
                    ": commit while partitions are being written");
  const auto& name = s.name;

  auto removed = [&] {
    return invalid_input("dataset " + in_quotes(name) +
                         " was removed while this write was in progress");
  };
  if (!path_exists(s.staging)) throw removed();

  // 1. Everything staged is on disk before any of it is named by a version. Files that were
  // put into the staging folder but never adopted (a retried task's first attempt) go.
  {
    std::set<std::string> names;
    for (const auto& [index, p] : s.staged) names.insert(p.entry.file);
    std::vector<fs::path> strays;
    std::error_code ec;
    for (fs::directory_iterator it(s.staging, ec), end; !ec && it != end; it.increment(ec))
      if (!names.contains(it->path().filename().string())) strays.push_back(it->path());
    for (const auto& stray : strays) remove_quietly(stray);
  }
  for (auto& [index, p] : s.staged) {
    if (!p.synced) sync_path(s.staging / p.entry.file, false);
    p.synced = true;
  }
  sync_dir(s.staging);
  crash_point("after_stage");

  // 2. One commit at a time per dataset.
  auto dataset_lock = lock_dataset(s.dir);
  if (!dataset_lock || !path_exists(s.staging)) throw removed();

  // 3. Checks, before anything changes.
  auto current = read_current(s.dir, name).value_or(0);
  if (options.expected_parent && *options.expected_parent != current) {
    auto expected = *options.expected_parent;
    if (current > expected)
      throw invalid_input("dataset " + in_quotes(name) + ": version " + std::to_string(current) +
                          " was committed since this write began at version " +
                          std::to_string(expected));
    throw invalid_input("dataset " + in_quotes(name) + " is at version " + std::to_string(current) +
                        ", not at version " + std::to_string(expected) + " as this write expected");
  }
  if (s.fence && current > 0) {
    auto parent = load_manifest(s.dir, name, current);
    if (parent.fence && parent.fence->lock == s.fence->lock && parent.fence->token > s.fence->token)
      throw invalid_input("dataset " + in_quotes(name) + ": fencing token " +
                          std::to_string(s.fence->token) + " of lock " + in_quotes(s.fence->lock) +
                          " is stale: version " + std::to_string(current) +
                          " was committed with token " + std::to_string(parent.fence->token));
  }

  // 4. The new version's number and manifest.
  auto files = scan(s.dir);
  auto latest = std::max(current, files.versions.empty() ? 0 : *files.versions.rbegin());
  auto version = latest + 1;
  dataset_manifest m;
  m.dataset = name;
  m.version = version;
  m.parent_version = current;
  m.created =
      std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch()));
  m.writer = s.id;
  m.fence = s.fence;
  if (s.schema) {
    m.schema = *s.schema;
    for (auto& c : m.schema) c.nullable = false;
  }
  for (const auto& [index, p] : s.staged) {
    for (std::size_t c = 0; c < m.schema.size(); ++c)
      m.schema[c].nullable = m.schema[c].nullable || p.columns[c].nullable;
    m.rows += p.entry.rows;
    m.bytes += p.entry.bytes;
    m.partitions.push_back(p.entry);
  }
  auto text = to_json(m);

  auto version_dir = s.dir / version_dir_name(version);
  auto manifest_path = s.dir / manifest_name(version);
  auto manifest_tmp = s.dir / ("." + manifest_name(version) + ".tmp");
  auto current_path = s.dir / current_file;
  auto current_tmp = s.dir / current_tmp_file;

  // 5.-7. Until CURRENT is renamed, a failure undoes what was done, and the staged partitions
  // go back to the staging folder so that the writer may try again.
  rename_path(s.staging, version_dir);
  try {
    sync_dir(s.dir);
    sync_dir(s.staging.parent_path());
    crash_point("after_version_dir");
    write_file_synced(manifest_tmp, text);
    crash_point("after_manifest_tmp");
    rename_path(manifest_tmp, manifest_path);
    sync_dir(s.dir);
    crash_point("after_manifest");
    if (options.before_publish) options.before_publish(version);
    write_file_synced(current_tmp, digits20(version) + "\n");
    crash_point("after_current_tmp");
    rename_path(current_tmp, current_path);
  } catch (...) {
    std::error_code ec;
    fs::remove(manifest_tmp, ec);
    fs::remove(current_tmp, ec);
    fs::remove(manifest_path, ec);
    if (::rename(version_dir.c_str(), s.staging.c_str()) != 0) {
      logger().warn("dataset store: cannot move {} back to {}: {}", version_dir.string(),
                    s.staging.string(), std::strerror(errno));
      remove_quietly(version_dir);
      s.st = impl::state::aborted;
      s.release_staging();
    }
    throw;
  }
  s.st = impl::state::committed;
  s.release_staging();
  try {
    sync_dir(s.dir);
  } catch (const error& e) {
    throw error("dataset " + in_quotes(name) + ": version " + std::to_string(version) +
                " is committed and visible, but may not survive a crash: " + e.what());
  }
  crash_point("after_current");
  return version;
}

// ---- store
// ----------------------------------------------------------------------------------------

dataset_store::dataset_store(std::filesystem::path root) : _root(std::move(root)) {
  EMBER_EXPECTS(!_root.empty(), invalid_input, "dataset store: no root folder given");
  std::error_code ec;
  fs::create_directories(_root, ec);
  if (ec) io_failure("create", _root, ec.value());
}

void dataset_store::validate_name(std::string_view name) {
  auto bad = [&](const std::string& why) {
    return invalid_input("invalid dataset name " + in_quotes(name) + ": " + why);
  };
  if (name.empty()) throw bad("it is empty");
  if (name.size() > max_name_chars)
    throw bad("it has " + std::to_string(name.size()) + " characters, more than " +
              std::to_string(max_name_chars));
  for (char c : name) {
    bool ok = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
              c == '_' || c == '-';
    if (!ok) throw bad("only letters, digits, '.', '_' and '-' are allowed");
  }
  if (name.front() == '.') throw bad("it may not start with '.'");
}

dataset_writer dataset_store::begin_write(std::string_view name, std::optional<fence_token> fence) {
  validate_name(name);
  auto dir = _root / std::string(name);
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::error_code ec;
    if (fs::create_directory(dir, ec)) sync_dir(_root);
    if (ec) io_failure("create", dir, ec.value());
    auto dataset_lock = lock_dataset(dir);
    if (!dataset_lock) continue;  // removed meanwhile: create it again
    auto state = std::make_unique<dataset_writer::impl>();
    state->dir = dir;
    state->name = std::string(name);
    state->id = make_writer_id();
    state->base = read_current(dir, name).value_or(0);
    state->fence = std::move(fence);
    auto staging_root = dir / staging_folder;
    if (fs::create_directory(staging_root, ec)) sync_dir(dir);
    if (ec) io_failure("create", staging_root, ec.value());
    state->staging = staging_root / state->id;
    state->staging_lock_path = staging_root / (state->id + ".lock");
    // The writer's own lock before its folder, both under the dataset's lock: clean_up (which
    // holds that lock) never sees the folder of a live writer without its lock held.
    state->staging_lock = unique_fd(
        ::open(state->staging_lock_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!state->staging_lock) io_failure("create", state->staging_lock_path);
    if (::flock(state->staging_lock.get(), LOCK_EX | LOCK_NB) != 0)
      io_failure("lock", state->staging_lock_path);
    if (!fs::create_directory(state->staging, ec)) {
      int err = ec ? ec.value() : EEXIST;
      state->release_staging();
      io_failure("create", state->staging, err);
    }
    return dataset_writer(std::move(state));
  }
  throw error("dataset store: cannot begin a write of " + in_quotes(name) +
              ": the dataset keeps being removed");
}

std::optional<std::uint64_t> dataset_store::current_version(std::string_view name) const {
  validate_name(name);
  return read_current(_root / std::string(name), name);
}

std::vector<std::uint64_t> dataset_store::versions(std::string_view name) const {
  validate_name(name);
  auto dir = _root / std::string(name);
  std::vector<std::uint64_t> out;
  auto v = read_current(dir, name).value_or(0);
  while (v != 0 && path_exists(dir / manifest_name(v))) {
    out.push_back(v);
    v = load_manifest(dir, name, v).parent_version;
  }
  return out;
}

dataset_manifest dataset_store::read_manifest(std::string_view name,
                                              std::optional<std::uint64_t> version) const {
  validate_name(name);
  auto dir = _root / std::string(name);
  auto current = read_current(dir, name);
  if (!current) {
    auto names = list();
    throw invalid_input("no dataset " + in_quotes(name) + " (" +
                        (names.empty() ? "the store at " + _root.string() + " is empty"
                                       : "the store has: " + join(names)) +
                        ")");
  }
  if (version && (*version == 0 || *version > *current)) {
    std::vector<std::string> kept;
    for (auto v : versions(name)) kept.push_back(std::to_string(v));
    throw invalid_input("dataset " + in_quotes(name) + " has no version " +
                        std::to_string(*version) + " (its versions: " + join(kept) + ")");
  }
  auto m = load_manifest(dir, name, *current);
  if (!version || *version == *current) return m;
  // Only versions on CURRENT's chain of parents were ever committed.
  while (m.version > *version && m.parent_version >= *version && m.parent_version != 0 &&
         path_exists(dir / manifest_name(m.parent_version)))
    m = load_manifest(dir, name, m.parent_version);
  if (m.version == *version) return m;
  std::vector<std::string> kept;
  for (auto v : versions(name)) kept.push_back(std::to_string(v));
  throw invalid_input("dataset " + in_quotes(name) + " has no version " + std::to_string(*version) +
                      " (its versions: " + join(kept) + ")");
}

std::filesystem::path dataset_store::partition_path(const dataset_manifest& manifest,
                                                    std::size_t index) const {
  EMBER_EXPECTS(index < manifest.partitions.size(), invalid_input,
                "dataset " + in_quotes(manifest.dataset) + " version " +
                    std::to_string(manifest.version) + " has no partition " +
                    std::to_string(index) + " (it has " +
                    std::to_string(manifest.partitions.size()) + ")");
  return _root / manifest.dataset / version_dir_name(manifest.version) /
         manifest.partitions[index].file;
}

table dataset_store::read_partition(const dataset_manifest& manifest, std::size_t index,
                                    const std::vector<std::string>& columns,
                                    memory_resource& mr) const {
  auto path = partition_path(manifest, index);
  for (const auto& c : columns) {
    bool known = std::any_of(manifest.schema.begin(), manifest.schema.end(),
                             [&](const partition_column& s) { return s.name == c; });
    EMBER_EXPECTS(known, invalid_input,
                  "dataset " + in_quotes(manifest.dataset) + " has no column " + in_quotes(c) +
                      " (its columns: " + join(manifest.names()) + ")");
  }
  const auto& p = manifest.partitions[index];
  auto where = "dataset " + in_quotes(manifest.dataset) + " version " +
               std::to_string(manifest.version) + ": partition file " + path.string();
  EMBER_EXPECTS(path_exists(path), invalid_input, where + " is missing");
  // The footer is checked against the manifest as the file is opened for reading.
  auto matches_manifest = [&](const partition_file_info& info) {
    auto mismatch = [&](const std::string& what) {
      return invalid_input(where + " does not match the manifest: " + what);
    };
    if (info.file_bytes != p.bytes)
      throw mismatch(std::to_string(info.file_bytes) + " bytes, the manifest says " +
                     std::to_string(p.bytes));
    if (info.footer_checksum != p.footer_checksum)
      throw mismatch("footer checksum " + hex16(info.footer_checksum) + ", the manifest says " +
                     hex16(p.footer_checksum));
    if (info.rows != p.rows)
      throw mismatch(std::to_string(info.rows) + " rows, the manifest says " +
                     std::to_string(p.rows));
    bool same = info.columns.size() == manifest.schema.size();
    for (std::size_t c = 0; same && c < info.columns.size(); ++c) {
      const auto& a = info.columns[c];
      const auto& b = manifest.schema[c];
      same = a.name == b.name && a.type == b.type && (!a.nullable || b.nullable);
    }
    if (!same)
      throw mismatch("columns " + describe(info.columns) + ", the manifest says " +
                     describe(manifest.schema));
  };
  return read_partition_file(path, columns, mr, matches_manifest);
}

table dataset_store::read(std::string_view name, std::optional<std::uint64_t> version,
                          const std::vector<std::string>& columns, memory_resource& mr) const {
  auto m = read_manifest(name, version);
  auto names = columns.empty() ? m.names() : columns;
  std::vector<type_id> types;
  for (const auto& n : names) {
    auto it = std::find_if(m.schema.begin(), m.schema.end(),
                           [&](const partition_column& c) { return c.name == n; });
    EMBER_EXPECTS(it != m.schema.end(), invalid_input,
                  "dataset " + in_quotes(name) + " has no column " + in_quotes(n) +
                      " (its columns: " + join(m.names()) + ")");
    types.push_back(it->type);
  }
  if (m.partitions.empty()) return make_empty_table(names, types, mr);
  if (m.partitions.size() == 1) return read_partition(m, 0, columns, mr);
  std::vector<table> parts;
  for (std::size_t i = 0; i < m.partitions.size(); ++i)
    parts.push_back(read_partition(m, i, columns, mr));
  std::vector<column> out;
  for (std::size_t c = 0; c < names.size(); ++c) {
    std::vector<column_view> pieces;
    for (const auto& t : parts) pieces.push_back(t.view().column(static_cast<size_type>(c)));
    out.push_back(concatenate_columns(pieces, types[c], mr));
  }
  return table(std::move(out), std::move(names));
}

std::vector<std::string> dataset_store::list() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(_root, ec), end; !ec && it != end; it.increment(ec)) {
    auto name = it->path().filename().string();
    try {
      validate_name(name);
    } catch (const invalid_input&) {
      continue;
    }
    if (path_exists(it->path() / current_file)) out.push_back(name);
  }
  if (ec) io_failure("list", _root, ec.value());
  std::sort(out.begin(), out.end());
  return out;
}

void dataset_store::remove(std::string_view name) {
  validate_name(name);
  auto dir = _root / std::string(name);
  auto unknown = [&] {
    auto names = list();
    return invalid_input("no dataset " + in_quotes(name) + " (" +
                         (names.empty() ? "the store at " + _root.string() + " is empty"
                                        : "the store has: " + join(names)) +
                         ")");
  };
  if (!path_exists(dir)) throw unknown();
  auto dataset_lock = lock_dataset(dir);
  if (!dataset_lock) throw unknown();
  auto trash = _root / trash_folder;
  std::error_code ec;
  fs::create_directory(trash, ec);
  if (ec) io_failure("create", trash, ec.value());
  auto target = trash / (std::string(name) + "." + make_writer_id());
  rename_path(dir, target);
  sync_dir(_root);
  sync_dir(trash);
  dataset_lock.reset();
  remove_quietly(target);
}

dataset_cleanup_report dataset_store::clean_up(std::size_t keep_versions) {
  EMBER_EXPECTS(keep_versions >= 1, invalid_input,
                "dataset store: clean_up must keep at least 1 version (the current one)");
  dataset_cleanup_report r;
  std::error_code ec;
  std::vector<std::string> names;
  for (fs::directory_iterator it(_root, ec), end; !ec && it != end; it.increment(ec)) {
    auto name = it->path().filename().string();
    std::error_code type_ec;
    if (!it->is_directory(type_ec)) continue;
    try {
      validate_name(name);
    } catch (const invalid_input&) {
      continue;
    }
    names.push_back(name);
  }
  if (ec) io_failure("list", _root, ec.value());
  for (const auto& name : names) {
    auto one = clean_up(std::string_view(name), keep_versions);
    r.staging += one.staging;
    r.uncommitted += one.uncommitted;
    r.expired += one.expired;
    r.temporary += one.temporary;
  }
  auto trash = _root / trash_folder;
  std::vector<fs::path> removed;
  for (fs::directory_iterator it(trash, ec), end; !ec && it != end; it.increment(ec))
    removed.push_back(it->path());
  for (const auto& p : removed)
    if (remove_quietly(p)) ++r.temporary;
  return r;
}

dataset_cleanup_report dataset_store::clean_up(std::string_view name, std::size_t keep_versions) {
  EMBER_EXPECTS(keep_versions >= 1, invalid_input,
                "dataset store: clean_up must keep at least 1 version (the current one)");
  validate_name(name);
  dataset_cleanup_report r;
  std::error_code ec;
  auto dir = _root / std::string(name);
  if (!fs::is_directory(dir, ec)) return r;
  // Under the dataset's lock no commit is half-way: what is not on CURRENT's chain is a leftover.
  auto dataset_lock = lock_dataset(dir);
  if (!dataset_lock) return r;

  // Staging folders whose writer is gone: its lock file is free or missing.
  auto staging_root = dir / staging_folder;
  std::set<std::string> writers;
  for (fs::directory_iterator it(staging_root, ec), end; !ec && it != end; it.increment(ec)) {
    auto entry = it->path().filename().string();
    if (entry.size() > 5 && entry.substr(entry.size() - 5) == ".lock")
      entry.resize(entry.size() - 5);
    writers.insert(entry);
  }
  for (const auto& id : writers) {
    auto lock_path = staging_root / (id + ".lock");
    unique_fd fd(::open(lock_path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd && errno != ENOENT) continue;                           // cannot tell: leave it
    if (fd && ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // a live writer
    if (remove_quietly(staging_root / id) && remove_quietly(lock_path)) ++r.staging;
  }

  auto files = scan(dir);
  for (const auto& t : files.temporary)
    if (remove_quietly(t)) ++r.temporary;

  // CURRENT's chain of parents. A damaged manifest on it stops the walk, and nothing below it
  // is touched: whether it is committed cannot be told.
  auto current = read_current(dir, name).value_or(0);
  std::vector<std::uint64_t> chain;
  std::uint64_t floor = 0;
  if (current != 0 && !files.manifests.count(current)) floor = current;
  for (auto v = current; v != 0 && files.manifests.count(v);) {
    chain.push_back(v);
    try {
      v = load_manifest(dir, name, v).parent_version;
    } catch (const invalid_input& e) {
      logger().warn("dataset store: clean_up leaves versions up to {} of '{}' alone: {}", v,
                    std::string(name), e.what());
      floor = v;
      break;
    }
  }
  for (auto v : files.versions) {
    auto at = std::find(chain.begin(), chain.end(), v);
    if (at != chain.end()) {
      if (static_cast<std::size_t>(at - chain.begin()) >= keep_versions) {
        remove_version(dir, v);
        ++r.expired;
      }
    } else if (v > current) {
      remove_version(dir, v);
      ++r.uncommitted;
    } else if (v > floor) {
      // Below the oldest version kept, what is left is an expiry that did not finish.
      remove_version(dir, v);
      ++(chain.empty() || v > chain.back() ? r.uncommitted : r.expired);
    }
  }
  return r;
}

}  // namespace ember
