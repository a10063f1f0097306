// A writer process for dataset_store_tests: it writes the given partition files as a new version
// of a dataset and commits it, so that the tests can kill it at each step of the commit (with
// EMBER_DATASET_CRASH_AT in its environment) or race two of them.
//
//   dataset_writer ROOT NAME [--expect-parent V] [--fence LOCK:TOKEN] [--wait-for FILE] INPUT...
//
// Each INPUT is an ember partition file whose table becomes one partition. Prints (flushed)
// "staged" once the partitions are written, then waits until FILE exists (with --wait-for),
// commits, and prints "committed V"; on failure "error: MESSAGE", exit 3 for ember::invalid_input
// and 1 for anything else.
#include <chrono>
#include <cstdint>
#include <ember/host/dataset_store.hpp>
#include <ember/host/error.hpp>
#include <ember/host/partition_file.hpp>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

void say(const std::string& line) { std::cout << line << std::endl; }

int run(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: dataset_writer ROOT NAME [--expect-parent V] [--fence LOCK:TOKEN] "
                 "[--wait-for FILE] INPUT...\n";
    return 2;
  }
  ember::dataset_store store(argv[1]);
  std::string name = argv[2];
  ember::commit_options options;
  std::optional<ember::fence_token> fence;
  std::filesystem::path wait_for;
  std::vector<std::filesystem::path> inputs;
  for (int i = 3; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--expect-parent" && i + 1 < argc) {
      options.expected_parent = std::stoull(argv[++i]);
    } else if (arg == "--fence" && i + 1 < argc) {
      std::string spec = argv[++i];
      auto colon = spec.rfind(':');
      fence = ember::fence_token{spec.substr(0, colon), std::stoull(spec.substr(colon + 1))};
    } else if (arg == "--wait-for" && i + 1 < argc) {
      wait_for = argv[++i];
    } else {
      inputs.emplace_back(arg);
    }
  }
  auto writer = store.begin_write(name, fence);
  for (const auto& input : inputs) {
    auto t = ember::read_partition_file(input);
    (void)writer.write_partition(t.view());
  }
  say("staged");
  if (!wait_for.empty()) {
    while (!std::filesystem::exists(wait_for))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto version = writer.commit(options);
  say("committed " + std::to_string(version));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const ember::invalid_input& e) {
    say(std::string("error: ") + e.what());
    return 3;
  } catch (const std::exception& e) {
    say(std::string("error: ") + e.what());
    return 1;
  }
}
