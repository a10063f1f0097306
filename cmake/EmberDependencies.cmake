# Every third-party dependency is found here, and a missing one fails at configure time with the
# Debian package that provides it (scripts/setup installs them all).
include(GNUInstallDirs)

macro(ember_require pkg debian)
  find_package(${pkg} ${ARGN} QUIET)
  if(NOT ${pkg}_FOUND)
    message(FATAL_ERROR "ember needs ${pkg}: apt-get install -y ${debian} (or run scripts/setup)")
  endif()
endmacro()

ember_require(spdlog libspdlog-dev CONFIG)
ember_require(OpenMP "g++ (libgomp)")
ember_require(Threads libc6-dev)
if(EMBER_BUILD_CLI OR EMBER_BUILD_BENCH)
  ember_require(CLI11 libcli11-dev CONFIG)
  ember_require(nlohmann_json nlohmann-json3-dev CONFIG)
endif()
if(EMBER_BUILD_TESTS)
  ember_require(GTest "libgtest-dev libgmock-dev" CONFIG)
endif()
if(EMBER_BUILD_BENCH)
  ember_require(benchmark libbenchmark-dev CONFIG)
endif()

# Thrust and CUB headers (CCCL): the CUDA toolkit's copy when there is one, else Debian's
# libthrust-dev. The CPU backend compiles them with g++ against Thrust's OpenMP system.
if(NOT EMBER_CCCL_INCLUDE_DIR)
  find_path(EMBER_THRUST_FOUND_DIR thrust/version.h
    HINTS ${CUDAToolkit_INCLUDE_DIRS}/cccl /usr/local/cuda/include/cccl /usr/local/cuda/include /usr/include
    NO_DEFAULT_PATH)
  set(EMBER_CCCL_INCLUDE_DIR "${EMBER_THRUST_FOUND_DIR}" CACHE PATH "" FORCE)
endif()
if(NOT EMBER_CCCL_INCLUDE_DIR OR NOT EXISTS "${EMBER_CCCL_INCLUDE_DIR}/thrust/version.h")
  message(FATAL_ERROR "ember needs Thrust headers: install the CUDA toolkit or apt-get install -y libthrust-dev libcub-dev")
endif()
message(STATUS "ember: Thrust headers in ${EMBER_CCCL_INCLUDE_DIR}")

# UCX carries every message and block between processes.
ember_require(ucx libucx-dev CONFIG)

# cpp-httplib serves the scheduler's and workers' /metrics and the dashboard. Debian ships only a
# pkg-config file (no CMake package); its cflags carry the SSL/zlib/brotli defines the compiled
# library was built with, which change its classes' layout, so they must come along.
ember_require(PkgConfig pkg-config)
pkg_check_modules(EMBER_HTTPLIB QUIET IMPORTED_TARGET cpp-httplib)
if(NOT EMBER_HTTPLIB_FOUND)
  message(FATAL_ERROR "ember needs cpp-httplib: apt-get install -y libcpp-httplib-dev (or run scripts/setup)")
endif()

# NCCL (GPU collectives) comes with the CUDA toolkit; the CUDA build always links it.
if(EMBER_WITH_CUDA)
  find_library(EMBER_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64)
  find_path(EMBER_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  if(NOT EMBER_NCCL_LIBRARY OR NOT EMBER_NCCL_INCLUDE_DIR)
    message(FATAL_ERROR "ember's CUDA build needs NCCL (nccl.h, libnccl): install it with the CUDA toolkit")
  endif()
  message(STATUS "ember: NCCL ${EMBER_NCCL_LIBRARY}")
endif()
