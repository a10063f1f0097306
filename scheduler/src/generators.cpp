#include <algorithm>
#include <array>
#include <cstring>
#include <ember/host/error.hpp>
#include <ember/scheduler/generators.hpp>
#include <numeric>

namespace ember {
namespace {

// A counter-based generator: every value is a hash of (seed, row, column), so any row range can
// be produced on its own (splitmix64's finaliser; Steele, Lea and Flood 2014).
std::uint64_t mix(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
std::uint64_t value_hash(std::uint64_t seed, size_type row, int column) noexcept {
  return mix(mix(seed + 0x9e3779b97f4a7c15ULL) +
             (static_cast<std::uint64_t>(row) * 8 + static_cast<std::uint64_t>(column) + 1) *
                 0x9e3779b97f4a7c15ULL);
}
double unit(std::uint64_t h) noexcept { return static_cast<double>(h >> 11) * 0x1.0p-53; }

// Maps r to ((r mod n) * a + offset) mod n with gcd(a, n) = 1: a bijection on every block of n
// consecutive rows, so exactly min(rows, n) distinct keys appear, in scrambled order.
struct key_permutation {
  std::uint64_t n, a, offset;
  key_permutation(size_type cardinality, std::uint64_t seed)
      : n(static_cast<std::uint64_t>(std::max<size_type>(1, cardinality))) {
    a = (0x9e3779b97f4a7c15ULL % n) | 1;
    while (std::gcd(a, n) != 1) ++a;
    offset = mix(seed) % n;
  }
  [[nodiscard]] std::int64_t operator()(size_type r) const noexcept {
    auto x = static_cast<unsigned __int128>(static_cast<std::uint64_t>(r) % n) * a + offset;
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(x % n));
  }
};

// Column builders writing straight into buffers of the requested resource.
template <class T>
class fixed_builder {
 public:
  fixed_builder(size_type rows, memory_resource& mr)
      : _buf(static_cast<std::size_t>(rows) * sizeof(T), mr), _rows(rows) {}
  T* data() { return _buf.data_as<T>(); }
  column finish(type_id type) { return column(type, _rows, std::move(_buf)); }

 private:
  buffer _buf;
  size_type _rows;
};

class string_builder {
 public:
  explicit string_builder(size_type rows) { _offsets.reserve(static_cast<std::size_t>(rows) + 1); }
  void add(std::string_view s) {
    _chars.append(s);
    _offsets.push_back(static_cast<size_type>(_chars.size()));
  }
  column finish(memory_resource& mr) {
    auto rows = static_cast<size_type>(_offsets.size() - 1);
    buffer off(_offsets.size() * sizeof(size_type), mr);
    std::memcpy(off.data(), _offsets.data(), off.size());
    buffer chars(_chars.size(), mr);
    if (!_chars.empty()) std::memcpy(chars.data(), _chars.data(), _chars.size());
    return column(rows, std::move(off), std::move(chars));
  }

 private:
  std::vector<size_type> _offsets{0};
  std::string _chars;
};

// "prefix_07": a fixed prefix and a zero-padded number.
std::string_view numbered(std::string& scratch, std::string_view prefix, std::uint64_t value,
                          int digits) {
  scratch.assign(prefix);
  char tmp[24];
  for (int d = digits - 1; d >= 0; --d) {
    tmp[d] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  scratch.append(tmp, static_cast<std::size_t>(digits));
  return scratch;
}

constexpr std::array<std::string_view, 20> countries = {"US", "GB", "DE", "FR", "IT", "ES", "NL",
                                                        "SE", "PL", "BR", "MX", "CA", "JP", "KR",
                                                        "IN", "AU", "ZA", "NG", "EG", "AR"};
constexpr std::array<std::string_view, 4> devices = {"mobile", "desktop", "tablet", "tv"};
constexpr std::array<std::string_view, 12> categories = {"books",  "music",   "garden",  "toys",
                                                         "sports", "kitchen", "beauty",  "games",
                                                         "tools",  "office",  "outdoor", "pets"};

constexpr std::int64_t ns_per_day = 86'400'000'000'000LL;
constexpr std::int64_t epoch_2024 = 1'704'067'200LL * 1'000'000'000LL;

struct generator {
  std::string_view name;
  schema columns;
  double row_bytes;
  size_type (*default_cardinality)(size_type rows);
  table (*make)(const generate_source&, size_type, size_type, memory_resource&);
};

size_type tenth(size_type rows) { return std::max<size_type>(1, rows / 10); }
size_type none(size_type) { return 0; }

table make_range(const generate_source&, size_type begin, size_type end, memory_resource& mr) {
  fixed_builder<std::int64_t> id(end - begin, mr);
  for (size_type r = begin; r < end; ++r) id.data()[r - begin] = r;
  std::vector<column> cols;
  cols.push_back(id.finish(type_id::int64));
  return table(std::move(cols), {"id"});
}

table make_keyed(const generate_source& s, size_type begin, size_type end, memory_resource& mr) {
  auto n = end - begin;
  key_permutation perm(effective_cardinality(s), s.seed);
  fixed_builder<std::int64_t> key(n, mr), v(n, mr);
  fixed_builder<double> x(n, mr);
  for (size_type r = begin; r < end; ++r) {
    auto i = r - begin;
    key.data()[i] = perm(r);
    v.data()[i] = static_cast<std::int64_t>(value_hash(s.seed, r, 1) % 1'000'000);
    x.data()[i] = unit(value_hash(s.seed, r, 2));
  }
  std::vector<column> cols;
  cols.push_back(key.finish(type_id::int64));
  cols.push_back(v.finish(type_id::int64));
  cols.push_back(x.finish(type_id::float64));
  return table(std::move(cols), {"key", "v", "x"});
}

table make_facts(const generate_source& s, size_type begin, size_type end, memory_resource& mr) {
  auto n = end - begin;
  key_permutation perm(effective_cardinality(s), s.seed);
  fixed_builder<std::int64_t> id(n, mr), dim_key(n, mr), qty(n, mr);
  fixed_builder<double> amount(n, mr);
  for (size_type r = begin; r < end; ++r) {
    auto i = r - begin;
    id.data()[i] = r;
    dim_key.data()[i] = perm(r);
    qty.data()[i] = 1 + static_cast<std::int64_t>(value_hash(s.seed, r, 1) % 100);
    amount.data()[i] = static_cast<double>(value_hash(s.seed, r, 2) % 100'000) / 100.0;
  }
  std::vector<column> cols;
  cols.push_back(id.finish(type_id::int64));
  cols.push_back(dim_key.finish(type_id::int64));
  cols.push_back(qty.finish(type_id::int64));
  cols.push_back(amount.finish(type_id::float64));
  return table(std::move(cols), {"id", "dim_key", "qty", "amount"});
}

table make_dims(const generate_source& s, size_type begin, size_type end, memory_resource& mr) {
  auto n = end - begin;
  fixed_builder<std::int64_t> dim_key(n, mr);
  fixed_builder<double> weight(n, mr);
  string_builder segment(n);
  std::string scratch;
  for (size_type r = begin; r < end; ++r) {
    auto i = r - begin;
    dim_key.data()[i] = r;
    segment.add(numbered(scratch, "segment_", value_hash(s.seed, r, 1) % 32, 2));
    weight.data()[i] = static_cast<double>(value_hash(s.seed, r, 2) % 1000) / 1000.0;
  }
  std::vector<column> cols;
  cols.push_back(dim_key.finish(type_id::int64));
  cols.push_back(segment.finish(mr));
  cols.push_back(weight.finish(type_id::float64));
  return table(std::move(cols), {"dim_key", "segment", "weight"});
}

table make_sort(const generate_source& s, size_type begin, size_type end, memory_resource& mr) {
  auto n = end - begin;
  fixed_builder<std::int64_t> key(n, mr);
  string_builder payload(n);
  static constexpr char hex[] = "0123456789abcdef";
  char text[9];
  text[0] = 'p';
  for (size_type r = begin; r < end; ++r) {
    key.data()[r - begin] = static_cast<std::int64_t>(value_hash(s.seed, r, 0));
    auto h = value_hash(s.seed, r, 1);
    for (int d = 0; d < 8; ++d) text[1 + d] = hex[(h >> (4 * d)) & 15];
    payload.add(std::string_view(text, 9));
  }
  std::vector<column> cols;
  cols.push_back(key.finish(type_id::int64));
  cols.push_back(payload.finish(mr));
  return table(std::move(cols), {"key", "payload"});
}

table make_events(const generate_source& s, size_type begin, size_type end, memory_resource& mr) {
  auto n = end - begin;
  auto items = static_cast<std::uint64_t>(effective_cardinality(s));
  auto users = static_cast<std::uint64_t>(std::max<size_type>(1, s.rows / 20));
  fixed_builder<std::int64_t> user(n, mr), item(n, mr), ts(n, mr);
  fixed_builder<double> amount(n, mr);
  string_builder country(n), device(n);
  for (size_type r = begin; r < end; ++r) {
    auto i = r - begin;
    user.data()[i] = static_cast<std::int64_t>(value_hash(s.seed, r, 0) % users);
    item.data()[i] = static_cast<std::int64_t>(value_hash(s.seed, r, 1) % items);
    ts.data()[i] =
        epoch_2024 + static_cast<std::int64_t>(value_hash(s.seed, r, 2) %
                                               static_cast<std::uint64_t>(28 * ns_per_day));
    amount.data()[i] = static_cast<double>(100 + value_hash(s.seed, r, 3) % 50'000) / 100.0;
    country.add(countries[value_hash(s.seed, r, 4) % countries.size()]);
    auto d = value_hash(s.seed, r, 5) % 10;
    device.add(devices[d < 5 ? 0 : d < 8 ? 1 : d < 9 ? 2 : 3]);
  }
  std::vector<column> cols;
  cols.push_back(user.finish(type_id::int64));
  cols.push_back(item.finish(type_id::int64));
  cols.push_back(ts.finish(type_id::timestamp_ns));
  cols.push_back(amount.finish(type_id::float64));
  cols.push_back(country.finish(mr));
  cols.push_back(device.finish(mr));
  return table(std::move(cols), {"user_id", "item_id", "ts", "amount", "country", "device"});
}

table make_items(const generate_source& s, size_type begin, size_type end, memory_resource& mr) {
  auto n = end - begin;
  fixed_builder<std::int64_t> item(n, mr);
  fixed_builder<double> price(n, mr);
  string_builder category(n), brand(n);
  std::string scratch;
  for (size_type r = begin; r < end; ++r) {
    auto i = r - begin;
    item.data()[i] = r;
    category.add(categories[value_hash(s.seed, r, 1) % categories.size()]);
    brand.add(numbered(scratch, "brand_", value_hash(s.seed, r, 2) % 500, 3));
    price.data()[i] = static_cast<double>(99 + value_hash(s.seed, r, 3) % 20'000) / 100.0;
  }
  std::vector<column> cols;
  cols.push_back(item.finish(type_id::int64));
  cols.push_back(category.finish(mr));
  cols.push_back(brand.finish(mr));
  cols.push_back(price.finish(type_id::float64));
  return table(std::move(cols), {"item_id", "category", "brand", "price"});
}

size_type items_default(size_type rows) { return items_for(rows); }

// Row bytes as table_bytes() counts them: 8 per fixed 64-bit value, string characters plus 8
// bytes of offset per row.
const std::vector<generator>& registry() {
  using T = type_id;
  static const std::vector<generator> all = {
      {"dims",
       {{"dim_key", "segment", "weight"}, {T::int64, T::string, T::float64}},
       34.0,
       none,
       make_dims},
      {"events",
       {{"user_id", "item_id", "ts", "amount", "country", "device"},
        {T::int64, T::int64, T::timestamp_ns, T::float64, T::string, T::string}},
       32.0 + 10.0 + 13.9,
       items_default,
       make_events},
      {"facts",
       {{"id", "dim_key", "qty", "amount"}, {T::int64, T::int64, T::int64, T::float64}},
       32.0,
       tenth,
       make_facts},
      {"items",
       {{"item_id", "category", "brand", "price"}, {T::int64, T::string, T::string, T::float64}},
       16.0 + 13.5 + 17.0,
       none,
       make_items},
      {"keyed", {{"key", "v", "x"}, {T::int64, T::int64, T::float64}}, 24.0, tenth, make_keyed},
      {"range", {{"id"}, {T::int64}}, 8.0, none, make_range},
      {"sort", {{"key", "payload"}, {T::int64, T::string}}, 25.0, none, make_sort},
  };
  return all;
}

const generator& find(std::string_view name) {
  for (const auto& g : registry())
    if (g.name == name) return g;
  std::string names;
  for (const auto& g : registry()) names += (names.empty() ? "" : ", ") + std::string(g.name);
  throw invalid_input("unknown generator '" + std::string(name) +
                      "' (the generators are: " + names + ")");
}

}  // namespace

std::vector<std::string> generator_names() {
  std::vector<std::string> out;
  for (const auto& g : registry()) out.emplace_back(g.name);
  return out;
}

schema generator_schema(std::string_view name) { return find(name).columns; }

double generator_row_bytes(std::string_view name) { return find(name).row_bytes; }

size_type items_for(size_type events_rows) noexcept {
  return std::clamp<size_type>(events_rows / 100, 1, 100'000);
}

size_type effective_cardinality(const generate_source& spec) {
  if (spec.cardinality > 0) return spec.cardinality;
  return find(spec.generator).default_cardinality(spec.rows);
}

table generate_rows(const generate_source& spec, size_type begin, size_type end,
                    memory_resource& mr) {
  const auto& g = find(spec.generator);
  EMBER_EXPECTS(spec.rows >= 0 && spec.cardinality >= 0, invalid_input,
                "generate " + spec.generator + ": negative size");
  EMBER_EXPECTS(0 <= begin && begin <= end && end <= spec.rows, invalid_input,
                "generate " + spec.generator + ": rows [" + std::to_string(begin) + ", " +
                    std::to_string(end) + ") are outside [0, " + std::to_string(spec.rows) + ")");
  return g.make(spec, begin, end, mr);
}

}  // namespace ember
