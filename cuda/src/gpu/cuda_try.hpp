#pragma once
// CUDA error checking (libcudf's CUDF_CUDA_TRY): every runtime call and every launch is checked,
// and a failure becomes ember::cuda_error naming the call site.
#include <cuda_runtime_api.h>

#include <string>

#include <ember/host/error.hpp>

#define EMBER_STRINGIFY_DETAIL(x) #x
#define EMBER_STRINGIFY(x) EMBER_STRINGIFY_DETAIL(x)

#define EMBER_CUDA_TRY(call)                                                                     \
  do {                                                                                           \
    cudaError_t const ember_cuda_status = (call);                                                \
    if (ember_cuda_status != cudaSuccess) {                                                      \
      cudaGetLastError();                                                                        \
      throw ::ember::cuda_error(                                                                 \
          std::string("CUDA error at " __FILE__ ":" EMBER_STRINGIFY(__LINE__) ": " #call ": ") + \
          cudaGetErrorName(ember_cuda_status) + ": " + cudaGetErrorString(ember_cuda_status));   \
    }                                                                                            \
  } while (0)

/// After a kernel launch: launch errors surface here rather than at some later call.
#define EMBER_CUDA_CHECK_LAST() EMBER_CUDA_TRY(cudaPeekAtLastError())
