#include "detail/host_tables.hpp"

#include <cstring>
#include <ember/host/column_device_view.hpp>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>

namespace ember::detail {

table concatenate_host(const std::vector<table_view>& tables, const schema& columns,
                       memory_resource& mr) {
  if (tables.empty()) return make_empty_table(columns.names, columns.types, mr);
  std::vector<column> out;
  for (std::size_t c = 0; c < columns.names.size(); ++c) {
    std::vector<column_view> pieces;
    for (const auto& t : tables) pieces.push_back(t.column(static_cast<size_type>(c)));
    out.push_back(concatenate_columns(pieces, columns.types[c], mr));
  }
  return table(std::move(out), columns.names);
}

}  // namespace ember::detail
