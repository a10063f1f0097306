#pragma once
// How a public operator reaches its backend. Each portable body (portable/*.inl) is compiled
// once per backend, into namespaces ember::cpu and ember::gpu; the public entry point declares
// both with EMBER_DECLARE_BACKENDS and calls the context's one with EMBER_DISPATCH.
#include <ember/config.hpp>
#include <ember/cuda/context.hpp>

#define EMBER_DECLARE_BACKENDS(...) \
  namespace ember::cpu {            \
  __VA_ARGS__;                      \
  }                                 \
  namespace ember::gpu {            \
  __VA_ARGS__;                      \
  }

#if EMBER_WITH_CUDA
#define EMBER_DISPATCH(ctx, fn, ...)                                           \
  ((ctx).kind() == ::ember::backend_kind::cuda ? ::ember::gpu::fn(__VA_ARGS__) \
                                               : ::ember::cpu::fn(__VA_ARGS__))
#else
#define EMBER_DISPATCH(ctx, fn, ...) ::ember::cpu::fn(__VA_ARGS__)
#endif
