// Counts the words of text files on an embedded ember cluster and prints the most frequent.
//
//   wordcount [--top N] FILE...
//
// The files are split into partitions; each worker tokenizes its share and counts words
// locally, the partial counts are shuffled by word and merged, and the top N are selected.
#include <cstdlib>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/client.hpp>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> files;
  ember::size_type top = 10;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--top" && i + 1 < argc) {
      top = std::atoll(argv[++i]);
    } else {
      files.emplace_back(arg);
    }
  }
  if (files.empty() || top < 1) {
    std::cerr << "usage: wordcount [--top N] FILE...\n";
    return 2;
  }
  try {
    auto cluster = ember::client::local();
    auto counts = cluster.read_text(files)
                      .tokenize("line", "word")
                      .group_by({"word"}, {{ember::aggregation_kind::count_all, "", "count"}})
                      .top_k({{"count", /*descending=*/true}, {"word"}}, top)
                      .collect();
    auto words = ember::copy_strings(counts.view().column("word"));
    auto n = ember::copy_values<std::int64_t>(counts.view().column("count"));
    std::cout << "word count\n";
    for (std::size_t i = 0; i < words.size(); ++i) std::cout << *words[i] << " " << n[i] << "\n";
    return 0;
  } catch (const ember::invalid_input& e) {
    std::cerr << "wordcount: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "wordcount: " << e.what() << "\n";
    return 1;
  }
}
