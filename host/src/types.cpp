#include <ember/host/error.hpp>
#include <ember/host/memory_resource.hpp>
#include <ember/host/types.hpp>

#include <string>

namespace ember {

std::string_view to_string(type_id t) noexcept {
  switch (t) {
    case type_id::int32:
      return "int32";
    case type_id::int64:
      return "int64";
    case type_id::float32:
      return "float32";
    case type_id::float64:
      return "float64";
    case type_id::bool8:
      return "bool";
    case type_id::timestamp_ns:
      return "timestamp";
    case type_id::string:
      return "string";
  }
  return "unknown";
}

type_id type_from_string(std::string_view name) {
  for (int i = 0; i < type_count; ++i) {
    auto t = static_cast<type_id>(i);
    if (to_string(t) == name) return t;
  }
  throw invalid_input("unknown type '" + std::string(name) +
                      "' (expected int32, int64, float32, float64, bool, timestamp or string)");
}

std::string_view to_string(memory_kind k) noexcept {
  switch (k) {
    case memory_kind::host:
      return "host";
    case memory_kind::pinned_host:
      return "pinned_host";
    case memory_kind::device:
      return "device";
  }
  return "unknown";
}

}  // namespace ember
