#pragma once
// Text conversions of cast(): values to text exactly as scalar::to_text writes them (decimal
// integers, "true"/"false", ISO-8601 timestamps, and std::to_chars' shortest round-trip form for
// floats), and text back to values. Plain EMBER_HD code without library calls, so that both
// backends produce the same bytes. Included by a backend translation unit after its exec header.
//
// Floats are formatted with Steele & White's free-format algorithm (as refined by Burger and
// Dybvig) on small fixed-size big integers, and parsed with Clinger's fast path plus an exact
// big-integer correction step. Both are exact, and slower than Ryu or Eisel-Lemire, which need
// large tables of powers; casting floats to and from text is not a hot path.
#include <cstddef>
#include <cstdint>
#include <ember/host/column_device_view.hpp>

// The big-integer routines are long: on the device they are compiled once and called, rather than
// inlined into every kernel that formats or parses (which multiplied nvcc's time several-fold).
#ifndef EMBER_TEXT_NOINLINE
#ifdef __CUDACC__
#define EMBER_TEXT_NOINLINE __noinline__
#else
#define EMBER_TEXT_NOINLINE
#endif
#endif

namespace ember::EMBER_BACKEND_NS::detail {

/// An unsigned big integer of fixed capacity, little-endian 32-bit words. The algorithms below
/// need at most about 1140 bits for doubles (10^326 times a 56-bit mantissa; 1088 bits were
/// the most seen over millions of values and the extremes); 1184 bits leave a margin while
/// keeping each one small, since every GPU thread holds a few on its stack.
struct bignum {
  static constexpr int capacity = 37;
  std::uint32_t w[capacity];
  int n;  // words in use; w[n - 1] != 0 unless n == 0

  EMBER_HD void set(std::uint64_t v) {
    n = 0;
    while (v != 0) {
      w[n++] = static_cast<std::uint32_t>(v);
      v >>= 32;
    }
  }
  EMBER_HD void mul_small(std::uint32_t m) {
    std::uint64_t carry = 0;
    for (int i = 0; i < n; ++i) {
      std::uint64_t t = static_cast<std::uint64_t>(w[i]) * m + carry;
      w[i] = static_cast<std::uint32_t>(t);
      carry = t >> 32;
    }
    if (carry != 0 && n < capacity) w[n++] = static_cast<std::uint32_t>(carry);
  }
  EMBER_HD void mul_pow10(int e) {
    for (; e >= 9; e -= 9) mul_small(1000000000u);
    std::uint32_t p = 1;
    for (; e > 0; --e) p *= 10;
    if (p != 1) mul_small(p);
  }
  EMBER_HD void shift_left(int bits) {
    if (n == 0 || bits == 0) return;
    int words = bits / 32;
    int b = bits % 32;
    int top = n + words + 1;
    if (top > capacity) top = capacity;
    for (int i = top - 1; i >= 0; --i) {
      int src = i - words;
      std::uint64_t hi = src >= 0 && src < n ? w[src] : 0;
      std::uint64_t lo = src - 1 >= 0 && src - 1 < n ? w[src - 1] : 0;
      w[i] = b == 0 ? static_cast<std::uint32_t>(hi)
                    : static_cast<std::uint32_t>((hi << b) | (lo >> (32 - b)));
    }
    n = top;
    trim();
  }
  EMBER_HD void add(const bignum& o) {
    int m = n > o.n ? n : o.n;
    std::uint64_t carry = 0;
    for (int i = 0; i < m; ++i) {
      std::uint64_t t = carry + (i < n ? w[i] : 0) + (i < o.n ? o.w[i] : 0);
      w[i] = static_cast<std::uint32_t>(t);
      carry = t >> 32;
    }
    n = m;
    if (carry != 0 && n < capacity) w[n++] = static_cast<std::uint32_t>(carry);
  }
  /// *this -= o, where *this >= o.
  EMBER_HD void sub(const bignum& o) {
    std::int64_t borrow = 0;
    for (int i = 0; i < n; ++i) {
      std::int64_t t = static_cast<std::int64_t>(w[i]) - (i < o.n ? o.w[i] : 0) - borrow;
      borrow = t < 0 ? 1 : 0;
      w[i] = static_cast<std::uint32_t>(t + (borrow << 32));
    }
    trim();
  }
  /// *this /= d; returns the remainder.
  EMBER_HD std::uint32_t div_small(std::uint32_t d) {
    std::uint64_t rem = 0;
    for (int i = n - 1; i >= 0; --i) {
      std::uint64_t cur = (rem << 32) | w[i];
      w[i] = static_cast<std::uint32_t>(cur / d);
      rem = cur % d;
    }
    trim();
    return static_cast<std::uint32_t>(rem);
  }
  EMBER_HD void trim() {
    while (n > 0 && w[n - 1] == 0) --n;
  }
  EMBER_HD static int compare(const bignum& a, const bignum& b) {
    if (a.n != b.n) return a.n < b.n ? -1 : 1;
    for (int i = a.n - 1; i >= 0; --i)
      if (a.w[i] != b.w[i]) return a.w[i] < b.w[i] ? -1 : 1;
    return 0;
  }
  /// Compares a + b with c; `scratch` holds the sum.
  EMBER_HD static int compare_sum(const bignum& a, const bignum& b, const bignum& c,
                                  bignum& scratch) {
    scratch = a;
    scratch.add(b);
    return compare(scratch, c);
  }
};

EMBER_HD inline int bit_length(std::uint64_t v) {
  int n = 0;
  for (; v != 0; v >>= 1) ++n;
  return n;
}

/// The bytes of `v` read as a To of the same size (std::bit_cast, which this C++17 device code
/// lacks).
template <class To, class From>
EMBER_HD inline To bit_copy(From v) {
  static_assert(sizeof(To) == sizeof(From), "bit_copy needs types of one size");
  To out{};
  const auto* src = reinterpret_cast<const unsigned char*>(&v);
  auto* dst = reinterpret_cast<unsigned char*>(&out);
  for (std::size_t i = 0; i < sizeof(From); ++i) dst[i] = src[i];
  return out;
}
EMBER_HD inline std::uint64_t double_to_bits(double v) { return bit_copy<std::uint64_t>(v); }
EMBER_HD inline double bits_to_double(std::uint64_t bits) { return bit_copy<double>(bits); }
EMBER_HD inline std::uint32_t float_to_bits(float v) { return bit_copy<std::uint32_t>(v); }
EMBER_HD inline float bits_to_float(std::uint32_t bits) { return bit_copy<float>(bits); }

/// The IEEE-754 binary layouts of float and double.
struct float_format {
  int mantissa_bits;  // stored fraction bits
  int exponent_bits;
  int bias;
  [[nodiscard]] EMBER_HD std::uint64_t exponent_mask() const {
    return (std::uint64_t{1} << exponent_bits) - 1;
  }
  [[nodiscard]] EMBER_HD std::uint64_t fraction_mask() const {
    return (std::uint64_t{1} << mantissa_bits) - 1;
  }
};
constexpr float_format double_format{52, 11, 1023};
constexpr float_format single_format{23, 8, 127};

/// Shortest decimal digits of a positive finite binary value: value ~ 0.d[0]d[1]... x 10^k.
struct decimal_digits {
  char d[24];
  int n;
  int k;
};

/// The shortest digits that read back (round-half-even) to the value with the given bits
/// (positive, finite, non-zero), the closest of them when several are shortest.
EMBER_HD EMBER_TEXT_NOINLINE inline decimal_digits shortest_digits(std::uint64_t bits,
                                                                   float_format fmt) {
  std::uint64_t biased = (bits >> fmt.mantissa_bits) & fmt.exponent_mask();
  std::uint64_t fraction = bits & fmt.fraction_mask();
  std::uint64_t f;
  int e;
  if (biased == 0) {
    f = fraction;
    e = 1 - fmt.bias - fmt.mantissa_bits;
  } else {
    f = fraction | (std::uint64_t{1} << fmt.mantissa_bits);
    e = static_cast<int>(biased) - fmt.bias - fmt.mantissa_bits;
  }
  // At a power of two the gap below is half the gap above.
  bool closer = fraction == 0 && biased > 1;
  bool even = (f & 1) == 0;  // round-half-even readers accept the bounds of even values

  bignum r, s, mp, mm, sum;
  if (e >= 0) {
    r.set(f);
    r.shift_left(e + (closer ? 2 : 1));
    s.set(closer ? 4 : 2);
    mp.set(1);
    mp.shift_left(e + (closer ? 1 : 0));
    mm.set(1);
    mm.shift_left(e);
  } else {
    r.set(f << (closer ? 2 : 1));
    s.set(1);
    s.shift_left((closer ? 2 : 1) - e);
    mp.set(closer ? 2 : 1);
    mm.set(1);
  }
  // k0 = ceil(log10(2^L)) <= ceil(log10(v)), at most one below the k we want.
  int L = e + bit_length(f) - 1;
  double est = L * 0.30102999566398119521 - 1e-10;
  int k = static_cast<int>(est);
  if (static_cast<double>(k) < est) ++k;
  if (k >= 0) {
    s.mul_pow10(k);
  } else {
    r.mul_pow10(-k);
    mp.mul_pow10(-k);
    mm.mul_pow10(-k);
  }
  for (;;) {
    int c = bignum::compare_sum(r, mp, s, sum);
    if (even ? c < 0 : c <= 0) break;
    s.mul_small(10);
    ++k;
  }

  decimal_digits out{};
  out.k = k;
  for (;;) {
    r.mul_small(10);
    mp.mul_small(10);
    mm.mul_small(10);
    int digit = 0;
    while (bignum::compare(r, s) >= 0) {
      r.sub(s);
      ++digit;
    }
    int cl = bignum::compare(r, mm);
    int ch = bignum::compare_sum(r, mp, s, sum);
    bool low = even ? cl <= 0 : cl < 0;
    bool high = even ? ch >= 0 : ch > 0;
    if (!low && !high && out.n < 23) {
      out.d[out.n++] = static_cast<char>(digit);
      continue;
    }
    if (low && high) {
      int half = bignum::compare_sum(r, r, s, sum);
      if (half > 0 || (half == 0 && (digit & 1) != 0)) ++digit;
    } else if (high) {
      ++digit;
    }
    out.d[out.n++] = static_cast<char>(digit);
    break;
  }
  // Rounding up may carry (…9 + 1); trailing zeros are not significant.
  for (int i = out.n - 1; i > 0 && out.d[i] == 10; --i) {
    out.d[i] = 0;
    ++out.d[i - 1];
  }
  if (out.d[0] == 10) {
    out.d[0] = 1;
    out.n = 1;
    ++out.k;
  }
  while (out.n > 1 && out.d[out.n - 1] == 0) --out.n;
  return out;
}

/// Writes the decimal digits of `v` at `out`; returns the count.
EMBER_HD inline int write_unsigned(std::uint64_t v, char* out) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (int i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

EMBER_HD inline int write_int(std::int64_t v, char* out) {
  if (v < 0) {
    out[0] = '-';
    return 1 + write_unsigned(0 - static_cast<std::uint64_t>(v), out + 1);
  }
  return write_unsigned(static_cast<std::uint64_t>(v), out);
}

EMBER_HD inline int write_literal(const char* text, char* out) {
  int n = 0;
  for (; text[n] != '\0'; ++n) out[n] = text[n];
  return n;
}

/// The exact decimal digits of a positive float or double that holds an integer.
EMBER_HD EMBER_TEXT_NOINLINE inline int write_exact_integer(std::uint64_t bits, float_format fmt,
                                                            char* out) {
  std::uint64_t biased = (bits >> fmt.mantissa_bits) & fmt.exponent_mask();
  std::uint64_t f =
      (bits & fmt.fraction_mask()) | (biased != 0 ? std::uint64_t{1} << fmt.mantissa_bits : 0);
  int e = (biased == 0 ? 1 : static_cast<int>(biased)) - fmt.bias - fmt.mantissa_bits;
  bignum v;
  v.set(e >= 0 ? f : f >> (-e < 64 ? -e : 63));
  if (e > 0) v.shift_left(e);
  // Fixed notation is only chosen below 10^23, so 23 digits would do.
  char tmp[32];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v.div_small(10));
  } while (v.n > 0 && n < 32);
  for (int i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

/// std::to_chars(first, last, value) for a float or double given by its bits: the shortest
/// round-trip digits, in fixed or scientific notation, whichever is shorter (fixed on a tie).
/// `out` needs room for 32 bytes.
EMBER_HD EMBER_TEXT_NOINLINE inline int write_floating(std::uint64_t bits, float_format fmt,
                                                       char* out) {
  int total_bits = fmt.mantissa_bits + fmt.exponent_bits + 1;
  bool negative = ((bits >> (total_bits - 1)) & 1) != 0;
  std::uint64_t biased = (bits >> fmt.mantissa_bits) & fmt.exponent_mask();
  std::uint64_t fraction = bits & fmt.fraction_mask();
  int n = 0;
  if (negative) out[n++] = '-';
  if (biased == fmt.exponent_mask())
    return n + write_literal(fraction != 0 ? "nan" : "inf", out + n);
  if (biased == 0 && fraction == 0) {
    out[n++] = '0';
    return n;
  }
  auto dec = shortest_digits(bits & ~(std::uint64_t{1} << (total_bits - 1)), fmt);
  int digits = dec.n;
  int k = dec.k;
  int x = k - 1;  // scientific exponent
  int fixed_len = k <= 0 ? 2 - k + digits : (k < digits ? digits + 1 : k);
  int abs_x = x < 0 ? -x : x;
  int sci_len = digits + (digits > 1 ? 1 : 0) + 2 + (abs_x >= 100 ? 3 : 2);
  if (fixed_len <= sci_len) {
    if (k <= 0) {
      out[n++] = '0';
      out[n++] = '.';
      for (int i = 0; i < -k; ++i) out[n++] = '0';
      for (int i = 0; i < digits; ++i) out[n++] = static_cast<char>('0' + dec.d[i]);
    } else if (k < digits) {
      for (int i = 0; i < digits; ++i) {
        if (i == k) out[n++] = '.';
        out[n++] = static_cast<char>('0' + dec.d[i]);
      }
    } else {
      // The value is an integer here, and to_chars prints it exactly rather than the shortest
      // digits padded with zeros (123456789012345683968, not 123456789012345680000).
      n += write_exact_integer(bits & ~(std::uint64_t{1} << (total_bits - 1)), fmt, out + n);
    }
    return n;
  }
  out[n++] = static_cast<char>('0' + dec.d[0]);
  if (digits > 1) {
    out[n++] = '.';
    for (int i = 1; i < digits; ++i) out[n++] = static_cast<char>('0' + dec.d[i]);
  }
  out[n++] = 'e';
  out[n++] = x < 0 ? '-' : '+';
  if (abs_x < 10) out[n++] = '0';
  return n + write_unsigned(static_cast<std::uint64_t>(abs_x), out + n);
}

EMBER_HD inline int write_double(double v, char* out) {
  return write_floating(double_to_bits(v), double_format, out);
}
EMBER_HD inline int write_float(float v, char* out) {
  return write_floating(float_to_bits(v), single_format, out);
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
EMBER_HD inline std::int64_t days_from_civil(std::int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  std::int64_t yoe = y - era * 400;
  std::int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/// `v` (>= 0) in exactly `width` digits, zero-padded.
EMBER_HD inline int write_padded(std::int64_t v, int width, char* out) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  return width;
}

/// "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ", as scalar::to_text writes a timestamp. `out` needs 30 bytes.
EMBER_HD EMBER_TEXT_NOINLINE inline int write_timestamp(std::int64_t ns, char* out) {
  std::int64_t secs = ns / 1000000000;
  std::int64_t frac = ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    secs -= 1;
  }
  std::int64_t days = secs / 86400;
  std::int64_t sod = secs % 86400;
  if (sod < 0) {
    sod += 86400;
    days -= 1;
  }
  // Hinnant's civil_from_days.
  std::int64_t z = days + 719468;
  std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  std::int64_t doe = z - era * 146097;
  std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t y = yoe + era * 400;
  std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  std::int64_t mp = (5 * doy + 2) / 153;
  std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  // int64 nanoseconds span the years 1677 to 2262: always four digits.
  int n = write_padded(y, 4, out);
  out[n++] = '-';
  n += write_padded(m, 2, out + n);
  out[n++] = '-';
  n += write_padded(d, 2, out + n);
  out[n++] = 'T';
  n += write_padded(sod / 3600, 2, out + n);
  out[n++] = ':';
  n += write_padded(sod / 60 % 60, 2, out + n);
  out[n++] = ':';
  n += write_padded(sod % 60, 2, out + n);
  out[n++] = '.';
  n += write_padded(frac, 9, out + n);
  out[n++] = 'Z';
  return n;
}

// ---- parsing ------------------------------------------------------------------------------

EMBER_HD inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
EMBER_HD inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
EMBER_HD inline char to_lower_ascii(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

/// The text without leading and trailing ASCII white space.
EMBER_HD inline string_ref trim(string_ref s) {
  size_type b = 0, e = s.size;
  while (b < e && is_space(s.data[b])) ++b;
  while (e > b && is_space(s.data[e - 1])) --e;
  return string_ref{s.data + b, e - b};
}

/// Case-insensitive comparison with a lower-case NUL-terminated word.
EMBER_HD inline bool equals_word(string_ref s, const char* word) {
  size_type i = 0;
  for (; word[i] != '\0'; ++i)
    if (i >= s.size || to_lower_ascii(s.data[i]) != word[i]) return false;
  return i == s.size;
}

/// "[+-]digits" (surrounding white space allowed) that fits in [-2^63, 2^63 - 1].
EMBER_HD inline bool parse_int64(string_ref text, std::int64_t& value) {
  auto s = trim(text);
  size_type i = 0;
  bool negative = false;
  if (i < s.size && (s.data[i] == '+' || s.data[i] == '-')) negative = s.data[i++] == '-';
  if (i == s.size) return false;
  std::uint64_t limit = negative ? std::uint64_t{1} << 63 : (std::uint64_t{1} << 63) - 1;
  std::uint64_t v = 0;
  for (; i < s.size; ++i) {
    if (!is_digit(s.data[i])) return false;
    auto digit = static_cast<std::uint64_t>(s.data[i] - '0');
    if (v > (limit - digit) / 10) return false;
    v = v * 10 + digit;
  }
  value = negative ? static_cast<std::int64_t>(0 - v) : static_cast<std::int64_t>(v);
  return true;
}

/// "true", "false", "1" or "0", in any case.
EMBER_HD inline bool parse_bool(string_ref text, std::uint8_t& value) {
  auto s = trim(text);
  if (equals_word(s, "true") || equals_word(s, "1")) {
    value = 1;
    return true;
  }
  if (equals_word(s, "false") || equals_word(s, "0")) {
    value = 0;
    return true;
  }
  return false;
}

/// A decimal number as read from text: w (up to 19 significant digits) x 10^e10, plus whether
/// non-zero digits were dropped beyond those 19 (the value then lies just above w x 10^e10).
struct decimal_number {
  bool negative;
  bool special;  // inf or nan
  bool nan;
  std::uint64_t w;
  int e10;
  bool inexact;
  int digits;           // significant digits in w
  string_ref mantissa;  // the digits and point as written, for exact comparisons
};

/// Adds one digit to `num`: the first 19 significant digits are kept exactly, later ones only
/// move the exponent and mark the number inexact.
EMBER_HD inline void take_digit(decimal_number& num, char c, bool in_fraction, int& dropped,
                                int& fraction) {
  if (num.digits == 0 && c == '0') {
    if (in_fraction) ++fraction;
    return;
  }
  if (num.digits < 19) {
    num.w = num.w * 10 + static_cast<std::uint64_t>(c - '0');
    ++num.digits;
    if (in_fraction) ++fraction;
  } else {
    if (c != '0') num.inexact = true;
    if (!in_fraction) ++dropped;
  }
}

EMBER_HD EMBER_TEXT_NOINLINE inline bool scan_decimal(string_ref text, decimal_number& num) {
  auto s = trim(text);
  num = decimal_number{};
  size_type i = 0;
  if (i < s.size && (s.data[i] == '+' || s.data[i] == '-')) num.negative = s.data[i++] == '-';
  string_ref rest{s.data + i, s.size - i};
  if (equals_word(rest, "inf") || equals_word(rest, "infinity")) {
    num.special = true;
    return true;
  }
  if (equals_word(rest, "nan")) {
    num.special = num.nan = true;
    return true;
  }
  bool any_digit = false;
  size_type mantissa_begin = i;
  int dropped = 0;   // integer digits beyond the 19 kept: each raises the exponent
  int fraction = 0;  // fraction digits kept (and leading zeros): each lowers it
  for (; i < s.size && is_digit(s.data[i]); ++i) {
    any_digit = true;
    take_digit(num, s.data[i], false, dropped, fraction);
  }
  if (i < s.size && s.data[i] == '.') {
    for (++i; i < s.size && is_digit(s.data[i]); ++i) {
      any_digit = true;
      take_digit(num, s.data[i], true, dropped, fraction);
    }
  }
  if (!any_digit) return false;
  num.mantissa = string_ref{s.data + mantissa_begin, i - mantissa_begin};
  std::int64_t exp = 0;
  if (i < s.size && (s.data[i] == 'e' || s.data[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < s.size && (s.data[i] == '+' || s.data[i] == '-')) exp_negative = s.data[i++] == '-';
    if (i == s.size || !is_digit(s.data[i])) return false;
    for (; i < s.size && is_digit(s.data[i]); ++i)
      if (exp < 100000) exp = exp * 10 + (s.data[i] - '0');
    if (exp_negative) exp = -exp;
  }
  if (i != s.size) return false;
  num.e10 = static_cast<int>(exp) + dropped - fraction;
  return true;
}

/// Compares the number that `num` was scanned from with c x 2^q, exactly: the digits of
/// c x 2^q are generated one by one (as in shortest_digits) and compared with the text's
/// significant digits, so any number of digits is read correctly.
EMBER_HD EMBER_TEXT_NOINLINE inline int compare_decimal(const decimal_number& num, std::uint64_t c,
                                                        int q) {
  // text = 0.d1 d2 d3 ... x 10^point
  int point = num.digits + num.e10;
  bignum r, s;
  r.set(c);
  s.set(1);
  if (q >= 0)
    r.shift_left(q);
  else
    s.shift_left(-q);
  if (point >= 0)
    s.mul_pow10(point);
  else
    r.mul_pow10(-point);
  // c x 2^q >= 10^point > text
  if (bignum::compare(r, s) >= 0) return -1;
  bool started = false;
  for (size_type i = 0; i < num.mantissa.size; ++i) {
    char ch = num.mantissa.data[i];
    if (ch == '.' || (!started && ch == '0')) continue;
    started = true;
    r.mul_small(10);
    int digit = 0;
    while (bignum::compare(r, s) >= 0) {
      r.sub(s);
      ++digit;
    }
    int d = ch - '0';
    if (d != digit) return d < digit ? -1 : 1;
  }
  return r.n == 0 ? 0 : -1;
}

/// The bits of the float (single or double) nearest to the positive decimal `num`,
/// ties to even, starting from an approximation `approx_bits` a few units in the last place off.
EMBER_HD inline std::uint64_t correct_rounding(const decimal_number& num, std::uint64_t bits,
                                               float_format fmt) {
  std::uint64_t inf_bits = fmt.exponent_mask() << fmt.mantissa_bits;
  if (bits >= inf_bits) bits = inf_bits - 1;
  for (int step = 0; step < 4096; ++step) {
    std::uint64_t biased = bits >> fmt.mantissa_bits;
    std::uint64_t fraction = bits & fmt.fraction_mask();
    std::uint64_t m = biased == 0 ? fraction : fraction | (std::uint64_t{1} << fmt.mantissa_bits);
    int be = (biased == 0 ? 1 : static_cast<int>(biased)) - fmt.bias - fmt.mantissa_bits;
    int up = compare_decimal(num, 2 * m + 1, be - 1);
    if (up > 0 || (up == 0 && (m & 1) != 0)) {
      ++bits;
      if (bits == inf_bits) return bits;
      continue;
    }
    if (bits == 0) return bits;
    int down = fraction == 0 && biased > 1 ? compare_decimal(num, 4 * m - 1, be - 2)
                                           : compare_decimal(num, 2 * m - 1, be - 1);
    if (down < 0 || (down == 0 && (m & 1) != 0)) {
      --bits;
      continue;
    }
    return bits;
  }
  return bits;
}

/// Text to double, rounded to nearest (ties to even) like strtod:
/// "[+-]digits[.digits][e[+-]digits]",
/// ".5", "5.", "inf", "infinity" and "nan" in any case, surrounding white space allowed.
EMBER_HD EMBER_TEXT_NOINLINE inline bool parse_double(string_ref text, double& value) {
  decimal_number num;
  if (!scan_decimal(text, num)) return false;
  double sign = num.negative ? -1.0 : 1.0;
  if (num.special) {
    double inf = bits_to_double(std::uint64_t{0x7ff0000000000000});
    value = num.nan ? bits_to_double(std::uint64_t{0x7ff8000000000000}) : sign * inf;
    return true;
  }
  if (num.w == 0) {
    value = sign * 0.0;
    return true;
  }
  int magnitude = num.digits + num.e10;  // value < 10^magnitude
  if (magnitude > 310) {
    value = sign * bits_to_double(std::uint64_t{0x7ff0000000000000});
    return true;
  }
  if (magnitude < -326) {
    value = sign * 0.0;
    return true;
  }
  // Clinger's fast path: both factors are exact doubles, so one rounding gives the answer.
  if (!num.inexact && num.w <= (std::uint64_t{1} << 53) && num.e10 >= -22 && num.e10 <= 22) {
    double p = 1;
    for (int i = 0; i < (num.e10 < 0 ? -num.e10 : num.e10); ++i) p *= 10;
    double v = static_cast<double>(num.w);
    value = sign * (num.e10 < 0 ? v / p : v * p);
    return true;
  }
  double approx = static_cast<double>(num.w);
  int e = num.e10;
  for (; e >= 22; e -= 22) approx *= 1e22;
  for (; e <= -22; e += 22) approx /= 1e22;
  double p = 1;
  for (int i = 0; i < (e < 0 ? -e : e); ++i) p *= 10;
  approx = e < 0 ? approx / p : approx * p;
  value = sign * bits_to_double(correct_rounding(num, double_to_bits(approx), double_format));
  return true;
}

/// Text to float, rounded once (not through double), otherwise like parse_double.
EMBER_HD EMBER_TEXT_NOINLINE inline bool parse_float(string_ref text, float& value) {
  decimal_number num;
  if (!scan_decimal(text, num)) return false;
  float sign = num.negative ? -1.0f : 1.0f;
  if (num.special) {
    float inf = bits_to_float(0x7f800000u);
    value = num.nan ? bits_to_float(0x7fc00000u) : sign * inf;
    return true;
  }
  if (num.w == 0) {
    value = sign * 0.0f;
    return true;
  }
  int magnitude = num.digits + num.e10;
  if (magnitude > 40) {
    value = sign * bits_to_float(0x7f800000u);
    return true;
  }
  if (magnitude < -47) {
    value = sign * 0.0f;
    return true;
  }
  if (!num.inexact && num.w <= (std::uint64_t{1} << 24) && num.e10 >= -10 && num.e10 <= 10) {
    float p = 1;
    for (int i = 0; i < (num.e10 < 0 ? -num.e10 : num.e10); ++i) p *= 10;
    float v = static_cast<float>(num.w);
    value = sign * (num.e10 < 0 ? v / p : v * p);
    return true;
  }
  double approx = static_cast<double>(num.w);
  int e = num.e10;
  double p = 1;
  for (int i = 0; i < (e < 0 ? -e : e); ++i) p *= 10;
  approx = e < 0 ? approx / p : approx * p;
  float start = static_cast<float>(approx);
  std::uint64_t bits = float_to_bits(start);
  value =
      sign * bits_to_float(static_cast<std::uint32_t>(correct_rounding(num, bits, single_format)));
  return true;
}

/// Reads `count` digits at s[i]; false if any is not a digit.
EMBER_HD inline bool read_fixed_digits(string_ref s, size_type i, int count, int& value) {
  if (i + count > s.size) return false;
  value = 0;
  for (int k = 0; k < count; ++k) {
    char c = s.data[i + k];
    if (!is_digit(c)) return false;
    value = value * 10 + (c - '0');
  }
  return true;
}

/// "YYYY-MM-DD", optionally followed by "THH:MM:SS" (or a space instead of T), an optional
/// fraction of up to nine digits and an optional "Z": the form scalar::to_text writes.
EMBER_HD EMBER_TEXT_NOINLINE inline bool parse_timestamp(string_ref text, std::int64_t& value) {
  auto s = trim(text);
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (!read_fixed_digits(s, 0, 4, y) || s.size < 10 || s.data[4] != '-' ||
      !read_fixed_digits(s, 5, 2, mo) || s.data[7] != '-' || !read_fixed_digits(s, 8, 2, d))
    return false;
  if (mo < 1 || mo > 12 || d < 1) return false;
  int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > month_days[mo - 1] + (mo == 2 && leap ? 1 : 0)) return false;
  size_type i = 10;
  std::int64_t frac = 0;
  if (i < s.size && (s.data[i] == 'T' || s.data[i] == ' ')) {
    if (!read_fixed_digits(s, i + 1, 2, h) || i + 3 >= s.size || s.data[i + 3] != ':' ||
        !read_fixed_digits(s, i + 4, 2, mi) || i + 6 >= s.size || s.data[i + 6] != ':' ||
        !read_fixed_digits(s, i + 7, 2, sec))
      return false;
    if (h > 23 || mi > 59 || sec > 59) return false;
    i += 9;
    if (i < s.size && s.data[i] == '.') {
      ++i;
      int count = 0;
      for (; i < s.size && is_digit(s.data[i]); ++i, ++count) {
        if (count >= 9) return false;
        frac = frac * 10 + (s.data[i] - '0');
      }
      if (count == 0) return false;
      for (; count < 9; ++count) frac *= 10;
    }
  }
  if (i < s.size && s.data[i] == 'Z') ++i;
  if (i != s.size) return false;
  std::int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
  // int64 nanoseconds end at 2262-04-11T23:47:16.854775807Z and start
  // 1677-09-21T00:12:43.145224192Z.
  constexpr std::int64_t max_secs = 9223372036;
  if (secs > max_secs || (secs == max_secs && frac > 854775807)) return false;
  if (secs < -max_secs - 1 || (secs == -max_secs - 1 && frac < 145224192)) return false;
  value = secs * 1000000000 + frac;
  return true;
}

}  // namespace ember::EMBER_BACKEND_NS::detail
