#pragma once
// Text for JSON written by hand (manifests, system events): one quoted string literal.
#include <string>
#include <string_view>

namespace ember {

/// `s` as a JSON string literal, quotes included: quote, backslash and control characters
/// escaped. Bytes >= 0x80 pass through unchanged (the caller keeps the text UTF-8).
[[nodiscard]] std::string json_quote(std::string_view s);

}  // namespace ember
