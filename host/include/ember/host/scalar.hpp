#pragma once
#include <cstdint>
#include <string>

#include <ember/host/column.hpp>
#include <ember/host/types.hpp>

namespace ember {

/// One typed value or a typed null, on the host: expression literals, and single cells read
/// back from host columns.
class scalar {
 public:
  scalar() = default;
  static scalar null(type_id type) { return scalar(type, false); }
  static scalar int32(std::int32_t v) { return integral(type_id::int32, v); }
  static scalar int64(std::int64_t v) { return integral(type_id::int64, v); }
  static scalar timestamp(std::int64_t ns) { return integral(type_id::timestamp_ns, ns); }
  static scalar boolean(bool v) { return integral(type_id::bool8, v ? 1 : 0); }
  static scalar float32(float v) { return floating(type_id::float32, v); }
  static scalar float64(double v) { return floating(type_id::float64, v); }
  static scalar string(std::string v) {
    scalar s(type_id::string, true);
    s._string = std::move(v);
    return s;
  }

  [[nodiscard]] type_id type() const noexcept { return _type; }
  [[nodiscard]] bool valid() const noexcept { return _valid; }
  /// The value of an int32, int64, timestamp or bool scalar.
  [[nodiscard]] std::int64_t as_int() const noexcept { return _int; }
  /// The value of a float scalar.
  [[nodiscard]] double as_float() const noexcept { return _float; }
  [[nodiscard]] const std::string& as_string() const noexcept { return _string; }
  /// The value as CSV writes it (empty for null).
  [[nodiscard]] std::string to_text() const;

  friend bool operator==(const scalar&, const scalar&) = default;

 private:
  scalar(type_id t, bool valid) : _type(t), _valid(valid) {}
  static scalar integral(type_id t, std::int64_t v) {
    scalar s(t, true);
    s._int = v;
    return s;
  }
  static scalar floating(type_id t, double v) {
    scalar s(t, true);
    s._float = v;
    return s;
  }
  type_id _type = type_id::int64;
  bool _valid = false;
  std::int64_t _int = 0;
  double _float = 0;
  std::string _string;
};

/// Row `row` of a host-memory column. Throws ember::logic_error for device memory.
[[nodiscard]] scalar get_scalar(const column_view& column, size_type row);

}  // namespace ember
