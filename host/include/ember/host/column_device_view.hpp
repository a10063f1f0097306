#pragma once
// Plain-data views that operator bodies read inside kernels (CUDA) and OpenMP loops (CPU).
// Everything here is trivially copyable and callable from both backends.
#include <ember/host/column.hpp>
#include <ember/host/macros.hpp>
#include <ember/host/types.hpp>

namespace ember {

/// One string value: `size` bytes at `data` (not NUL-terminated).
struct string_ref {
  const char* data;
  size_type size;

  /// Byte-wise comparison: negative, zero or positive like memcmp, shorter first on a tie.
  EMBER_HD int compare(const string_ref& other) const {
    size_type n = size < other.size ? size : other.size;
    for (size_type i = 0; i < n; ++i) {
      auto a = static_cast<unsigned char>(data[i]);
      auto b = static_cast<unsigned char>(other.data[i]);
      if (a != b) return a < b ? -1 : 1;
    }
    return size < other.size ? -1 : (size > other.size ? 1 : 0);
  }
  EMBER_HD bool operator==(const string_ref& other) const {
    if (size != other.size) return false;
    for (size_type i = 0; i < size; ++i)
      if (data[i] != other.data[i]) return false;
    return true;
  }
};

/// Validity of bit `i` of `mask` (a null mask means every row is valid).
EMBER_HD inline bool bit_is_set(const bitmask_type* mask, size_type i) {
  return mask == nullptr || ((mask[i >> 5] >> (i & 31)) & 1u) != 0;
}

/// A column_view as kernels see it.
struct column_device_view {
  type_id type;
  size_type size;
  size_type mask_offset;
  const void* data;
  const bitmask_type* null_mask;
  const size_type* offsets;
  const char* chars;

  static column_device_view of(const column_view& v) {
    return column_device_view{v.type(),      v.size(),    v.mask_offset(), v.data(),
                              v.null_mask(), v.offsets(), v.chars()};
  }
  EMBER_HD bool nullable() const { return null_mask != nullptr; }
  EMBER_HD bool is_valid(size_type i) const { return bit_is_set(null_mask, mask_offset + i); }
  template <class T>
  EMBER_HD T element(size_type i) const {
    return static_cast<const T*>(data)[i];
  }
  EMBER_HD string_ref string_at(size_type i) const {
    return string_ref{chars + offsets[i], offsets[i + 1] - offsets[i]};
  }
};

}  // namespace ember
