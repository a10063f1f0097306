#pragma once
// The backends an operator suite runs on (STYLE.md: a suite is written once with
// TYPED_TEST_SUITE_P and instantiated per backend). The CPU backend is the reference; the
// portable-only CPU variant checks the Thrust bodies that the CUDA backend also compiles; the
// CUDA backend skips with a reason when no device is usable, and EMBER_REQUIRE_GPU=1 turns that
// skip into a failure.
#include <cstdlib>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include <ember/cuda/context.hpp>

namespace ember::test {

struct cpu_fast {
  static context_options options() {
    context_options o;
    o.backend = backend_choice::cpu;
    o.fast_paths = true;
    return o;
  }
};
struct cpu_portable {
  static context_options options() {
    context_options o;
    o.backend = backend_choice::cpu;
    o.fast_paths = false;
    return o;
  }
};
struct cuda_fast {
  static context_options options() {
    context_options o;
    o.backend = backend_choice::cuda;
    o.fast_paths = true;
    return o;
  }
};
struct cuda_portable {
  static context_options options() {
    context_options o;
    o.backend = backend_choice::cuda;
    o.fast_paths = false;
    return o;
  }
};

inline bool gpu_required() {
  const char* v = std::getenv("EMBER_REQUIRE_GPU");
  return v != nullptr && std::string(v) == "1";
}

/// Creates the backend's context, or skips (fails under EMBER_REQUIRE_GPU=1) without a GPU.
/// Use as: `auto ctx = make_test_context<TypeParam>(); if (!ctx) return;` inside a test, or the
/// backend_test fixture below.
template <class Backend>
std::unique_ptr<context> make_test_context() {
  auto options = Backend::options();
  if (options.backend == backend_choice::cuda && !cuda_available()) return nullptr;
  return context::create(options);
}

template <class Backend>
class backend_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto options = Backend::options();
    if (options.backend == backend_choice::cuda && !cuda_available()) {
      if (gpu_required()) {
        FAIL() << "EMBER_REQUIRE_GPU=1 but the CUDA backend is unavailable: "
               << cuda_unavailable_reason();
      }
      GTEST_SKIP() << "CUDA backend unavailable: " << cuda_unavailable_reason();
    }
    _ctx = context::create(options);
  }
  context& ctx() { return *_ctx; }
  /// The host table in this backend's memory.
  table up(const table_view& host) { return to_device(host, *_ctx); }
  /// A table computed by this backend, in host memory.
  table down(const table_view& result) { return to_host(result, *_ctx); }

 private:
  std::unique_ptr<context> _ctx;
};

using all_backends = ::testing::Types<cpu_fast, cpu_portable, cuda_fast, cuda_portable>;

}  // namespace ember::test
