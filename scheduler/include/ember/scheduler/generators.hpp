#pragma once
// Built-in data generators: deterministic synthetic tables for jobs, benchmarks, examples and
// tests. Every value of row r is a function of (generator, seed, rows, cardinality, r), so a
// generated table is the same whatever the partition count, the worker count or the backend.
//
//   range   id int64 (= r)
//   keyed   key int64 (exactly min(rows, cardinality) distinct values; default rows/10),
//           v int64 in [0, 1e6), x float64 in [0, 1)
//   facts   id int64 (= r), dim_key int64 (in [0, cardinality), every value used once rows reach
//           it; default rows/10), qty int64 in [1, 100], amount float64 in [0, 1000)
//   dims    dim_key int64 (= r), segment string (32 values "segment_00".."segment_31"),
//           weight float64 in [0, 1)
//   sort    key int64 (any value, duplicates rare), payload string (9 characters)
//   events  user_id int64, item_id int64 (in [0, cardinality); default items_for(rows)),
//           ts timestamp (28 days from 2024-01-01), amount float64 in [1, 501), country string
//           (2 letters, 20 values), device string (mobile, desktop, tablet, tv)
//   items   item_id int64 (= r), category string (12 values), brand string ("brand_000"..),
//           price float64 in [0.99, 200.99)
#include <ember/host/memory_resource.hpp>
#include <ember/host/table.hpp>
#include <ember/scheduler/plan.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace ember {

/// The generators' names, sorted.
[[nodiscard]] std::vector<std::string> generator_names();

/// The columns `name` produces. Throws ember::invalid_input for an unknown name, listing the
/// generators.
[[nodiscard]] schema generator_schema(std::string_view name);

/// The cardinality `spec` uses (its own when positive, else the generator's default).
[[nodiscard]] size_type effective_cardinality(const generate_source& spec);

/// Rows [begin, end) of the table `spec` describes, in host memory from `mr`. Throws
/// ember::invalid_input for an unknown generator, negative sizes, or a range outside
/// [0, spec.rows]. Thread-safe.
[[nodiscard]] table generate_rows(const generate_source& spec, size_type begin, size_type end,
                                  memory_resource& mr = default_host_resource());

/// The "events" generator's default item count for `rows` events (also the "items" rows the
/// enrich job joins with): rows/100, at least 1 and at most 100000.
[[nodiscard]] size_type items_for(size_type events_rows) noexcept;

/// Average bytes of one generated row of `name` as table_bytes() counts them (values, string
/// characters and offsets): used to turn a byte size into a row count. Throws like
/// generator_schema.
[[nodiscard]] double generator_row_bytes(std::string_view name);

}  // namespace ember
