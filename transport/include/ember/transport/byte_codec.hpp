#pragma once
// Little-endian, bounds-checked byte writing and reading: the plan codec and every wire message
// are written with these. The reader never reads past its span and checks every length against
// the bytes that remain before allocating; its errors (ember::invalid_input) name what it was
// reading ("encoded plan", "message 'run_task' from peer 10.0.0.2:4101") and the byte offset.
#include <cstdint>
#include <cstring>
#include <ember/host/error.hpp>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace ember::transport {

class byte_writer {
 public:
  template <class T>
  requires std::is_integral_v<T>
  void put(T v) {
    using U = std::make_unsigned_t<T>;
    auto u = static_cast<U>(v);
    for (std::size_t i = 0; i < sizeof(T); ++i)
      _bytes.push_back(static_cast<std::uint8_t>(u >> (8 * i)));
  }
  void put_f64(double v) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    put(bits);
  }
  void put_bool(bool v) { put<std::uint8_t>(v ? 1 : 0); }
  void put_bytes(const void* p, std::size_t n) {
    auto* b = static_cast<const std::uint8_t*>(p);
    _bytes.insert(_bytes.end(), b, b + n);
  }
  void put_string(const std::string& s) {
    put_count(s.size());
    put_bytes(s.data(), s.size());
  }
  void put_strings(const std::vector<std::string>& v) {
    put_count(v.size());
    for (const auto& s : v) put_string(s);
  }
  void put_count(std::size_t n) {
    EMBER_EXPECTS(
        n <= UINT32_MAX, invalid_input,
        "cannot encode a list of " + std::to_string(n) + " entries (the limit is 2^32-1)");
    put(static_cast<std::uint32_t>(n));
  }
  [[nodiscard]] std::vector<std::uint8_t>& bytes() noexcept { return _bytes; }

 private:
  std::vector<std::uint8_t> _bytes;
};

class byte_reader {
 public:
  /// Reads `bytes`; `subject` names them in errors; `base` is their offset in a larger buffer.
  explicit byte_reader(std::span<const std::uint8_t> bytes, std::string subject = "encoded plan",
                       std::size_t base = 0)
      : _bytes(bytes), _subject(std::move(subject)), _base(base) {}

  template <class T>
  requires std::is_integral_v<T> T get(const char* what) {
    need(sizeof(T), what);
    std::make_unsigned_t<T> u = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
      u |= static_cast<std::make_unsigned_t<T>>(_bytes[_pos + i]) << (8 * i);
    _pos += sizeof(T);
    return static_cast<T>(u);
  }
  double get_f64(const char* what) {
    auto bits = get<std::uint64_t>(what);
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  bool get_bool(const char* what) {
    auto v = get<std::uint8_t>(what);
    if (v > 1) fail(std::string("bad boolean value ") + std::to_string(v) + " for " + what);
    return v == 1;
  }
  /// A u32 count of elements of at least `min_element_bytes` each, checked against what is left.
  std::size_t get_count(const char* what, std::size_t min_element_bytes) {
    auto n = static_cast<std::size_t>(get<std::uint32_t>(what));
    if (min_element_bytes > 0 && n > remaining() / min_element_bytes)
      fail(std::string(what) + ": " + std::to_string(n) + " entries cannot fit in the " +
           std::to_string(remaining()) + " bytes that remain");
    return n;
  }
  std::string get_string(const char* what) {
    auto n = get_count(what, 1);
    std::string s(reinterpret_cast<const char*>(_bytes.data() + _pos), n);
    _pos += n;
    return s;
  }
  /// An enum stored as a u8, checked to be at most `last`.
  template <class E>
  requires std::is_enum_v<E> E get_enum(E last, const char* what) {
    auto v = get<std::uint8_t>(what);
    if (v > static_cast<std::uint8_t>(last))
      fail(std::string("bad value ") + std::to_string(v) + " for " + what);
    return static_cast<E>(v);
  }
  /// A list of strings written by put_strings.
  std::vector<std::string> get_strings(const char* what) {
    auto n = get_count(what, 4);
    std::vector<std::string> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) out.push_back(get_string(what));
    return out;
  }
  /// `n` raw bytes, checked.
  std::span<const std::uint8_t> get_bytes(std::size_t n, const char* what) {
    need(n, what);
    auto s = _bytes.subspan(_pos, n);
    _pos += n;
    return s;
  }
  [[nodiscard]] std::size_t remaining() const noexcept { return _bytes.size() - _pos; }
  [[nodiscard]] std::size_t position() const noexcept { return _base + _pos; }
  [[noreturn]] void fail(const std::string& why) const {
    throw invalid_input("malformed " + _subject + " at byte " + std::to_string(position()) + ": " +
                        why);
  }

 private:
  void need(std::size_t n, const char* what) const {
    if (n > remaining())
      throw invalid_input("truncated " + _subject + ": " + std::string(what) + " needs " +
                          std::to_string(n) + " bytes at byte " + std::to_string(position()) +
                          " but only " + std::to_string(remaining()) + " remain");
  }
  std::span<const std::uint8_t> _bytes;
  std::string _subject;
  std::size_t _base;
  std::size_t _pos = 0;
};

/// FNV-1a, 64 bits: detects the flipped bits and torn writes the header's length cannot.
inline std::uint64_t fnv1a64(std::span<const std::uint8_t> bytes) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (auto b : bytes) {
    h ^= b;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace ember::transport
