#include <cstdio>
#include <ember/host/json_text.hpp>

namespace ember {

std::string json_quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char e[8];
          std::snprintf(e, sizeof e, "\\u%04x", c);
          out += e;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace ember
