#pragma once
// A fresh folder under the system's temporary folder, removed with everything in it.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

namespace ember::test {

class temp_dir {
 public:
  explicit temp_dir(const std::string& prefix = "ember-test") {
    static std::atomic<int> counter{0};
    _path = std::filesystem::temp_directory_path() /
            (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(_path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(_path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return _path; }
  /// Writes `contents` to the file `name` in this folder and returns its path.
  std::filesystem::path write(const std::string& name, const std::string& contents) const {
    auto p = _path / name;
    std::ofstream(p, std::ios::binary) << contents;
    return p;
  }

 private:
  std::filesystem::path _path;
};

}  // namespace ember::test
