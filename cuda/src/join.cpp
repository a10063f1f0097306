#include <ember/cuda/join.hpp>
#include <ember/host/error.hpp>
#include <set>
#include <string>

#include "dispatch.hpp"

// `right_out` holds the right columns that reach the output, already under their output names;
// the backend only computes who matches whom and gathers.
EMBER_DECLARE_BACKENDS(table hash_join(const table_view& left, const table_view& right_out,
                                       const table_view& left_keys, const table_view& right_keys,
                                       join_kind kind, context& ctx))

namespace ember {

std::string_view to_string(join_kind kind) noexcept {
  switch (kind) {
    case join_kind::inner:
      return "inner";
    case join_kind::left:
      return "left";
    case join_kind::semi:
      return "semi";
    case join_kind::anti:
      return "anti";
  }
  return "unknown";
}

namespace {

std::string column_list(const table_view& t) {
  std::string names;
  for (const auto& n : t.names()) names += (names.empty() ? "'" : ", '") + n + "'";
  return names.empty() ? "none" : names;
}

/// The key columns named by `keys`, under positional names (a key name may repeat, as in
/// joining on a == x and a == y). Throws invalid_input for an unknown name, listing the
/// table's columns.
table_view key_columns(const table_view& t, const std::vector<std::string>& keys,
                       const std::string& what, std::string_view side) {
  std::vector<column_view> cols;
  std::vector<std::string> names;
  for (const auto& k : keys) {
    EMBER_EXPECTS(t.has_column(k), invalid_input,
                  what + "the " + std::string(side) + " table has no column '" + k +
                      "' (its columns: " + column_list(t) + ")");
    cols.push_back(t.column(k));
    names.push_back("key" + std::to_string(names.size()));
  }
  return table_view(std::move(cols), std::move(names));
}

/// The right table's non-key columns under their output names: a name that a left column (or an
/// earlier right column) already has gets "_right" appended until it is free.
table_view right_output(const table_view& left, const table_view& right,
                        const std::vector<std::string>& right_keys) {
  std::set<std::string, std::less<>> taken(left.names().begin(), left.names().end());
  std::set<std::string, std::less<>> keys(right_keys.begin(), right_keys.end());
  std::vector<column_view> cols;
  std::vector<std::string> names;
  for (size_type c = 0; c < right.num_columns(); ++c) {
    const auto& name = right.names()[c];
    if (keys.count(name) != 0) continue;
    std::string out = name;
    while (taken.count(out) != 0) out += "_right";
    taken.insert(out);
    cols.push_back(right.column(c));
    names.push_back(std::move(out));
  }
  return table_view(std::move(cols), std::move(names));
}

}  // namespace

table hash_join(const table_view& left, const table_view& right,
                const std::vector<std::string>& left_keys,
                const std::vector<std::string>& right_keys, join_kind kind, context& ctx) {
  const std::string what = "hash_join (" + std::string(to_string(kind)) + "): ";
  EMBER_EXPECTS(left_keys.size() == right_keys.size(), invalid_input,
                what + std::to_string(left_keys.size()) + " left key column(s) but " +
                    std::to_string(right_keys.size()) + " right key column(s)");
  EMBER_EXPECTS(!left_keys.empty(), invalid_input, what + "no key columns were given");
  auto lk = key_columns(left, left_keys, what, "left");
  auto rk = key_columns(right, right_keys, what, "right");
  for (std::size_t i = 0; i < left_keys.size(); ++i) {
    auto lt = lk.column(static_cast<size_type>(i)).type();
    auto rt = rk.column(static_cast<size_type>(i)).type();
    EMBER_EXPECTS(lt == rt, invalid_input,
                  what + "key column '" + left_keys[i] + "' of the left table is " +
                      std::string(to_string(lt)) + " but key column '" + right_keys[i] +
                      "' of the right table is " + std::string(to_string(rt)));
  }
  auto right_out = (kind == join_kind::inner || kind == join_kind::left)
                       ? right_output(left, right, right_keys)
                       : table_view{};
  return EMBER_DISPATCH(ctx, hash_join, left, right_out, lk, rk, kind, ctx);
}

}  // namespace ember
