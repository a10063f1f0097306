#include <ember/host/column_device_view.hpp>
#include <ember/host/scalar.hpp>

#include <charconv>
#include <cstdio>
#include <ctime>

namespace ember {
namespace {
template <class F>
std::string shortest(F v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

std::string iso8601(std::int64_t ns) {
  std::int64_t secs = ns / 1'000'000'000;
  std::int64_t frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    secs -= 1;
  }
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(frac));
  return buf;
}
}  // namespace

std::string scalar::to_text() const {
  if (!_valid) return {};
  switch (_type) {
    case type_id::int32:
    case type_id::int64:
      return std::to_string(_int);
    case type_id::bool8:
      return _int != 0 ? "true" : "false";
    case type_id::timestamp_ns:
      return iso8601(_int);
    case type_id::float32:
      return shortest(static_cast<float>(_float));
    case type_id::float64:
      return shortest(_float);
    case type_id::string:
      return _string;
  }
  return {};
}

scalar get_scalar(const column_view& column, size_type row) {
  EMBER_EXPECTS(column.kind() != memory_kind::device, logic_error,
                "get_scalar: the column is in device memory");
  EMBER_EXPECTS(row >= 0 && row < column.size(), invalid_input,
                "row " + std::to_string(row) + " is outside a column of " +
                    std::to_string(column.size()) + " rows");
  auto dv = column_device_view::of(column);
  if (!dv.is_valid(row)) return scalar::null(column.type());
  switch (column.type()) {
    case type_id::int32:
      return scalar::int32(dv.element<std::int32_t>(row));
    case type_id::int64:
      return scalar::int64(dv.element<std::int64_t>(row));
    case type_id::timestamp_ns:
      return scalar::timestamp(dv.element<std::int64_t>(row));
    case type_id::bool8:
      return scalar::boolean(dv.element<std::uint8_t>(row) != 0);
    case type_id::float32:
      return scalar::float32(dv.element<float>(row));
    case type_id::float64:
      return scalar::float64(dv.element<double>(row));
    case type_id::string: {
      auto s = dv.string_at(row);
      return scalar::string(std::string(s.data, static_cast<std::size_t>(s.size)));
    }
  }
  return scalar::null(column.type());
}

}  // namespace ember
