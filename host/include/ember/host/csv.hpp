#pragma once
// CSV in: RFC 4180 files parsed straight into host columns, in parallel ranges for big files.
// The writer is write_csv() in io.hpp; read_csv() reads back exactly what it writes (empty
// unquoted fields are nulls, floats in their shortest exact text, timestamps as ISO 8601 UTC with
// nanoseconds, bools as true/false). One exception: write_csv() writes an empty string like a
// null (an empty unquoted field), so it reads back as null.
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ember/host/memory_resource.hpp>
#include <ember/host/table.hpp>
#include <ember/host/types.hpp>

namespace ember {

/// Column names and types of a CSV file, in file order.
using csv_schema = std::vector<std::pair<std::string, type_id>>;

/// How read_csv() reads a file. The defaults read what write_csv() writes.
struct csv_options {
  /// Separates fields. Must differ from `quote` and `escape` and be neither CR nor LF.
  char delimiter = ',';
  /// Opens and closes a quoted field; inside one, a doubled quote is one quote character, and
  /// delimiters, CR and LF are plain characters. '\0': no quoting.
  char quote = '"';
  /// Not RFC 4180: when not '\0', the character after it (inside or outside quotes) is taken
  /// literally, so that `\"`, `\,` and `\\` are a quote, a delimiter and a backslash.
  char escape = '\0';
  /// The first record holds the column names.
  bool header = true;
  /// Unquoted field texts that read as null (a quoted field is never null: `""` is the empty
  /// string in a string column, and an error in other columns).
  std::vector<std::string> null_values = {""};
  /// When given: the names and types of the columns, in file order. With `header`, the header
  /// must hold exactly these names. Without it, the types are inferred: every column gets the
  /// first of int64, float64, timestamp, bool and string that parses every non-null value of the
  /// first `infer_rows` records (string when all of them are null). int32 and float32 columns,
  /// and bools written 1/0, are only read through a schema.
  std::optional<csv_schema> schema;
  /// Records sampled to infer the types; 0: all of them (a full extra pass over the file).
  size_type infer_rows = 10000;
  /// The longest record accepted, in bytes (without its line ending). Longer ones are an error:
  /// a corrupt file (an unterminated quote, a binary file) fails fast with a clear message.
  size_type max_line_bytes = size_type{1} << 20;
  /// Worker threads; 0: std::thread::hardware_concurrency().
  int threads = 0;
  /// A file whose data is larger than this many bytes is cut into ranges (at least `threads` of
  /// them, each at most this size) whose record boundaries are found and whose records are parsed
  /// in parallel. Results do not depend on it.
  std::size_t split_bytes = std::size_t{64} << 20;
};

/// Reads a CSV file into a host table.
///
/// Accepts RFC 4180: quoted fields holding delimiters, doubled quotes, CR and LF; records ending
/// in LF or CR LF (the last one may have no line ending); a leading UTF-8 byte order mark.
/// Parsing is strict: every record has the header's number of fields, every value parses under
/// its column's type with nothing around it (no blanks are trimmed), text is valid UTF-8, a bare
/// CR outside quotes and a quote inside an unquoted field are errors.
///
/// Values: int32/int64 in decimal with an optional sign; float32/float64 in decimal or scientific
/// notation, or inf/nan; bool as true/false (or True/TRUE/False/FALSE; 1/0 only with a schema);
/// timestamp (nanoseconds since the Unix epoch, UTC) as `YYYY-MM-DD`, or that plus `THH:MM:SS`
/// (or a space instead of the T), an optional fraction of 1 to 9 digits and an optional `Z` or
/// `+HH:MM`/`-HH:MM` offset; string as UTF-8 bytes. Columns hold null masks only where a null was
/// read.
///
/// Names: from the schema, else the header, else `column_1`, `column_2`, ... (also the name of a
/// header field left empty).
///
/// The columns' buffers come from `mr` (the caller owns the returned table). Values and string
/// offsets are parsed straight into them; string characters and null flags are staged on the C++
/// heap per range and then copied into place. Files are mapped, not copied; every file is scanned
/// once (for record boundaries and counts) before it is parsed. Synchronous; uses up to
/// `options.threads` threads and joins them before it returns.
///
/// Throws ember::invalid_input, and returns nothing partial, when the file cannot be read, the
/// options are contradictory or the file is malformed. Messages start with `path:line:` (the
/// 1-based line where the faulty record starts) and name the column by 1-based position and name:
///   events.csv:17: column 3 ('amount'): 'abc' is not a float64
///   events.csv:5: unterminated quoted field (opened at line 5)
///   events.csv:9: 4 fields, expected 6
///   events.csv:2: invalid UTF-8 in column 1 ('name') at byte 3
///   events.csv: empty file (no header)
///   events.csv:3: a line of 10485760 bytes exceeds the limit of 1048576 (max_line_bytes)
/// Throws ember::out_of_memory when `mr` cannot hold the result.
[[nodiscard]] table read_csv(const std::filesystem::path& path, const csv_options& options = {},
                             memory_resource& mr = default_host_resource());

/// Reads several CSV files with the same columns into one table, their rows in the order given.
/// With a header, every file must have the same names as the first (or as the schema); inferred
/// types are the first type of the list above that parses the sampled values of every file.
/// Ranges of all files are parsed in parallel. Throws like read_csv(); a file whose header
/// differs is named, beside the first file; an empty list is an error.
[[nodiscard]] table read_csv(const std::vector<std::filesystem::path>& paths,
                             const csv_options& options = {},
                             memory_resource& mr = default_host_resource());

/// The names and types read_csv() would give the columns of `path` (or of all `paths`), reading
/// only the header and the first `options.infer_rows` records. Returns the schema checked against
/// the header when `options.schema` is given. Throws like read_csv().
[[nodiscard]] csv_schema infer_csv_schema(const std::filesystem::path& path,
                                          const csv_options& options = {});
[[nodiscard]] csv_schema infer_csv_schema(const std::vector<std::filesystem::path>& paths,
                                          const csv_options& options = {});

}  // namespace ember
