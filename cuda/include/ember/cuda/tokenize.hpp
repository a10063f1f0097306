#pragma once
#include <string>

#include <ember/cuda/context.hpp>
#include <ember/host/table.hpp>

namespace ember {

/// Splits every row of the string column `column` into words: one output row per word, in input
/// order, ASCII letters lower-cased. A word is a maximal run of ASCII letters and digits, of
/// apostrophes between letters ("don't"), and of bytes >= 0x80 (so UTF-8 letters stay inside
/// words, unchanged). Null rows produce no words. The result has one string column named
/// `output_name`. Throws ember::invalid_input when the column is missing or not a string.
[[nodiscard]] table tokenize(const table_view& input, const std::string& column,
                             const std::string& output_name, context& ctx);

}  // namespace ember
