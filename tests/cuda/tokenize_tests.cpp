#include <ember/cuda/tokenize.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/backends.hpp"
#include "common/tables.hpp"
#include "common/paths.hpp"

namespace ember::test {
namespace {

template <class Backend>
class tokenize_test : public backend_test<Backend> {
 public:
  /// tokenize() of a host string column on this backend, read back.
  std::vector<std::string> run(const std::vector<std::optional<std::string>>& rows,
                               size_type begin = 0, size_type end = -1) {
    std::vector<column> cols;
    cols.push_back(make_string_column(rows));
    auto dev = this->up(table(std::move(cols), {"text"}).view());
    auto view = dev.view();
    if (end >= 0) view = view.slice(begin, end);
    auto out = tokenize(view, "text", "word", this->ctx());
    EXPECT_EQ(out.names(), std::vector<std::string>{"word"});
    EXPECT_EQ(out.num_columns(), 1);
    auto host = this->down(out.view());
    EXPECT_FALSE(host.view().column(0).nullable());
    std::vector<std::string> words;
    for (auto& w : copy_strings(host.view().column(0))) words.push_back(w.value_or("<null>"));
    return words;
  }
};
TYPED_TEST_SUITE_P(tokenize_test);

bool ascii_letter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool letter(unsigned char c) { return ascii_letter(c) || c >= 0x80; }

/// The reference splitter: the header's rules, written as plainly as possible.
std::vector<std::string> reference_words(const std::vector<std::optional<std::string>>& rows) {
  std::vector<std::string> out;
  for (const auto& row : rows) {
    if (!row) continue;
    const std::string& s = *row;
    std::string word;
    for (std::size_t j = 0; j < s.size(); ++j) {
      auto c = static_cast<unsigned char>(s[j]);
      bool in_word =
          ascii_letter(c) || std::isdigit(c) || c >= 0x80 ||
          (c == '\'' && j > 0 && j + 1 < s.size() && letter(static_cast<unsigned char>(s[j - 1])) &&
           letter(static_cast<unsigned char>(s[j + 1])));
      if (in_word) {
        word += ascii_letter(c) ? static_cast<char>(std::tolower(c)) : static_cast<char>(c);
      } else if (!word.empty()) {
        out.push_back(word);
        word.clear();
      }
    }
    if (!word.empty()) out.push_back(word);
  }
  return out;
}

/// Random text: words of letters, digits, apostrophes and UTF-8 letters between spaces and
/// punctuation, with some null and empty rows.
std::vector<std::optional<std::string>> random_text(std::size_t rows, std::uint64_t seed,
                                                    int max_pieces = 12) {
  static const std::vector<std::string> pieces = {"the",
                                                  "The",
                                                  "QUICK",
                                                  "brown",
                                                  "fox",
                                                  "don't",
                                                  "rock'n'roll",
                                                  "'quoted'",
                                                  "90's",
                                                  "it''s",
                                                  "x'",
                                                  "'y",
                                                  "42",
                                                  "3.14",
                                                  "e-mail",
                                                  "well-known",
                                                  "na\xc3\xafve",
                                                  "caf\xc3\xa9",
                                                  "\xe6\x97\xa5\xe6\x9c\xac",
                                                  "\xf0\x9f\x98\x80",
                                                  "l'\xc3\xa9t\xc3\xa9",
                                                  "it\xe2\x80\x99s",
                                                  "ABC123def",
                                                  "'",
                                                  "''",
                                                  "a'1",
                                                  "1'a",
                                                  "O'Neil"};
  static const std::vector<std::string> gaps = {" ",  "  ", ", ", ". ", "!", "?\n", "\t",
                                                "--", "(",  ")",  "\"", ";", ""};
  std::mt19937_64 rng(seed);
  std::vector<std::optional<std::string>> out(rows);
  for (auto& row : out) {
    auto kind = rng() % 20;
    if (kind == 0) continue;  // null
    std::string s;
    if (kind != 1) {
      auto n = rng() % static_cast<std::uint64_t>(max_pieces);
      for (std::uint64_t p = 0; p < n; ++p) {
        s += pieces[rng() % pieces.size()];
        s += gaps[rng() % gaps.size()];
      }
    }
    row = std::move(s);
  }
  return out;
}

TYPED_TEST_P(tokenize_test, follows_the_word_rules) {
  std::vector<std::optional<std::string>> rows = {
      "Don't stop-believing!",
      "'quoted' words''",
      "rock'n'roll 90's a''b x' 'y '",
      "l'\xc3\xa9t\xc3\xa9 na\xc3\xafve CAF\xc3\x89 it\xe2\x80\x99s",
      "",
      std::nullopt,
      "   \t\n  ",
      "ABC123def,e-mail 3.14",
  };
  std::vector<std::string> want = {"don't",
                                   "stop",
                                   "believing",
                                   "quoted",
                                   "words",
                                   "rock'n'roll",
                                   "90",
                                   "s",
                                   "a",
                                   "b",
                                   "x",
                                   "y",
                                   "l'\xc3\xa9t\xc3\xa9",
                                   "na\xc3\xafve",
                                   "caf\xc3\x89",
                                   "it\xe2\x80\x99s",
                                   "abc123def",
                                   "e",
                                   "mail",
                                   "3",
                                   "14"};
  EXPECT_EQ(this->run(rows), want);
  EXPECT_EQ(reference_words(rows), want);
}

TYPED_TEST_P(tokenize_test, empty_null_and_one_row_inputs) {
  EXPECT_TRUE(this->run({}).empty());
  EXPECT_TRUE(this->run({std::nullopt}).empty());
  EXPECT_TRUE(this->run({std::string()}).empty());
  EXPECT_TRUE(this->run({std::nullopt, std::string("!!"), std::nullopt}).empty());
  EXPECT_EQ(this->run({std::string("Hello")}), std::vector<std::string>{"hello"});
}

TYPED_TEST_P(tokenize_test, matches_reference_on_random_text) {
  for (std::size_t n : {1, 31, 32, 33, 1000, 1024, 1025, 4099}) {
    auto rows = random_text(n, 500 + n);
    EXPECT_EQ(this->run(rows), reference_words(rows)) << n << " rows";
  }
}

TYPED_TEST_P(tokenize_test, matches_reference_on_sliced_views) {
  auto rows = random_text(700, 3);
  for (auto [b, e] :
       {std::pair{3, 650}, std::pair{33, 34}, std::pair{100, 100}, std::pair{64, 700}}) {
    std::vector<std::optional<std::string>> part(rows.begin() + b, rows.begin() + e);
    EXPECT_EQ(this->run(rows, b, e), reference_words(part)) << "[" << b << ", " << e << ")";
  }
}

/// Lines of /work/main/data/*.txt when there are any, else an English passage repeated.
std::vector<std::optional<std::string>> real_text() {
  std::vector<std::optional<std::string>> lines;
  std::filesystem::path dir = source_dir() / "data";
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) {
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (entry.path().extension() != ".txt") continue;
      std::ifstream in(entry.path());
      for (std::string line; std::getline(in, line) && lines.size() < 200000;)
        lines.push_back(line);
    }
  }
  if (!lines.empty()) return lines;
  // Jane Austen, Pride and Prejudice (1813), chapter 1: public domain.
  const char* passage[] = {
      "It is a truth universally acknowledged, that a single man in possession",
      "of a good fortune, must be in want of a wife.",
      "",
      "However little known the feelings or views of such a man may be on his",
      "first entering a neighbourhood, this truth is so well fixed in the minds",
      "of the surrounding families, that he is considered the rightful property",
      "of some one or other of their daughters.",
      "",
      "\xe2\x80\x9cMy dear Mr. Bennet,\xe2\x80\x9d said his lady to him one day, \xe2\x80\x9chave "
      "you heard that",
      "Netherfield Park is let at last?\xe2\x80\x9d",
      "",
      "Mr. Bennet replied that he had not.",
      "",
      "\"But it is,\" returned she; \"for Mrs. Long has just been here, and she",
      "told me all about it.\"",
      "",
      "\"You want to tell me, and I have no objection to hearing it.\" 'Tis true, I don't",
      "know what you'd say -- he's come on Monday, 1st of November (a chaise and four)."};
  for (int copy = 0; copy < 500; ++copy)
    for (const char* line : passage) lines.emplace_back(line);
  return lines;
}

TYPED_TEST_P(tokenize_test, matches_reference_on_real_text) {
  auto rows = real_text();
  auto got = this->run(rows);
  auto want = reference_words(rows);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(got, want);
}

TYPED_TEST_P(tokenize_test, over_a_million_rows) {
  auto rows = random_text(1'000'000, 77, 6);
  auto got = this->run(rows);
  auto want = reference_words(rows);
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], want[i]) << "word " << i;
}

TYPED_TEST_P(tokenize_test, rejects_missing_and_non_string_columns) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("n", random_int64(5, 0, 9, 0, 1));
  cols.emplace_back("s", random_strings(5, 3, 0, 1));
  auto dev = this->up(make_table(std::move(cols)).view());
  try {
    (void)tokenize(dev.view(), "text", "word", this->ctx());
    ADD_FAILURE() << "expected invalid_input";
  } catch (const invalid_input& e) {
    EXPECT_EQ(std::string(e.what()), "unknown column 'text' (the table has: n, s)");
  }
  try {
    (void)tokenize(dev.view(), "n", "word", this->ctx());
    ADD_FAILURE() << "expected invalid_input";
  } catch (const invalid_input& e) {
    EXPECT_EQ(std::string(e.what()), "tokenize: column 'n' is int64, not string");
  }
}

REGISTER_TYPED_TEST_SUITE_P(tokenize_test, follows_the_word_rules, empty_null_and_one_row_inputs,
                            matches_reference_on_random_text, matches_reference_on_sliced_views,
                            matches_reference_on_real_text, over_a_million_rows,
                            rejects_missing_and_non_string_columns);
INSTANTIATE_TYPED_TEST_SUITE_P(backends, tokenize_test, all_backends);

}  // namespace
}  // namespace ember::test
