#pragma once
// tokenize(): one pass per row counts the words and their bytes, scans turn the counts into
// offsets, and a second pass per row writes the lower-cased words where those offsets say. Rows
// are lines of text, so one thread per row keeps both passes simple and coalesces nothing worse
// than the gather kernels do.
#include <cstdint>

#include "portable/utilities.inl"

namespace ember::EMBER_BACKEND_NS {
namespace detail {

EMBER_HD inline bool is_ascii_letter(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/// Letters for the apostrophe rule: ASCII letters and the bytes of UTF-8 sequences.
EMBER_HD inline bool is_letter_byte(unsigned char c) { return is_ascii_letter(c) || c >= 0x80; }

/// Whether byte j of the text s[0, n) belongs to a word.
EMBER_HD inline bool is_word_byte(const char* s, size_type n, size_type j) {
  auto c = static_cast<unsigned char>(s[j]);
  if (is_ascii_letter(c) || (c >= '0' && c <= '9') || c >= 0x80) return true;
  return c == '\'' && j > 0 && j + 1 < n && is_letter_byte(static_cast<unsigned char>(s[j - 1])) &&
         is_letter_byte(static_cast<unsigned char>(s[j + 1]));
}

struct count_words_fn {
  column_device_view in;
  size_type* words;
  size_type* bytes;
  EMBER_HD void operator()(size_type row) const {
    size_type w = 0, b = 0;
    if (in.is_valid(row)) {
      auto text = in.string_at(row);
      bool inside = false;
      for (size_type j = 0; j < text.size; ++j) {
        bool word = is_word_byte(text.data, text.size, j);
        if (word) {
          w += inside ? 0 : 1;
          ++b;
        }
        inside = word;
      }
    }
    words[row] = w;
    bytes[row] = b;
  }
};

struct write_words_fn {
  column_device_view in;
  const size_type* word_offsets;  // first output word of each row
  const size_type* byte_offsets;  // first output byte of each row
  size_type* out_offsets;
  char* out_chars;
  EMBER_HD void operator()(size_type row) const {
    if (!in.is_valid(row)) return;
    auto text = in.string_at(row);
    size_type w = word_offsets[row];
    size_type b = byte_offsets[row];
    bool inside = false;
    for (size_type j = 0; j < text.size; ++j) {
      bool word = is_word_byte(text.data, text.size, j);
      if (word) {
        if (!inside) out_offsets[w++] = b;
        char c = text.data[j];
        out_chars[b++] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
      }
      inside = word;
    }
  }
};

}  // namespace detail

table tokenize(const column_view& text, const std::string& output_name, context& ctx) {
  exec ex(ctx);
  size_type rows = text.size();
  auto in = column_device_view::of(text);
  buffer words = ex.alloc<size_type>(rows);
  buffer bytes = ex.alloc<size_type>(rows);
  auto k = thrust::counting_iterator<size_type>(0);
  thrust::for_each(
      ex.policy(), k, k + rows,
      detail::count_words_fn{in, words.data_as<size_type>(), bytes.data_as<size_type>()});
  size_type total_words = 0, total_bytes = 0;
  buffer word_offsets =
      detail::lengths_to_offsets(ex, words.data_as<size_type>(), rows, total_words);
  buffer byte_offsets =
      detail::lengths_to_offsets(ex, bytes.data_as<size_type>(), rows, total_bytes);
  buffer offsets = ex.alloc<size_type>(total_words + 1);
  buffer chars = ex.alloc<char>(total_bytes);
  thrust::for_each(ex.policy(), k, k + rows,
                   detail::write_words_fn{in, word_offsets.data_as<size_type>(),
                                          byte_offsets.data_as<size_type>(),
                                          offsets.data_as<size_type>(), chars.data_as<char>()});
  ex.copy(offsets.data_as<size_type>() + total_words, &total_bytes, sizeof(size_type));
  ex.sync();
  std::vector<column> cols;
  cols.emplace_back(total_words, std::move(offsets), std::move(chars));
  return table(std::move(cols), {output_name});
}

}  // namespace ember::EMBER_BACKEND_NS
