#pragma once
// EMBER_HD marks functions that run on both backends: host code for g++ (CPU backend) and
// __host__ __device__ for nvcc (CUDA backend), so one operator body serves both.
#ifdef __CUDACC__
#define EMBER_HD __host__ __device__
#define EMBER_FORCEINLINE __forceinline__
#else
#define EMBER_HD
#define EMBER_FORCEINLINE inline __attribute__((always_inline))
#endif
