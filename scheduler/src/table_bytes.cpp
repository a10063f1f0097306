#include <ember/host/error.hpp>
#include <ember/scheduler/table_bytes.hpp>

namespace ember {

size_type table_bytes(const table_view& t, context* ctx) {
  size_type total = 0;
  for (const auto& c : t.columns()) {
    auto rows = c.size();
    if (c.nullable()) total += (rows + 7) / 8;
    if (c.type() != type_id::string) {
      total += rows * size_of(c.type());
      continue;
    }
    total += rows * static_cast<size_type>(sizeof(size_type));
    if (rows == 0) continue;
    size_type first = 0, last = 0;
    if (c.kind() == memory_kind::host) {
      first = c.offsets()[0];
      last = c.offsets()[rows];
    } else {
      EMBER_EXPECTS(ctx != nullptr, logic_error,
                    "table_bytes: a device-memory string column needs the context that owns it");
      ctx->copy(&first, c.offsets(), sizeof(size_type));
      ctx->copy(&last, c.offsets() + rows, sizeof(size_type));
    }
    total += last - first;
  }
  return total;
}

}  // namespace ember
