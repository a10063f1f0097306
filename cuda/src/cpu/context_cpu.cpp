#include <omp.h>

#include <cstring>
#include <string>

#include <ember/cuda/context.hpp>

namespace ember::cpu {
namespace {

class cpu_context final : public context {
 public:
  explicit cpu_context(const context_options& options)
      : context(backend_kind::cpu, options, default_host_pool()) {}

  [[nodiscard]] stream_view stream() const noexcept override { return {}; }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    if (bytes > 0) std::memcpy(dst, src, bytes);
  }
  void synchronize() override {}
  [[nodiscard]] std::string description() const override {
    int threads = options().cpu_threads > 0 ? options().cpu_threads : omp_get_max_threads();
    return "cpu (" + std::to_string(threads) + " threads)";
  }
};

}  // namespace

std::unique_ptr<context> make_context(const context_options& options) {
  return std::make_unique<cpu_context>(options);
}

}  // namespace ember::cpu
