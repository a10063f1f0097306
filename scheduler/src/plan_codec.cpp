#include <bit>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/scheduler/plan_codec.hpp>

#include <ember/transport/byte_codec.hpp>

namespace ember {
namespace {

using transport::byte_reader;
using transport::byte_writer;

// Raw column buffers are copied byte for byte, so the format's little-endian promise holds only
// on little-endian hosts (x86-64, AArch64): a big-endian port would have to swap here.
static_assert(std::endian::native == std::endian::little,
              "the plan codec copies column buffers as little-endian bytes");

// The fixed header. Written and read field by field (never memcpy'd), so padding and the host's
// byte order do not leak into the format; the struct pins the size the format promises.
struct plan_header {
  std::uint32_t magic;
  std::uint16_t version;
  std::uint16_t flags;  // what the payload holds: 0 a plan, 1 an expression
  std::uint64_t payload_bytes;
  std::uint64_t checksum;
};
static_assert(sizeof(plan_header) == plan_header_bytes, "the plan header is 24 bytes");

constexpr std::uint16_t payload_plan = 0;
constexpr std::uint16_t payload_expression = 1;

std::vector<std::uint8_t> frame(std::vector<std::uint8_t> payload, std::uint16_t kind) {
  EMBER_EXPECTS(payload.size() <= max_encoded_plan_bytes - plan_header_bytes, invalid_input,
                "the encoded plan would take " + std::to_string(payload.size()) +
                    " bytes, more than the limit of " + std::to_string(max_encoded_plan_bytes));
  byte_writer w;
  w.put(plan_format_magic);
  w.put(plan_format_version);
  w.put(kind);
  w.put(static_cast<std::uint64_t>(payload.size()));
  w.put(transport::fnv1a64(payload));
  auto out = std::move(w.bytes());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::span<const std::uint8_t> unframe(std::span<const std::uint8_t> bytes, std::uint16_t kind) {
  EMBER_EXPECTS(bytes.size() <= max_encoded_plan_bytes, invalid_input,
                "the encoded plan has " + std::to_string(bytes.size()) +
                    " bytes, more than the limit of " + std::to_string(max_encoded_plan_bytes));
  byte_reader r(bytes);
  plan_header h{};
  h.magic = r.get<std::uint32_t>("the header's magic");
  if (h.magic != plan_format_magic) r.fail("this is not an encoded ember plan (bad magic)");
  h.version = r.get<std::uint16_t>("the header's version");
  if (h.version != plan_format_version) {
    throw invalid_input("unsupported plan format version " + std::to_string(h.version) +
                        " (this build reads version " + std::to_string(plan_format_version) + ")");
  }
  h.flags = r.get<std::uint16_t>("the header's flags");
  h.payload_bytes = r.get<std::uint64_t>("the header's payload length");
  h.checksum = r.get<std::uint64_t>("the header's checksum");
  if (h.flags != kind) {
    r.fail(h.flags == payload_expression ? "this is an encoded expression, not a plan"
           : h.flags == payload_plan     ? "this is an encoded plan, not an expression"
                                         : "unknown payload kind " + std::to_string(h.flags));
  }
  if (h.payload_bytes > r.remaining()) {
    throw invalid_input("truncated encoded plan: the header promises " +
                        std::to_string(h.payload_bytes) + " bytes of payload but only " +
                        std::to_string(r.remaining()) + " follow");
  }
  if (h.payload_bytes < r.remaining()) {
    r.fail(std::to_string(r.remaining() - h.payload_bytes) + " trailing bytes after the payload");
  }
  auto payload = bytes.subspan(plan_header_bytes);
  if (transport::fnv1a64(payload) != h.checksum)
    r.fail("checksum mismatch (the payload is corrupt)");
  return payload;
}

// ---- writing --------------------------------------------------------------------------------

void put_scalar(byte_writer& w, const scalar& s) {
  w.put(static_cast<std::uint8_t>(s.type()));
  w.put_bool(s.valid());
  if (!s.valid()) return;
  if (s.type() == type_id::string) {
    w.put_string(s.as_string());
  } else if (is_floating(s.type())) {
    w.put_f64(s.as_float());
  } else {
    w.put(s.as_int());
  }
}

void put_expression(byte_writer& w, const expression& e) {
  w.put(static_cast<std::uint8_t>(e.node_kind()));
  switch (e.node_kind()) {
    case expression::kind::column:
      w.put_string(e.column_name());
      return;
    case expression::kind::literal:
      put_scalar(w, e.literal_value());
      return;
    case expression::kind::unary:
      w.put(static_cast<std::uint8_t>(e.unary_operator()));
      put_expression(w, e.children().at(0));
      return;
    case expression::kind::binary:
      w.put(static_cast<std::uint8_t>(e.binary_operator()));
      put_expression(w, e.children().at(0));
      put_expression(w, e.children().at(1));
      return;
    case expression::kind::cast:
      w.put(static_cast<std::uint8_t>(e.cast_type()));
      put_expression(w, e.children().at(0));
      return;
    case expression::kind::hash:
      w.put_count(e.children().size());
      for (const auto& c : e.children()) put_expression(w, c);
      return;
  }
  throw logic_error("put_expression: unknown expression kind");
}

void put_column(byte_writer& w, const std::string& name, const column_view& c) {
  EMBER_EXPECTS(c.kind() == memory_kind::host, invalid_input,
                "cannot encode column '" + name + "': it is not in host memory");
  // Slices are compacted first, so the wire always carries masks from bit 0 and offsets from 0.
  bool compact = c.mask_offset() == 0 && (c.type() != type_id::string || c.offsets()[0] == 0);
  column copy;
  column_view v = c;
  if (!compact) {
    copy = copy_column(c);
    v = copy.view();
  }
  w.put_string(name);
  w.put(static_cast<std::uint8_t>(v.type()));
  w.put(v.size());
  w.put_bool(v.nullable());
  if (v.nullable())
    w.put_bytes(v.null_mask(),
                static_cast<std::size_t>(bitmask_words(v.size())) * sizeof(bitmask_type));
  if (v.type() == type_id::string) {
    w.put_bytes(v.offsets(), static_cast<std::size_t>(v.size() + 1) * sizeof(size_type));
    w.put_bytes(v.chars(), static_cast<std::size_t>(v.offsets()[v.size()]));
  } else {
    w.put_bytes(v.data(), static_cast<std::size_t>(v.size() * size_of(v.type())));
  }
}

void put_table(byte_writer& w, const table_view& t) {
  w.put_count(static_cast<std::size_t>(t.num_columns()));
  for (size_type c = 0; c < t.num_columns(); ++c) put_column(w, t.names()[c], t.column(c));
}

void put_sort_keys(byte_writer& w, const std::vector<sort_key>& keys) {
  w.put_count(keys.size());
  for (const auto& k : keys) {
    w.put_string(k.column);
    w.put_bool(k.descending);
    w.put_bool(k.nulls_first);
  }
}

struct node_writer {
  byte_writer& w;
  void operator()(const table_source& n) const {
    w.put<std::int32_t>(n.partitions);
    w.put_bool(n.data != nullptr);
    if (n.data) put_table(w, n.data->view());
  }
  void operator()(const text_source& n) const {
    w.put_strings(n.paths);
    w.put<std::int32_t>(n.partitions);
  }
  void operator()(const generate_source& n) const {
    w.put_string(n.generator);
    w.put(n.rows);
    w.put(n.seed);
    w.put(n.cardinality);
    w.put<std::int32_t>(n.partitions);
  }
  void operator()(const dataset_source& n) const {
    w.put_string(n.root);
    w.put_string(n.name);
    w.put(n.version);
    w.put_strings(n.columns);
    w.put_count(n.filters.size());
    for (const auto& f : n.filters) {
      w.put_string(f.column);
      w.put(static_cast<std::uint8_t>(f.op));
      put_scalar(w, f.value);
    }
    w.put<std::int32_t>(n.partitions);
  }
  void operator()(const exchange_source& n) const {
    w.put<std::int32_t>(n.stage);
    w.put(static_cast<std::uint8_t>(n.mode));
    w.put<std::int32_t>(n.partitions);
    w.put_strings(n.columns.names);
    w.put_count(n.columns.types.size());
    for (auto t : n.columns.types) w.put(static_cast<std::uint8_t>(t));
  }
  void operator()(const project_node& n) const {
    w.put(n.input);
    w.put_count(n.columns.size());
    for (const auto& c : n.columns) {
      w.put_string(c.name);
      put_expression(w, c.expr);
    }
  }
  void operator()(const filter_node& n) const {
    w.put(n.input);
    put_expression(w, n.predicate);
  }
  void operator()(const tokenize_node& n) const {
    w.put(n.input);
    w.put_string(n.column);
    w.put_string(n.output);
  }
  void operator()(const aggregate_node& n) const {
    w.put(n.input);
    w.put_strings(n.keys);
    w.put_count(n.aggregations.size());
    for (const auto& a : n.aggregations) {
      w.put(static_cast<std::uint8_t>(a.kind));
      w.put_string(a.column);
      w.put_string(a.output_name);
    }
  }
  void operator()(const distinct_node& n) const {
    w.put(n.input);
    w.put_strings(n.columns);
  }
  void operator()(const sort_node& n) const {
    w.put(n.input);
    put_sort_keys(w, n.keys);
  }
  void operator()(const top_k_node& n) const {
    w.put(n.input);
    put_sort_keys(w, n.keys);
    w.put(n.k);
  }
  void operator()(const join_node& n) const {
    w.put(n.left);
    w.put(n.right);
    w.put_strings(n.left_keys);
    w.put_strings(n.right_keys);
    w.put(static_cast<std::uint8_t>(n.kind));
    w.put(static_cast<std::uint8_t>(n.strategy));
  }
  void operator()(const concat_node& n) const {
    w.put_count(n.inputs.size());
    for (auto i : n.inputs) w.put(i);
  }
  void operator()(const limit_node& n) const {
    w.put(n.input);
    w.put(n.count);
  }
  void operator()(const repartition_node& n) const {
    w.put(n.input);
    w.put_strings(n.keys);
  }
  void operator()(const dataset_sink& n) const {
    w.put(n.input);
    w.put_string(n.staging_dir);
    w.put(static_cast<std::uint8_t>(n.compression));
    w.put<std::int32_t>(n.level);
    w.put(n.row_group_rows);
  }
};

// ---- reading --------------------------------------------------------------------------------

type_id get_type(byte_reader& r, const char* what) {
  auto v = r.get<std::uint8_t>(what);
  if (v >= type_count) r.fail(std::string("unknown type id ") + std::to_string(v) + " for " + what);
  return static_cast<type_id>(v);
}

scalar get_scalar_value(byte_reader& r) {
  auto t = get_type(r, "a literal's type");
  if (!r.get_bool("a literal's validity")) return scalar::null(t);
  switch (t) {
    case type_id::int32: {
      auto v = r.get<std::int64_t>("an int32 literal");
      if (v < INT32_MIN || v > INT32_MAX) r.fail("int32 literal out of range");
      return scalar::int32(static_cast<std::int32_t>(v));
    }
    case type_id::int64:
      return scalar::int64(r.get<std::int64_t>("an int64 literal"));
    case type_id::timestamp_ns:
      return scalar::timestamp(r.get<std::int64_t>("a timestamp literal"));
    case type_id::bool8: {
      auto v = r.get<std::int64_t>("a bool literal");
      if (v != 0 && v != 1) r.fail("bool literal is neither 0 nor 1");
      return scalar::boolean(v == 1);
    }
    case type_id::float32:
      return scalar::float32(static_cast<float>(r.get_f64("a float32 literal")));
    case type_id::float64:
      return scalar::float64(r.get_f64("a float64 literal"));
    case type_id::string:
      return scalar::string(r.get_string("a string literal"));
  }
  r.fail("unknown literal type");
}

expression get_expression(byte_reader& r, int depth) {
  if (depth > max_expression_depth)
    r.fail("expression nested deeper than " + std::to_string(max_expression_depth));
  auto k = r.get_enum(expression::kind::hash, "an expression kind");
  switch (k) {
    case expression::kind::column:
      return expression::col(r.get_string("a column name"));
    case expression::kind::literal:
      return expression::lit(get_scalar_value(r));
    case expression::kind::unary: {
      auto op = r.get_enum(unary_op::is_not_null, "a unary operator");
      return expression::unary(op, get_expression(r, depth + 1));
    }
    case expression::kind::binary: {
      auto op = r.get_enum(binary_op::logical_or, "a binary operator");
      auto lhs = get_expression(r, depth + 1);
      auto rhs = get_expression(r, depth + 1);
      return expression::binary(op, std::move(lhs), std::move(rhs));
    }
    case expression::kind::cast: {
      auto to = get_type(r, "a cast's type");
      return expression::cast(get_expression(r, depth + 1), to);
    }
    case expression::kind::hash: {
      auto n = r.get_count("hash operands", 1);
      if (n == 0) r.fail("hash() without operands");
      std::vector<expression> ops;
      for (std::size_t i = 0; i < n; ++i) ops.push_back(get_expression(r, depth + 1));
      return expression::hash(std::move(ops));
    }
  }
  r.fail("unknown expression kind");
}

buffer copy_in(std::span<const std::uint8_t> bytes) {
  buffer b(bytes.size(), default_host_resource());
  if (!bytes.empty()) std::memcpy(b.data(), bytes.data(), bytes.size());
  return b;
}

column get_column(byte_reader& r, const std::string& name, size_type expected_rows) {
  auto t = get_type(r, "a column's type");
  auto rows = r.get<std::int64_t>("a column's row count");
  if (rows < 0) r.fail("column '" + name + "' has a negative row count");
  if (expected_rows >= 0 && rows != expected_rows)
    r.fail("column '" + name + "' has " + std::to_string(rows) +
           " rows but the table's first "
           "column has " +
           std::to_string(expected_rows));
  // Every row takes at least one byte on the wire, so a row count above the remaining bytes is
  // corrupt; checking it first also keeps the size products below far from overflowing.
  if (static_cast<std::size_t>(rows) > r.remaining())
    r.fail("column '" + name + "' claims " + std::to_string(rows) + " rows but only " +
           std::to_string(r.remaining()) + " bytes remain");
  bool nullable = r.get_bool("a column's null-mask flag");
  buffer mask;
  if (nullable) {
    auto words = static_cast<std::size_t>(bitmask_words(rows));
    mask = copy_in(r.get_bytes(words * sizeof(bitmask_type), "a null mask"));
  }
  if (t == type_id::string) {
    auto off_bytes =
        r.get_bytes(static_cast<std::size_t>(rows + 1) * sizeof(size_type), "string offsets");
    std::vector<size_type> offsets(static_cast<std::size_t>(rows + 1));
    std::memcpy(offsets.data(), off_bytes.data(), off_bytes.size());
    if (offsets[0] != 0) r.fail("column '" + name + "': string offsets do not start at 0");
    for (std::size_t i = 1; i < offsets.size(); ++i)
      if (offsets[i] < offsets[i - 1])
        r.fail("column '" + name + "': string offsets decrease at row " + std::to_string(i - 1));
    auto chars_len = offsets.back();
    if (static_cast<std::size_t>(chars_len) > r.remaining())
      r.fail("column '" + name + "': " + std::to_string(chars_len) +
             " bytes of characters but only " + std::to_string(r.remaining()) + " remain");
    auto chars = r.get_bytes(static_cast<std::size_t>(chars_len), "string characters");
    return column(rows, copy_in(off_bytes), copy_in(chars), std::move(mask));
  }
  auto width = static_cast<std::size_t>(size_of(t));
  auto data = r.get_bytes(static_cast<std::size_t>(rows) * width, "column values");
  if (t == type_id::bool8) {
    for (auto b : data)
      if (b > 1) r.fail("column '" + name + "': a bool value is neither 0 nor 1");
  }
  return column(t, rows, copy_in(data), std::move(mask));
}

std::shared_ptr<const table> get_table(byte_reader& r) {
  auto n = r.get_count("a table's column count", 14);
  std::vector<column> cols;
  std::vector<std::string> names;
  size_type rows = -1;
  for (std::size_t c = 0; c < n; ++c) {
    names.push_back(r.get_string("a column name"));
    for (std::size_t i = 0; i + 1 < names.size(); ++i)
      if (names[i] == names.back()) r.fail("column name '" + names.back() + "' appears twice");
    cols.push_back(get_column(r, names.back(), rows));
    rows = cols.back().size();
  }
  return std::make_shared<const table>(std::move(cols), std::move(names));
}

std::vector<sort_key> get_sort_keys(byte_reader& r) {
  auto n = r.get_count("sort keys", 6);
  std::vector<sort_key> keys;
  for (std::size_t i = 0; i < n; ++i) {
    sort_key k;
    k.column = r.get_string("a sort key");
    k.descending = r.get_bool("a sort direction");
    k.nulls_first = r.get_bool("a sort null order");
    keys.push_back(std::move(k));
  }
  return keys;
}

class node_reader {
 public:
  node_reader(byte_reader& r, node_id self) : _r(r), _self(self) {}

  node_op read(std::size_t tag) {
    switch (tag) {
      case 0: {
        table_source n;
        n.partitions = partitions();
        if (_r.get_bool("a table source's presence flag")) n.data = get_table(_r);
        return n;
      }
      case 1: {
        text_source n;
        n.paths = _r.get_strings("file paths");
        n.partitions = partitions();
        return n;
      }
      case 2: {
        generate_source n;
        n.generator = _r.get_string("a generator name");
        n.rows = _r.get<std::int64_t>("generated rows");
        n.seed = _r.get<std::uint64_t>("a seed");
        n.cardinality = _r.get<std::int64_t>("a cardinality");
        n.partitions = partitions();
        return n;
      }
      case 3: {
        exchange_source n;
        n.stage = _r.get<std::int32_t>("an exchange's stage");
        n.mode = _r.get_enum(exchange_mode::result, "an exchange mode");
        n.partitions = partitions();
        n.columns.names = _r.get_strings("exchange column names");
        auto types = _r.get_count("exchange column types", 1);
        if (types != n.columns.names.size())
          _r.fail("exchange schema: names and types differ in count");
        for (std::size_t i = 0; i < types; ++i)
          n.columns.types.push_back(get_type(_r, "a column type"));
        return n;
      }
      case 4: {
        project_node n;
        n.input = input();
        auto count = _r.get_count("projected columns", 5);
        for (std::size_t i = 0; i < count; ++i) {
          auto name = _r.get_string("a projected column's name");
          n.columns.push_back(named_expression{std::move(name), get_expression(_r, 0)});
        }
        return n;
      }
      case 5: {
        auto in = input();
        return filter_node{in, get_expression(_r, 0)};
      }
      case 6: {
        tokenize_node n;
        n.input = input();
        n.column = _r.get_string("a tokenized column");
        n.output = _r.get_string("a tokenize output name");
        return n;
      }
      case 7: {
        aggregate_node n;
        n.input = input();
        n.keys = _r.get_strings("group keys");
        auto count = _r.get_count("aggregations", 9);
        for (std::size_t i = 0; i < count; ++i) {
          aggregation a;
          a.kind = _r.get_enum(aggregation_kind::count_distinct, "an aggregation kind");
          a.column = _r.get_string("an aggregated column");
          a.output_name = _r.get_string("an aggregation's output name");
          n.aggregations.push_back(std::move(a));
        }
        return n;
      }
      case 8: {
        distinct_node n;
        n.input = input();
        n.columns = _r.get_strings("distinct columns");
        return n;
      }
      case 9: {
        sort_node n;
        n.input = input();
        n.keys = get_sort_keys(_r);
        return n;
      }
      case 10: {
        top_k_node n;
        n.input = input();
        n.keys = get_sort_keys(_r);
        n.k = _r.get<std::int64_t>("top_k's k");
        return n;
      }
      case 11: {
        join_node n;
        n.left = input();
        n.right = input();
        n.left_keys = _r.get_strings("left join keys");
        n.right_keys = _r.get_strings("right join keys");
        n.kind = _r.get_enum(join_kind::anti, "a join kind");
        n.strategy = _r.get_enum(join_strategy::broadcast, "a join strategy");
        return n;
      }
      case 12: {
        concat_node n;
        auto count = _r.get_count("concat inputs", 4);
        for (std::size_t i = 0; i < count; ++i) n.inputs.push_back(input());
        return n;
      }
      case 13: {
        limit_node n;
        n.input = input();
        n.count = _r.get<std::int64_t>("a limit");
        return n;
      }
      case 14: {
        repartition_node n;
        n.input = input();
        n.keys = _r.get_strings("repartition keys");
        return n;
      }
      case 15: {
        dataset_source n;
        n.root = _r.get_string("a dataset root");
        n.name = _r.get_string("a dataset name");
        n.version = _r.get<std::uint64_t>("a dataset version");
        n.columns = _r.get_strings("dataset columns");
        auto count = _r.get_count("dataset filters", 7);
        for (std::size_t i = 0; i < count; ++i) {
          dataset_filter f;
          f.column = _r.get_string("a dataset filter's column");
          f.op = _r.get_enum(comparison::ge, "a dataset filter's comparison");
          f.value = get_scalar_value(_r);
          n.filters.push_back(std::move(f));
        }
        n.partitions = partitions();
        return n;
      }
      case 16: {
        dataset_sink n;
        n.input = input();
        n.staging_dir = _r.get_string("a write's staging folder");
        if (n.staging_dir.empty()) _r.fail("a write without a staging folder");
        n.compression = _r.get_enum(compression_codec::zstd, "a write's compression");
        n.level = _r.get<std::int32_t>("a write's zstd level");
        if (n.level < -131072 || n.level > 22)
          _r.fail("zstd level " + std::to_string(n.level) + " out of range");
        n.row_group_rows = _r.get<std::int64_t>("a write's row group rows");
        if (n.row_group_rows < 1)
          _r.fail("row groups of " + std::to_string(n.row_group_rows) + " rows");
        return n;
      }
      default:
        break;
    }
    _r.fail("unknown node kind " + std::to_string(tag));
  }

 private:
  node_id input() {
    auto id = _r.get<std::int32_t>("a node input");
    if (id < 0 || id >= _self)
      _r.fail("node " + std::to_string(_self) + " reads node " + std::to_string(id) +
              ", which is not an earlier node");
    return id;
  }
  int partitions() {
    auto p = _r.get<std::int32_t>("a partition count");
    if (p < 0) _r.fail("negative partition count " + std::to_string(p));
    return p;
  }
  byte_reader& _r;
  node_id _self;
};

static_assert(std::variant_size_v<node_op> == 17, "a new node kind needs a codec tag");

}  // namespace

std::vector<std::uint8_t> encode_plan(const plan& p) {
  byte_writer w;
  w.put(p.root);
  w.put_count(p.nodes.size());
  for (const auto& n : p.nodes) {
    w.put(static_cast<std::uint8_t>(n.op.index()));
    w.put_string(n.label);
    std::visit(node_writer{w}, n.op);
  }
  return frame(std::move(w.bytes()), payload_plan);
}

plan decode_plan(std::span<const std::uint8_t> bytes) {
  auto payload = unframe(bytes, payload_plan);
  byte_reader r(payload, "encoded plan", plan_header_bytes);
  plan p;
  p.root = r.get<std::int32_t>("the root");
  auto count = r.get_count("the node count", 5);
  if (count > static_cast<std::size_t>(INT32_MAX)) r.fail("too many nodes");
  for (std::size_t i = 0; i < count; ++i) {
    auto tag = r.get<std::uint8_t>("a node kind");
    auto label = r.get_string("a node label");
    auto op = node_reader(r, static_cast<node_id>(i)).read(tag);
    p.nodes.push_back(plan_node{std::move(op), std::move(label)});
  }
  bool root_ok =
      count == 0 ? p.root == -1 : p.root >= 0 && static_cast<std::size_t>(p.root) < count;
  if (!root_ok)
    r.fail("the root " + std::to_string(p.root) + " is not one of the " + std::to_string(count) +
           " nodes");
  if (r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " unread bytes after the plan");
  return p;
}

std::vector<std::uint8_t> encode_expression(const expression& e) {
  byte_writer w;
  put_expression(w, e);
  return frame(std::move(w.bytes()), payload_expression);
}

expression decode_expression(std::span<const std::uint8_t> bytes) {
  auto payload = unframe(bytes, payload_expression);
  byte_reader r(payload, "encoded plan", plan_header_bytes);
  auto e = get_expression(r, 0);
  if (r.remaining() != 0)
    r.fail(std::to_string(r.remaining()) + " unread bytes after the expression");
  return e;
}

}  // namespace ember
