#pragma once
#include <cstddef>
#include <utility>

#include <ember/host/memory_resource.hpp>

namespace ember {

/// Owns bytes from a memory resource and frees them through it, on its stream (RMM's
/// device_buffer). Knows its memory kind. Move-only; a moved-from buffer is empty.
class buffer {
 public:
  buffer() = default;
  /// Allocates `bytes` uninitialised bytes from `mr` (which must outlive the buffer).
  /// Throws ember::out_of_memory when the resource's budget does not allow it.
  buffer(std::size_t bytes, memory_resource& mr, stream_view stream = {})
      : _size(bytes), _resource(&mr), _stream(stream) {
    _data = mr.allocate(bytes, stream);
  }
  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;
  buffer(buffer&& other) noexcept { swap(other); }
  buffer& operator=(buffer&& other) noexcept {
    buffer(std::move(other)).swap(*this);
    return *this;
  }
  ~buffer() {
    if (_resource != nullptr) _resource->deallocate(_data, _size, _stream);
  }

  [[nodiscard]] void* data() noexcept { return _data; }
  [[nodiscard]] const void* data() const noexcept { return _data; }
  template <class T>
  [[nodiscard]] T* data_as() noexcept {
    return static_cast<T*>(_data);
  }
  template <class T>
  [[nodiscard]] const T* data_as() const noexcept {
    return static_cast<const T*>(_data);
  }
  /// Size in bytes.
  [[nodiscard]] std::size_t size() const noexcept { return _size; }
  [[nodiscard]] bool empty() const noexcept { return _resource == nullptr; }
  [[nodiscard]] memory_kind kind() const noexcept {
    return _resource != nullptr ? _resource->kind() : memory_kind::host;
  }
  [[nodiscard]] memory_resource* resource() const noexcept { return _resource; }
  [[nodiscard]] stream_view stream() const noexcept { return _stream; }

  void swap(buffer& other) noexcept {
    std::swap(_data, other._data);
    std::swap(_size, other._size);
    std::swap(_resource, other._resource);
    std::swap(_stream, other._stream);
  }

 private:
  void* _data = nullptr;
  std::size_t _size = 0;
  memory_resource* _resource = nullptr;
  stream_view _stream{};
};

}  // namespace ember
