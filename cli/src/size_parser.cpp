#include "size_parser.hpp"

#include <cctype>
#include <cmath>
#include <string>
#include <utility>

#include <ember/host/error.hpp>

namespace ember::cli {
namespace {

std::pair<double, std::string> split_number(std::string_view text, std::string_view what) {
  std::string s(text);
  std::size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(s, &pos);
  } catch (const std::exception&) {
    throw invalid_input(std::string(what) + ": '" + s + "' is not a number");
  }
  if (!std::isfinite(value)) throw invalid_input(std::string(what) + ": '" + s + "' is not finite");
  if (value < 0) throw invalid_input(std::string(what) + ": negative size '" + s + "'");
  std::string unit;
  for (; pos < s.size(); ++pos)
    if (!std::isspace(static_cast<unsigned char>(s[pos])))
      unit += static_cast<char>(std::toupper(static_cast<unsigned char>(s[pos])));
  return {value, unit};
}

size_type checked(double v, std::string_view text, std::string_view what) {
  if (v > 9.2e18)
    throw invalid_input(std::string(what) + ": '" + std::string(text) + "' is too large");
  return static_cast<size_type>(std::llround(v));
}

}  // namespace

size_type parse_size(std::string_view text, std::string_view what) {
  auto [value, unit] = split_number(text, what);
  double scale = 1;
  if (unit.empty() || unit == "B")
    scale = 1;
  else if (unit == "KB" || unit == "K")
    scale = 1e3;
  else if (unit == "MB" || unit == "M")
    scale = 1e6;
  else if (unit == "GB" || unit == "G")
    scale = 1e9;
  else if (unit == "TB" || unit == "T")
    scale = 1e12;
  else if (unit == "KIB")
    scale = 1024.0;
  else if (unit == "MIB")
    scale = 1024.0 * 1024;
  else if (unit == "GIB")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "TIB")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else
    throw invalid_input(std::string(what) + ": unknown unit '" + unit + "' in '" +
                        std::string(text) + "' (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)");
  return checked(value * scale, text, what);
}

size_type parse_count(std::string_view text, std::string_view what) {
  auto [value, unit] = split_number(text, what);
  double scale = 1;
  if (unit.empty())
    scale = 1;
  else if (unit == "K")
    scale = 1e3;
  else if (unit == "M")
    scale = 1e6;
  else if (unit == "G" || unit == "B")
    scale = 1e9;
  else
    throw invalid_input(std::string(what) + ": unknown suffix '" + unit + "' in '" +
                        std::string(text) + "' (use K, M or G)");
  double rows = value * scale;
  if (rows != std::floor(rows))
    throw invalid_input(std::string(what) + ": '" + std::string(text) + "' is not a whole number");
  return checked(rows, text, what);
}

}  // namespace ember::cli
