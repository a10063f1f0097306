#pragma once
#include <cstddef>
#include <utility>

#include <ember/host/buffer.hpp>
#include <ember/host/error.hpp>
#include <ember/host/types.hpp>

namespace ember {

/// A non-owning view of one column: its type, rows, values and optional null bitmask, in one
/// memory kind. Cheap to copy. A view may be a slice of a larger column: `data()` and
/// `offsets()` already point at the slice's first row, while the null bitmask is shared with the
/// parent and bit `offset() + i` holds row i's validity.
class column_view {
 public:
  column_view() = default;

  /// A fixed-width column. `data` holds `size` elements of `type`; `null_mask` may be null
  /// (no nulls). `mask_offset` is the bitmask bit of row 0.
  column_view(type_id type, size_type size, const void* data, const bitmask_type* null_mask,
              memory_kind kind, size_type mask_offset = 0)
      : _type(type),
        _size(size),
        _mask_offset(mask_offset),
        _data(data),
        _null_mask(null_mask),
        _kind(kind) {}

  /// A string column: `offsets` holds size + 1 positions into `chars` (row i is
  /// chars[offsets[i], offsets[i+1])).
  static column_view strings(size_type size, const size_type* offsets, const char* chars,
                             const bitmask_type* null_mask, memory_kind kind,
                             size_type mask_offset = 0) {
    column_view v(type_id::string, size, nullptr, null_mask, kind, mask_offset);
    v._offsets = offsets;
    v._chars = chars;
    return v;
  }

  [[nodiscard]] type_id type() const noexcept { return _type; }
  [[nodiscard]] size_type size() const noexcept { return _size; }
  [[nodiscard]] bool empty() const noexcept { return _size == 0; }
  [[nodiscard]] memory_kind kind() const noexcept { return _kind; }
  /// True when a null bitmask is present (the column may hold nulls).
  [[nodiscard]] bool nullable() const noexcept { return _null_mask != nullptr; }
  [[nodiscard]] const bitmask_type* null_mask() const noexcept { return _null_mask; }
  /// Bit of the null bitmask that holds row 0's validity.
  [[nodiscard]] size_type mask_offset() const noexcept { return _mask_offset; }
  /// First element of a fixed-width column (already advanced to the slice).
  [[nodiscard]] const void* data() const noexcept { return _data; }
  template <class T>
  [[nodiscard]] const T* data() const noexcept {
    return static_cast<const T*>(_data);
  }
  /// String columns: size() + 1 offsets into chars(), already advanced to the slice.
  [[nodiscard]] const size_type* offsets() const noexcept { return _offsets; }
  [[nodiscard]] const char* chars() const noexcept { return _chars; }

  /// Rows [begin, end) of this view. Throws ember::invalid_input when out of range.
  [[nodiscard]] column_view slice(size_type begin, size_type end) const;

 private:
  type_id _type = type_id::int64;
  size_type _size = 0;
  size_type _mask_offset = 0;
  const void* _data = nullptr;
  const bitmask_type* _null_mask = nullptr;
  const size_type* _offsets = nullptr;
  const char* _chars = nullptr;
  memory_kind _kind = memory_kind::host;
};

/// Owns one column's buffers. All buffers of a column are of one memory kind.
class column {
 public:
  column() = default;
  /// A fixed-width column of `size` rows; `null_mask` may be empty (no nulls).
  column(type_id type, size_type size, buffer data, buffer null_mask = {})
      : _type(type), _size(size), _data(std::move(data)), _null_mask(std::move(null_mask)) {}
  /// A string column of `size` rows: `offsets` holds size + 1 size_type values.
  column(size_type size, buffer offsets, buffer chars, buffer null_mask = {})
      : _type(type_id::string),
        _size(size),
        _data(std::move(chars)),
        _offsets(std::move(offsets)),
        _null_mask(std::move(null_mask)) {}

  [[nodiscard]] type_id type() const noexcept { return _type; }
  [[nodiscard]] size_type size() const noexcept { return _size; }
  [[nodiscard]] bool nullable() const noexcept { return !_null_mask.empty(); }
  [[nodiscard]] memory_kind kind() const noexcept {
    return _type == type_id::string ? _offsets.kind() : _data.kind();
  }
  [[nodiscard]] column_view view() const noexcept;
  /// Values of a fixed-width column, or the characters of a string column.
  [[nodiscard]] buffer& data() noexcept { return _data; }
  [[nodiscard]] buffer& offsets() noexcept { return _offsets; }
  [[nodiscard]] buffer& null_mask() noexcept { return _null_mask; }
  /// Drops the null bitmask (after an operator proved there are no nulls).
  void clear_null_mask() noexcept { _null_mask = buffer{}; }
  void set_null_mask(buffer mask) noexcept { _null_mask = std::move(mask); }

 private:
  type_id _type = type_id::int64;
  size_type _size = 0;
  buffer _data;
  buffer _offsets;
  buffer _null_mask;
};

}  // namespace ember
