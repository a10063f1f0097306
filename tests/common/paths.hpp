#pragma once
// Where tests find the repository's files and the `ember` executable. The build's own paths are
// the default; the environment overrides them when the test programs run elsewhere (a GPU
// machine gets a copy of the tree at another path, with the executables staged in .device/bin).
#include <cstdlib>
#include <filesystem>

namespace ember::test {

/// The repository root: $EMBER_SOURCE_DIR, else the tree this test was built from.
inline std::filesystem::path source_dir() {
  const char* dir = std::getenv("EMBER_SOURCE_DIR");
  return dir != nullptr ? std::filesystem::path(dir) : std::filesystem::path(EMBER_SOURCE_DIR);
}

/// The `ember` executable: $EMBER_CLI, else the one in this build.
inline std::filesystem::path ember_executable() {
  const char* exe = std::getenv("EMBER_CLI");
  return exe != nullptr ? std::filesystem::path(exe)
                        : std::filesystem::path(EMBER_BINARY_DIR) / "cli" / "ember";
}

}  // namespace ember::test
