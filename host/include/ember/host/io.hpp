#pragma once
// Host-side files: text lines in, CSV out.
#include <filesystem>
#include <iosfwd>
#include <vector>

#include <ember/host/table.hpp>

namespace ember {

/// Reads every line of every file (LF or CRLF endings, the newline dropped) into one table with
/// a single string column "line". Throws ember::invalid_input naming the file when one cannot be
/// opened or read. Lines longer than `max_line_bytes` are rejected with file:line.
[[nodiscard]] table read_text_lines(const std::vector<std::filesystem::path>& paths,
                                    size_type max_line_bytes = size_type{64} << 20,
                                    memory_resource& mr = default_host_resource());

/// Writes a host table as CSV: a header row with the column names, then one line per row.
/// Strings are quoted when they hold a comma, quote, CR or LF (quotes doubled); nulls are empty
/// fields and empty strings are `""`; floats use the shortest text that reads back exactly; timestamps are ISO 8601 UTC
/// with nanoseconds; bools are true/false.
void write_csv(const table_view& table, std::ostream& out);
/// write_csv into `path` (created or truncated). Throws ember::invalid_input naming the path
/// when it cannot be written.
void write_csv_file(const table_view& table, const std::filesystem::path& path);

}  // namespace ember
