#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>

#include <cstring>
#include <string>

#include "dispatch.hpp"

EMBER_DECLARE_BACKENDS(std::unique_ptr<context> make_context(const context_options& options))
namespace ember::gpu {
int usable_device_count(std::string& reason) noexcept;
void query_environment(cuda_environment& env) noexcept;
memory_resource& pinned_upstream();
memory_resource& device_resource(int device);
}  // namespace ember::gpu

namespace ember {

std::string_view to_string(backend_kind k) noexcept {
  return k == backend_kind::cuda ? "cuda" : "cpu";
}

backend_choice parse_backend_choice(std::string_view text) {
  if (text == "auto") return backend_choice::automatic;
  if (text == "cpu") return backend_choice::cpu;
  if (text == "cuda") return backend_choice::cuda;
  throw invalid_input("unknown backend '" + std::string(text) + "' (expected auto, cpu or cuda)");
}

namespace {
struct cuda_probe {
  bool available = false;
  std::string reason;
};
// The probe runs once: a failed driver initialisation is sticky, so asking again is pointless.
const cuda_probe& probe() {
  static const cuda_probe result = [] {
    cuda_probe p;
#if EMBER_WITH_CUDA
    p.available = gpu::usable_device_count(p.reason) > 0;
#else
    p.reason = "this build of ember has no CUDA backend (nvcc was not found at build time)";
#endif
    return p;
  }();
  return result;
}
}  // namespace

bool cuda_available() noexcept { return probe().available; }

memory_resource& pinned_host_resource() {
  EMBER_EXPECTS(cuda_available(), invalid_input,
                "pinned host memory needs CUDA: " + cuda_unavailable_reason());
#if EMBER_WITH_CUDA
  // Pinning is slow (the driver locks every page): keep up to 4 GiB of freed blocks warm.
  static host_pool_resource pool(gpu::pinned_upstream(), std::size_t{4} << 30);
  return pool;
#else
  throw logic_error("unreachable: CUDA reported available in a build without CUDA");
#endif
}
std::string cuda_unavailable_reason() { return probe().reason; }

cuda_environment query_cuda_environment() noexcept {
  cuda_environment env;
#if EMBER_WITH_CUDA
  gpu::query_environment(env);
#endif
  return env;
}

std::string cuda_version_text(int version) {
  if (version <= 0) return "";
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

context::context(backend_kind kind, context_options options, memory_resource& upstream)
    : _kind(kind), _options(std::move(options)) {
  if (_options.device_tier == nullptr) {
    _tracker = std::make_unique<tracking_resource>(
        upstream, std::string(to_string(kind)) + " device tier of " + _options.name,
        _options.device_memory_limit);
  }
}

memory_resource& device_tier_upstream(backend_kind kind, int device) {
  if (kind == backend_kind::cpu) return default_host_pool();
  EMBER_EXPECTS(cuda_available(), invalid_input,
                "a CUDA device tier needs CUDA: " + cuda_unavailable_reason());
#if EMBER_WITH_CUDA
  return gpu::device_resource(device);
#else
  (void)device;
  throw logic_error("unreachable: CUDA reported available in a build without CUDA");
#endif
}

std::unique_ptr<context> context::create(const context_options& options) {
  bool use_cuda = options.backend == backend_choice::cuda ||
                  (options.backend == backend_choice::automatic && cuda_available());
  if (!use_cuda) return cpu::make_context(options);
  if (!cuda_available())
    throw invalid_input("the cuda backend was requested but is unavailable: " +
                        cuda_unavailable_reason());
#if EMBER_WITH_CUDA
  return gpu::make_context(options);
#else
  throw logic_error("unreachable: CUDA reported available in a build without CUDA");
#endif
}

namespace {
// Slices are compacted on the host side, where rebasing offsets and bitmasks is cheap to write
// and the copy is bandwidth-bound anyway.
column upload_column(const column_view& host_col, context& ctx) {
  bool compact = host_col.mask_offset() == 0 &&
                 (host_col.type() != type_id::string || host_col.offsets()[0] == 0);
  column staged;
  const column_view* src = &host_col;
  column_view staged_view;
  if (!compact) {
    staged = copy_column(host_col);
    staged_view = staged.view();
    src = &staged_view;
  }
  auto& mr = ctx.resource();
  auto s = ctx.stream();
  auto upload = [&](const void* p, std::size_t bytes) {
    buffer b(bytes, mr, s);
    ctx.copy(b.data(), p, bytes);
    return b;
  };
  buffer mask;
  if (src->nullable())
    mask = upload(src->null_mask(), bitmask_words(src->size()) * sizeof(bitmask_type));
  if (src->type() == type_id::string) {
    auto rows = src->size();
    auto offsets = upload(src->offsets(), (rows + 1) * sizeof(size_type));
    auto chars = upload(src->chars(), static_cast<std::size_t>(src->offsets()[rows]));
    return column(rows, std::move(offsets), std::move(chars), std::move(mask));
  }
  auto data = upload(src->data(), src->size() * size_of(src->type()));
  return column(src->type(), src->size(), std::move(data), std::move(mask));
}

column download_column(const column_view& dev, context& ctx, memory_resource& mr) {
  auto rows = dev.size();
  // Bring the covering bitmask words over, then repack if the slice starts mid-word.
  buffer mask;
  if (dev.nullable()) {
    size_type first_word = dev.mask_offset() / 32;
    size_type last_bit = dev.mask_offset() + rows;
    size_type words = bitmask_words(last_bit) - first_word;
    std::vector<bitmask_type> raw(static_cast<std::size_t>(words));
    ctx.copy(raw.data(), dev.null_mask() + first_word, raw.size() * sizeof(bitmask_type));
    size_type shift = dev.mask_offset() % 32;
    mask = buffer(bitmask_words(rows) * sizeof(bitmask_type), mr);
    auto* out = mask.data_as<bitmask_type>();
    std::memset(out, 0, mask.size());
    for (size_type i = 0; i < rows; ++i) {
      size_type b = shift + i;
      if ((raw[b >> 5] >> (b & 31)) & 1u) out[i >> 5] |= bitmask_type{1} << (i & 31);
    }
  }
  if (dev.type() == type_id::string) {
    buffer offsets((rows + 1) * sizeof(size_type), mr);
    auto* off = offsets.data_as<size_type>();
    ctx.copy(off, dev.offsets(), (rows + 1) * sizeof(size_type));
    size_type first = off[0];
    for (size_type i = 0; i <= rows; ++i) off[i] -= first;
    buffer chars(static_cast<std::size_t>(off[rows]), mr);
    ctx.copy(chars.data(), dev.chars() + first, chars.size());
    return column(rows, std::move(offsets), std::move(chars), std::move(mask));
  }
  buffer data(rows * size_of(dev.type()), mr);
  ctx.copy(data.data(), dev.data(), data.size());
  return column(dev.type(), rows, std::move(data), std::move(mask));
}
}  // namespace

table to_device(const table_view& input, context& ctx) {
  std::vector<column> cols;
  for (const auto& c : input.columns()) {
    EMBER_EXPECTS(c.kind() != memory_kind::device || ctx.kind() == backend_kind::cuda, logic_error,
                  "to_device: the input is device memory but the context is a CPU context");
    cols.push_back(upload_column(c, ctx));
  }
  ctx.synchronize();
  return table(std::move(cols), input.names());
}

table to_host(const table_view& input, context& ctx) {
  return to_host(input, ctx, default_host_resource());
}

table to_host(const table_view& input, context& ctx, memory_resource& mr) {
  std::vector<column> cols;
  for (const auto& c : input.columns()) cols.push_back(download_column(c, ctx, mr));
  ctx.synchronize();
  return table(std::move(cols), input.names());
}

}  // namespace ember
