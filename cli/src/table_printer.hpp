#pragma once
#include <iosfwd>
#include <string>
#include <vector>

#include <ember/host/scalar.hpp>
#include <ember/host/table.hpp>
#include <nlohmann/json.hpp>

namespace ember::cli {

/// Prints the first `max_rows` rows of a host table as an aligned text table, with a line that
/// says how many rows were left out.
void print_table(const table_view& table, std::ostream& out, size_type max_rows = 20);

/// Prints rows of text cells as an aligned table under `header` (for summaries).
void print_cells(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows, std::ostream& out);

/// A cell as JSON (`ember data head --json`, `ember cache get --json`): numbers as numbers,
/// booleans, strings, timestamps as text, null for null (and for NaN and infinities).
[[nodiscard]] nlohmann::ordered_json scalar_json(const scalar& v);

}  // namespace ember::cli
