#include <cstring>
#include <ember/cuda/copying.hpp>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/transport/byte_codec.hpp>
#include <ember/transport/table_wire.hpp>

namespace ember::transport {
namespace {

std::size_t mask_bytes(size_type rows) {
  return static_cast<std::size_t>(bitmask_words(rows)) * sizeof(bitmask_type);
}

// A copy of `rows` validity bits starting at bit `offset` of `mask`, starting at bit 0.
std::shared_ptr<std::vector<bitmask_type>> compact_mask(const bitmask_type* mask, size_type offset,
                                                        size_type rows) {
  auto out = std::make_shared<std::vector<bitmask_type>>(
      static_cast<std::size_t>(bitmask_words(rows)), 0u);
  for (size_type i = 0; i < rows; ++i) {
    auto bit = offset + i;
    if ((mask[bit / 32] >> (bit % 32)) & 1u)
      (*out)[static_cast<std::size_t>(i / 32)] |= 1u << (i % 32);
  }
  return out;
}

}  // namespace

namespace {

// The first and last string offsets of every string column, read once per column: from host
// memory directly, or through `ctx` from device memory.
std::vector<std::pair<size_type, size_type>> string_bounds(const table_view& rows, context* ctx) {
  std::vector<std::pair<size_type, size_type>> out(static_cast<std::size_t>(rows.num_columns()));
  for (size_type c = 0; c < rows.num_columns(); ++c) {
    const auto& col = rows.column(c);
    if (col.type() != type_id::string || col.offsets() == nullptr) continue;
    auto& [first, last] = out[static_cast<std::size_t>(c)];
    if (col.kind() == memory_kind::device) {
      EMBER_EXPECTS(ctx != nullptr, invalid_input,
                    "cannot send device string column '" +
                        rows.names()[static_cast<std::size_t>(c)] +
                        "' without its context: stage it on the host");
      ctx->copy(&first, col.offsets(), sizeof(size_type));
      ctx->copy(&last, col.offsets() + col.size(), sizeof(size_type));
    } else {
      first = col.offsets()[0];
      last = col.offsets()[col.size()];
    }
  }
  return out;
}

outgoing_table describe(const table_view& rows, std::shared_ptr<const void> owner, context* ctx) {
  auto bounds = string_bounds(rows, ctx);
  outgoing_table out;
  out.kind = rows.num_columns() > 0 ? rows.column(0).kind() : memory_kind::host;
  auto keep = std::make_shared<std::vector<std::shared_ptr<const void>>>();
  keep->push_back(std::move(owner));
  byte_writer w;
  w.put(rows.num_rows());
  w.put_count(static_cast<std::size_t>(rows.num_columns()));
  for (size_type c = 0; c < rows.num_columns(); ++c) {
    const auto& col = rows.column(c);
    const auto& name = rows.names()[static_cast<std::size_t>(c)];
    EMBER_EXPECTS(col.kind() == out.kind, invalid_input,
                  "cannot send column '" + name + "': the table mixes memory kinds");
    bool device = col.kind() == memory_kind::device;
    w.put_string(name);
    w.put(static_cast<std::uint8_t>(col.type()));
    w.put_bool(col.nullable());
    bool strings = col.type() == type_id::string;
    static constexpr size_type no_offsets[1] = {0};
    const size_type* offsets = strings && col.offsets() != nullptr ? col.offsets() : no_offsets;
    auto [base, end] = bounds[static_cast<std::size_t>(c)];
    w.put(base);
    if (col.nullable()) {
      const void* mask = col.null_mask();
      if (col.mask_offset() % 32 != 0) {
        EMBER_EXPECTS(!device, invalid_input,
                      "cannot send device column '" + name + "': its null mask needs compacting");
        auto copy = compact_mask(col.null_mask(), col.mask_offset(), col.size());
        mask = copy->data();
        keep->push_back(copy);
      } else {
        mask = col.null_mask() + col.mask_offset() / 32;
      }
      out.segments.push_back({mask, mask_bytes(col.size())});
      w.put<std::uint64_t>(mask_bytes(col.size()));
    }
    if (strings) {
      auto offsets_bytes = static_cast<std::size_t>(col.size() + 1) * sizeof(size_type);
      auto chars_bytes = static_cast<std::size_t>(end - base);
      out.segments.push_back({offsets, offsets_bytes});
      out.segments.push_back({col.chars() + base, chars_bytes});
      w.put<std::uint64_t>(offsets_bytes);
      w.put<std::uint64_t>(chars_bytes);
    } else {
      auto bytes = static_cast<std::size_t>(col.size() * size_of(col.type()));
      out.segments.push_back({col.data(), bytes});
      w.put<std::uint64_t>(bytes);
    }
  }
  for (const auto& s : out.segments) out.body_bytes += s.bytes;
  out.layout = std::move(w.bytes());
  out.keepalive = std::move(keep);
  return out;
}

}  // namespace

std::size_t body_bytes(const table_view& rows) {
  std::size_t total = 0;
  for (const auto& col : rows.columns()) {
    if (col.nullable()) total += mask_bytes(col.size());
    if (col.type() == type_id::string) {
      total += static_cast<std::size_t>(col.size() + 1) * sizeof(size_type);
      if (col.offsets() != nullptr)
        total += static_cast<std::size_t>(col.offsets()[col.size()] - col.offsets()[0]);
    } else {
      total += static_cast<std::size_t>(col.size() * size_of(col.type()));
    }
  }
  return total;
}

outgoing_table describe_table(const table_view& rows, std::shared_ptr<const void> owner) {
  return describe(rows, std::move(owner), nullptr);
}

outgoing_table describe_device_table(const table_view& rows, std::shared_ptr<const void> owner,
                                     context& ctx) {
  bool misaligned = false;
  for (const auto& col : rows.columns())
    misaligned |=
        col.kind() == memory_kind::device && col.nullable() && col.mask_offset() % 32 != 0;
  if (!misaligned) return describe(rows, std::move(owner), &ctx);
  auto compact = std::make_shared<const table>(copy_slice(rows, 0, rows.num_rows(), ctx));
  ctx.synchronize();
  return describe(compact->view(), compact, &ctx);
}

incoming_table::incoming_table(std::span<const std::uint8_t> layout, std::uint64_t body_bytes,
                               memory_resource& mr, std::string subject)
    : _subject(std::move(subject)), _body_bytes(body_bytes) {
  byte_reader r(layout, "table layout from " + _subject);
  _rows = r.get<size_type>("rows");
  if (_rows < 0) r.fail("negative row count " + std::to_string(_rows));
  auto columns = r.get_count("columns", 3);
  struct planned {
    column_parts parts;
    std::uint64_t mask = 0, offsets = 0, values = 0;
  };
  std::vector<planned> plan;
  std::uint64_t total = 0;
  auto add = [&](std::uint64_t bytes) {
    if (bytes > body_bytes || total > body_bytes - bytes)
      r.fail("the layout's segments exceed the body of " + std::to_string(body_bytes) + " bytes");
    total += bytes;
  };
  for (std::size_t c = 0; c < columns; ++c) {
    planned p;
    _names.push_back(r.get_string("column name"));
    const auto& name = _names.back();
    auto type = r.get<std::uint8_t>("column type");
    if (type >= type_count)
      r.fail("column '" + name + "' has unknown type id " + std::to_string(type));
    p.parts.type = static_cast<type_id>(type);
    p.parts.nullable = r.get_bool("nullable");
    p.parts.base = r.get<size_type>("offsets base");
    if (p.parts.base < 0) r.fail("column '" + name + "' has a negative offsets base");
    // Every length is checked against the rows before anything is allocated.
    auto expect = [&](std::uint64_t got, std::uint64_t want, const char* what) {
      if (got != want)
        r.fail("column '" + name + "': " + what + " of " + std::to_string(got) + " bytes for " +
               std::to_string(_rows) + " rows (expected " + std::to_string(want) + ")");
    };
    if (static_cast<std::uint64_t>(_rows) > body_bytes * 8 + 8)
      r.fail(std::to_string(_rows) + " rows cannot fit in a body of " + std::to_string(body_bytes) +
             " bytes");
    if (p.parts.nullable) {
      p.mask = r.get<std::uint64_t>("null mask bytes");
      expect(p.mask, mask_bytes(_rows), "a null mask");
      add(p.mask);
    }
    if (p.parts.type == type_id::string) {
      p.offsets = r.get<std::uint64_t>("offsets bytes");
      expect(p.offsets, static_cast<std::uint64_t>(_rows + 1) * sizeof(size_type), "offsets");
      add(p.offsets);
      p.values = r.get<std::uint64_t>("chars bytes");
      add(p.values);
    } else {
      p.values = r.get<std::uint64_t>("values bytes");
      expect(p.values, static_cast<std::uint64_t>(_rows) * size_of(p.parts.type), "values");
      add(p.values);
    }
    plan.push_back(std::move(p));
  }
  if (r.remaining() != 0)
    r.fail(std::to_string(r.remaining()) + " trailing bytes after the layout");
  if (total != body_bytes)
    r.fail("the layout describes " + std::to_string(total) + " bytes but the body has " +
           std::to_string(body_bytes));
  for (auto& p : plan) {
    if (p.parts.nullable) p.parts.mask = buffer(p.mask, mr);
    if (p.parts.type == type_id::string) p.parts.offsets = buffer(p.offsets, mr);
    p.parts.values = buffer(p.values, mr);
    _columns.push_back(std::move(p.parts));
  }
}

std::vector<segment> incoming_table::segments() const {
  std::vector<segment> out;
  for (const auto& c : _columns) {
    if (c.nullable) out.push_back({c.mask.data(), c.mask.size()});
    if (c.type == type_id::string) out.push_back({c.offsets.data(), c.offsets.size()});
    out.push_back({c.values.data(), c.values.size()});
  }
  return out;
}

void incoming_table::fill(std::span<const std::uint8_t> body) {
  EMBER_EXPECTS(body.size() == _body_bytes, invalid_input,
                "table body from " + _subject + " has " + std::to_string(body.size()) +
                    " bytes, not " + std::to_string(_body_bytes));
  std::size_t at = 0;
  for (const auto& s : segments()) {
    if (s.bytes > 0) std::memcpy(const_cast<void*>(s.data), body.data() + at, s.bytes);
    at += s.bytes;
  }
}

table incoming_table::finish() {
  std::vector<column> columns;
  for (std::size_t c = 0; c < _columns.size(); ++c) {
    auto& p = _columns[c];
    const auto& name = _names[c];
    auto bad = [&](const std::string& why) {
      throw invalid_input("bad table from " + _subject + ": column '" + name + "': " + why);
    };
    if (p.type == type_id::string) {
      auto* offsets = p.offsets.data_as<size_type>();
      auto chars = static_cast<size_type>(p.values.size());
      if (offsets[0] != p.base) bad("string offsets do not start at the announced base");
      for (size_type i = 0; i <= _rows; ++i) {
        offsets[i] -= p.base;
        if (i > 0 && offsets[i] < offsets[i - 1])
          bad("string offsets decrease at row " + std::to_string(i - 1));
      }
      if (offsets[_rows] != chars)
        bad("string offsets end at " + std::to_string(offsets[_rows]) + " but " +
            std::to_string(chars) + " characters arrived");
      columns.emplace_back(_rows, std::move(p.offsets), std::move(p.values), std::move(p.mask));
    } else {
      if (p.type == type_id::bool8) {
        auto* b = p.values.data_as<std::uint8_t>();
        for (size_type i = 0; i < _rows; ++i)
          if (b[i] > 1) bad("a bool value is neither 0 nor 1 at row " + std::to_string(i));
      }
      columns.emplace_back(p.type, _rows, std::move(p.values), std::move(p.mask));
    }
  }
  _columns.clear();
  return table(std::move(columns), std::move(_names));
}

}  // namespace ember::transport
