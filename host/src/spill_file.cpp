#include <ember/host/spill_file.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxh_x86dispatch.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <ember/host/error.hpp>

namespace fs = std::filesystem;

namespace ember {

namespace {

constexpr std::uint32_t spill_magic = 0x53424d45;  // "EMBS"
constexpr std::uint16_t spill_version = 1;
constexpr std::size_t prefix_bytes = 16;
// A header holds names and sizes only: anything larger is damage, not data.
constexpr std::uint64_t max_header_bytes = std::uint64_t{64} << 20;

// Checksums cover blocks of this many bytes, so that both cores hash (and read) at once.
constexpr std::size_t checksum_block = std::size_t{1} << 20;

std::size_t block_count(std::uint64_t bytes) {
  return static_cast<std::size_t>((bytes + checksum_block - 1) / checksum_block);
}

// Runs body(i) for i in [0, n) on up to `threads` threads (the caller's among them).
template <class F>
void parallel_for(std::size_t n, F body) {
  std::size_t threads = std::min<std::size_t>(
      n, std::max<std::size_t>(1, std::min(4u, std::thread::hardware_concurrency())));
  if (threads <= 1) {
    for (std::size_t i = 0; i < n; ++i) body(i);
    return;
  }
  std::vector<std::exception_ptr> errors(threads);
  auto run = [&](std::size_t t) {
    try {
      for (std::size_t i = t; i < n; i += threads) body(i);
    } catch (...) {
      errors[t] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(run, t);
  run(0);
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::vector<std::uint64_t> block_checksums(const void* data, std::size_t bytes) {
  std::vector<std::uint64_t> sums(block_count(bytes));
  parallel_for(sums.size(), [&](std::size_t i) {
    auto at = i * checksum_block;
    sums[i] = XXH3_64bits_dispatch(static_cast<const char*>(data) + at,
                                   std::min(checksum_block, bytes - at));
  });
  return sums;
}

[[noreturn]] void io_failure(const std::string& what, const fs::path& path) {
  throw error(path.string() + ": " + what + ": " + std::strerror(errno));
}

[[noreturn]] void damaged(const fs::path& path, const std::string& what) {
  throw invalid_input(path.string() + ": " + what);
}

class fd_guard {
 public:
  explicit fd_guard(int fd) : _fd(fd) {}
  ~fd_guard() {
    if (_fd >= 0) ::close(_fd);
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  [[nodiscard]] int get() const noexcept { return _fd; }

 private:
  int _fd;
};

template <class T>
void append(std::vector<std::uint8_t>& out, T v) {
  auto at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

// One buffer of the file: where its bytes are, and what the header records.
struct piece {
  const void* data = nullptr;
  std::size_t bytes = 0;
};

// The null mask of `c` from bit 0: the caller's words when the slice starts on a word, else a
// shifted copy in `scratch`.
const void* mask_from_bit_zero(const column_view& c, std::vector<bitmask_type>& scratch) {
  auto words = static_cast<std::size_t>(bitmask_words(c.size()));
  auto bits = static_cast<std::size_t>(c.mask_offset());
  constexpr std::size_t word_bits = 8 * sizeof(bitmask_type);
  const bitmask_type* src = c.null_mask() + bits / word_bits;
  auto shift = bits % word_bits;
  if (shift == 0) return src;
  scratch.resize(words);
  auto source_words =
      (bits + static_cast<std::size_t>(c.size()) + word_bits - 1) / word_bits - bits / word_bits;
  for (std::size_t i = 0; i < words; ++i) {
    bitmask_type low = src[i] >> shift;
    bitmask_type high = i + 1 < source_words ? src[i + 1] << (word_bits - shift) : 0;
    scratch[i] = low | high;
  }
  return scratch.data();
}

void write_all(int fd, std::vector<iovec>& iov, const fs::path& path) {
  std::size_t first = 0;
  while (first < iov.size()) {
    auto count = static_cast<int>(std::min<std::size_t>(iov.size() - first, IOV_MAX));
    auto n = ::writev(fd, iov.data() + first, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      io_failure("cannot write the spill file", path);
    }
    auto left = static_cast<std::size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      ++first;
    }
    if (left > 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
}

void read_all(int fd, void* dst, std::size_t bytes, std::uint64_t offset, const fs::path& path) {
  auto* p = static_cast<char*>(dst);
  while (bytes > 0) {
    auto n = ::pread(fd, p, bytes, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      io_failure("cannot read the spill file", path);
    }
    if (n == 0) damaged(path, "truncated spill file");
    p += n;
    bytes -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
}

// Reads the header's fields with bounds checks.
class header_reader {
 public:
  header_reader(const std::vector<std::uint8_t>& bytes, const fs::path& path)
      : _bytes(bytes), _path(path) {}
  template <class T>
  T get(const char* what) {
    if (_at + sizeof(T) > _bytes.size()) damaged(_path, std::string("header ends inside ") + what);
    T v;
    std::memcpy(&v, _bytes.data() + _at, sizeof(T));
    _at += sizeof(T);
    return v;
  }
  std::string get_string(std::uint32_t n) {
    if (_at + n > _bytes.size()) damaged(_path, "header ends inside a column name");
    std::string s(reinterpret_cast<const char*>(_bytes.data() + _at), n);
    _at += n;
    return s;
  }
  [[nodiscard]] bool done() const noexcept { return _at == _bytes.size(); }

 private:
  const std::vector<std::uint8_t>& _bytes;
  const fs::path& _path;
  std::size_t _at = 0;
};

}  // namespace

std::int64_t write_spill_file(const fs::path& path, const table_view& rows) {
  std::vector<std::uint8_t> header;
  std::vector<piece> pieces;
  std::vector<std::vector<bitmask_type>> masks(static_cast<std::size_t>(rows.num_columns()));
  std::vector<std::vector<size_type>> rebased(static_cast<std::size_t>(rows.num_columns()));
  auto n = static_cast<std::size_t>(rows.num_rows());
  append<std::uint64_t>(header, n);
  append<std::uint32_t>(header, static_cast<std::uint32_t>(rows.num_columns()));
  for (size_type i = 0; i < rows.num_columns(); ++i) {
    const auto& c = rows.column(i);
    EMBER_EXPECTS(c.kind() != memory_kind::device, invalid_input,
                  path.string() + ": spill files are written from host memory");
    const auto& name = rows.names()[static_cast<std::size_t>(i)];
    append<std::uint32_t>(header, static_cast<std::uint32_t>(name.size()));
    header.insert(header.end(), name.begin(), name.end());
    append<std::uint8_t>(header, static_cast<std::uint8_t>(c.type()));
    append<std::uint8_t>(header, c.nullable() ? 1 : 0);
    std::vector<piece> mine;
    if (c.nullable()) {
      mine.push_back({mask_from_bit_zero(c, masks[static_cast<std::size_t>(i)]),
                      static_cast<std::size_t>(bitmask_words(c.size())) * sizeof(bitmask_type)});
    }
    if (c.type() == type_id::string) {
      const size_type* offsets = c.offsets();
      if (offsets[0] != 0) {
        auto& r = rebased[static_cast<std::size_t>(i)];
        r.resize(n + 1);
        for (std::size_t k = 0; k <= n; ++k) r[k] = offsets[k] - offsets[0];
        offsets = r.data();
      }
      mine.push_back({offsets, (n + 1) * sizeof(size_type)});
      mine.push_back(
          {c.chars() + c.offsets()[0], static_cast<std::size_t>(c.offsets()[n] - c.offsets()[0])});
    } else {
      mine.push_back({c.data(), n * static_cast<std::size_t>(size_of(c.type()))});
    }
    for (const auto& p : mine) {
      append<std::uint64_t>(header, p.bytes);
      for (auto sum : block_checksums(p.data, p.bytes)) append<std::uint64_t>(header, sum);
      pieces.push_back(p);
    }
  }
  std::vector<std::uint8_t> prefix;
  append<std::uint32_t>(prefix, spill_magic);
  append<std::uint16_t>(prefix, spill_version);
  append<std::uint16_t>(prefix, 0);
  append<std::uint64_t>(prefix, header.size());
  std::uint64_t header_checksum = XXH3_64bits_dispatch(header.data(), header.size());

  std::vector<iovec> iov;
  iov.push_back({prefix.data(), prefix.size()});
  iov.push_back({header.data(), header.size()});
  iov.push_back({&header_checksum, sizeof(header_checksum)});
  std::int64_t total = static_cast<std::int64_t>(prefix.size() + header.size() + 8);
  for (const auto& p : pieces) {
    if (p.bytes == 0) continue;
    iov.push_back({const_cast<void*>(p.data), p.bytes});
    total += static_cast<std::int64_t>(p.bytes);
  }
  fd_guard fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (fd.get() < 0) io_failure("cannot create the spill file", path);
  try {
    write_all(fd.get(), iov, path);
  } catch (...) {
    std::error_code ec;
    fs::remove(path, ec);
    throw;
  }
  return total;
}

table read_spill_file(const fs::path& path, memory_resource& mr) {
  EMBER_EXPECTS(mr.kind() != memory_kind::device, invalid_input,
                path.string() + ": spill files are read into host memory");
  fd_guard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    // A spill file that vanished is as lost as a damaged one.
    if (errno == ENOENT) damaged(path, "the spill file is missing");
    io_failure("cannot open the spill file", path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) io_failure("cannot stat the spill file", path);
  auto file_bytes = static_cast<std::uint64_t>(st.st_size);
  if (file_bytes < prefix_bytes)
    damaged(path, "truncated spill file (" + std::to_string(file_bytes) + " bytes)");
  std::uint8_t prefix[prefix_bytes];
  read_all(fd.get(), prefix, prefix_bytes, 0, path);
  std::uint32_t magic;
  std::uint16_t version;
  std::uint64_t header_bytes;
  std::memcpy(&magic, prefix, 4);
  std::memcpy(&version, prefix + 4, 2);
  std::memcpy(&header_bytes, prefix + 8, 8);
  if (magic != spill_magic) damaged(path, "not an ember spill file");
  if (version != spill_version)
    damaged(path, "spill file version " + std::to_string(version) + " (this build reads " +
                      std::to_string(spill_version) + ")");
  if (header_bytes > max_header_bytes || prefix_bytes + header_bytes + 8 > file_bytes)
    damaged(path, "truncated spill file (header of " + std::to_string(header_bytes) + " bytes)");
  std::vector<std::uint8_t> header(header_bytes);
  std::uint64_t header_checksum = 0;
  read_all(fd.get(), header.data(), header.size(), prefix_bytes, path);
  read_all(fd.get(), &header_checksum, 8, prefix_bytes + header_bytes, path);
  if (XXH3_64bits_dispatch(header.data(), header.size()) != header_checksum)
    damaged(path, "checksum mismatch in the spill file's header");

  header_reader h(header, path);
  auto rows = h.get<std::uint64_t>("the row count");
  auto columns = h.get<std::uint32_t>("the column count");
  if (rows > static_cast<std::uint64_t>(std::numeric_limits<size_type>::max()))
    damaged(path, "row count " + std::to_string(rows) + " out of range");
  struct planned {
    std::string name;
    type_id type;
    bool nullable;
    std::vector<std::pair<std::uint64_t, std::vector<std::uint64_t>>> buffers;  // bytes, sums
  };
  std::vector<planned> plan;
  std::uint64_t data_bytes = 0;
  for (std::uint32_t i = 0; i < columns; ++i) {
    planned p;
    p.name = h.get_string(h.get<std::uint32_t>("a column name's length"));
    auto type = h.get<std::uint8_t>("a column type");
    if (type >= type_count)
      damaged(path, "column '" + p.name + "' has unknown type " + std::to_string(type));
    p.type = static_cast<type_id>(type);
    p.nullable = h.get<std::uint8_t>("a nullable flag") != 0;
    std::vector<std::uint64_t> expected;
    if (p.nullable)
      expected.push_back(static_cast<std::uint64_t>(bitmask_words(static_cast<size_type>(rows))) *
                         sizeof(bitmask_type));
    if (p.type == type_id::string) {
      expected.push_back((rows + 1) * sizeof(size_type));
      expected.push_back(std::numeric_limits<std::uint64_t>::max());  // characters: any size
    } else {
      expected.push_back(rows * static_cast<std::uint64_t>(size_of(p.type)));
    }
    for (auto want : expected) {
      auto bytes = h.get<std::uint64_t>("a buffer size");
      if (want != std::numeric_limits<std::uint64_t>::max() && bytes != want)
        damaged(path, "column '" + p.name + "' has a buffer of " + std::to_string(bytes) +
                          " bytes where " + std::to_string(want) + " belong");
      if (bytes > file_bytes) damaged(path, "truncated spill file (column '" + p.name + "')");
      std::vector<std::uint64_t> sums(block_count(bytes));
      for (auto& sum : sums) sum = h.get<std::uint64_t>("a buffer checksum");
      data_bytes += bytes;
      p.buffers.emplace_back(bytes, std::move(sums));
    }
    plan.push_back(std::move(p));
  }
  if (!h.done()) damaged(path, "trailing bytes in the spill file's header");
  auto body_start = prefix_bytes + header_bytes + 8;
  if (body_start + data_bytes != file_bytes)
    damaged(path, (body_start + data_bytes > file_bytes ? "truncated spill file: "
                                                        : "spill file longer than announced: ") +
                      std::to_string(file_bytes) + " bytes where " +
                      std::to_string(body_start + data_bytes) + " belong");

  auto at = body_start;
  std::vector<column> out;
  std::vector<std::string> names;
  // Each block is read and checked on the thread that reads it, while it is in that core's
  // cache.
  auto load = [&](const planned& p, std::size_t b) {
    const auto& [bytes, sums] = p.buffers[b];
    buffer buf(static_cast<std::size_t>(bytes), mr);
    auto* dst = static_cast<char*>(buf.data());
    auto start = at;
    parallel_for(sums.size(), [&](std::size_t i) {
      auto offset = i * checksum_block;
      auto n = std::min<std::size_t>(checksum_block, static_cast<std::size_t>(bytes) - offset);
      read_all(fd.get(), dst + offset, n, start + offset, path);
      if (XXH3_64bits_dispatch(dst + offset, n) != sums[i])
        damaged(path, "checksum mismatch in column '" + p.name + "' (bytes " +
                          std::to_string(offset) + " to " + std::to_string(offset + n) +
                          " of one of its buffers)");
    });
    at += bytes;
    return buf;
  };
  for (const auto& p : plan) {
    std::size_t b = 0;
    buffer mask;
    if (p.nullable) mask = load(p, b++);
    auto n = static_cast<size_type>(rows);
    if (p.type == type_id::string) {
      auto offsets = load(p, b++);
      auto chars = load(p, b++);
      const auto* o = static_cast<const size_type*>(offsets.data());
      if (o[0] != 0 || static_cast<std::uint64_t>(o[n]) != p.buffers[b - 1].first)
        damaged(path, "column '" + p.name + "' has offsets that do not span its characters");
      out.emplace_back(n, std::move(offsets), std::move(chars), std::move(mask));
    } else {
      out.emplace_back(p.type, n, load(p, b++), std::move(mask));
    }
    names.push_back(p.name);
  }
  return table(std::move(out), std::move(names));
}

}  // namespace ember
