#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <ember/host/wal.hpp>
#include <mutex>
#include <optional>
#include <string>

namespace ember {
namespace {

using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr std::uint32_t record_magic = 0x4c424d45u;    // "EMBL"
constexpr std::uint32_t snapshot_magic = 0x53424d45u;  // "EMBS"
constexpr std::uint16_t snapshot_version = 1;
constexpr std::size_t record_header_bytes = 24;
constexpr std::size_t snapshot_header_bytes = 32;

[[noreturn]] void io_failure(const std::string& what, const fs::path& path) {
  throw error("write-ahead log: cannot " + what + " " + path.string() + ": " +
              std::strerror(errno));
}

std::uint64_t fnv1a64(std::uint64_t h, const std::uint8_t* p, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

// The checksum covers the sequence number too, so a record copied to another place in the log
// does not pass for the one that belongs there.
std::uint64_t checksum(std::uint64_t seq, std::span<const std::uint8_t> payload) noexcept {
  std::uint8_t s[8];
  for (int i = 0; i < 8; ++i) s[i] = static_cast<std::uint8_t>(seq >> (8 * i));
  return fnv1a64(fnv1a64(0xcbf29ce484222325ULL, s, 8), payload.data(), payload.size());
}

template <class T>
void put(std::vector<std::uint8_t>& out, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i)
    out.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8 * i)));
}
template <class T>
T get(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return static_cast<T>(v);
}

std::string numbered(const char* prefix, std::uint64_t seq, const char* suffix) {
  char name[64];
  std::snprintf(name, sizeof name, "%s%020llu%s", prefix, static_cast<unsigned long long>(seq),
                suffix);
  return name;
}

// Files named prefix<20 digits>suffix, by number.
std::vector<std::pair<std::uint64_t, fs::path>> numbered_files(const fs::path& dir,
                                                               const std::string& prefix,
                                                               const std::string& suffix) {
  std::vector<std::pair<std::uint64_t, fs::path>> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    auto name = e.path().filename().string();
    if (name.size() != prefix.size() + 20 + suffix.size() || name.rfind(prefix, 0) != 0 ||
        name.substr(name.size() - suffix.size()) != suffix)
      continue;
    auto digits = name.substr(prefix.size(), 20);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    out.emplace_back(std::stoull(digits), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::uint8_t> read_whole(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) io_failure("open", path);
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      io_failure("read", path);
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  ::close(fd);
  return out;
}

void write_all(int fd, const std::uint8_t* p, std::size_t n, const fs::path& path) {
  while (n > 0) {
    auto w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      io_failure("write", path);
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void sync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) io_failure("open", dir);
  if (::fsync(fd) != 0) {
    ::close(fd);
    io_failure("sync", dir);
  }
  ::close(fd);
}

// A snapshot's payload when the file is whole and its checksum holds.
std::optional<std::vector<std::uint8_t>> read_snapshot(const fs::path& path, std::uint64_t seq) {
  auto bytes = read_whole(path);
  if (bytes.size() < snapshot_header_bytes) return std::nullopt;
  const auto* h = bytes.data();
  auto size = get<std::uint64_t>(h + 8);
  if (get<std::uint32_t>(h) != snapshot_magic || get<std::uint16_t>(h + 4) != snapshot_version ||
      get<std::uint64_t>(h + 16) != seq || size != bytes.size() - snapshot_header_bytes)
    return std::nullopt;
  std::span<const std::uint8_t> payload(h + snapshot_header_bytes, static_cast<std::size_t>(size));
  if (checksum(seq, payload) != get<std::uint64_t>(h + 24)) return std::nullopt;
  return std::vector<std::uint8_t>(payload.begin(), payload.end());
}

}  // namespace

struct write_ahead_log::impl {
  wal_options options;
  mutable std::mutex mutex;  // guards everything below
  int fd = -1;
  fs::path segment;
  std::size_t segment_size = 0;
  std::uint64_t last_seq = 0;
  bool broken = false;
  bool unsynced = false;  // records appended since the last fdatasync

  ~impl() {
    if (fd >= 0) ::close(fd);
  }

  void open_segment(std::uint64_t first_seq) {
    if (fd >= 0) {
      // Records appended without sync must reach the disk before their segment is closed.
      if (unsynced && ::fdatasync(fd) != 0) io_failure("sync", segment);
      unsynced = false;
      ::close(fd);
    }
    segment = options.dir / numbered("wal-", first_seq, ".log");
    fd = ::open(segment.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) io_failure("open", segment);
    struct stat st {};
    if (::fstat(fd, &st) != 0) io_failure("stat", segment);
    segment_size = static_cast<std::size_t>(st.st_size);
    sync_dir(options.dir);
  }

  void expect_usable() const {
    EMBER_EXPECTS(!broken, error,
                  "write-ahead log " + options.dir.string() +
                      " refuses appends after an I/O failure (restart to replay it)");
  }
};

std::unique_ptr<write_ahead_log> write_ahead_log::open(const wal_options& options,
                                                       const snapshot_fn& on_snapshot,
                                                       const record_fn& on_record,
                                                       wal_replay_report* report) {
  EMBER_EXPECTS(!options.dir.empty(), invalid_input, "write-ahead log: no folder given");
  EMBER_EXPECTS(options.segment_bytes >= 4096, invalid_input,
                "write-ahead log: segments of " + std::to_string(options.segment_bytes) +
                    " bytes are too small (at least 4096)");
  auto started = clock_type::now();
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  EMBER_EXPECTS(!ec, invalid_input,
                "write-ahead log: cannot create " + options.dir.string() + ": " + ec.message());
  wal_replay_report r;

  // The newest snapshot that reads back whole.
  auto snapshots = numbered_files(options.dir, "snapshot-", ".bin");
  for (auto it = snapshots.rbegin(); it != snapshots.rend(); ++it) {
    auto state = read_snapshot(it->second, it->first);
    if (!state) {
      logger().warn("write-ahead log: ignoring damaged snapshot {}", it->second.string());
      continue;
    }
    on_snapshot(it->first, *state);
    r.snapshot_seq = it->first;
    break;
  }
  r.last_seq = r.snapshot_seq;

  // Then every record after it, until the first one that is not good.
  auto segments = numbered_files(options.dir, "wal-", ".log");
  bool stopped = false;
  fs::path tail_segment;
  for (std::size_t s = 0; s < segments.size(); ++s) {
    const auto& [first, path] = segments[s];
    if (stopped) {
      r.dropped_bytes += static_cast<std::uint64_t>(fs::file_size(path));
      fs::remove(path);
      continue;
    }
    auto bytes = read_whole(path);
    std::size_t at = 0;
    auto stop = [&](const std::string& why) {
      stopped = true;
      r.dropped_reason = path.filename().string() + " at byte " + std::to_string(at) + ": " + why;
      r.dropped_bytes += bytes.size() - at;
      fs::resize_file(path, at);
    };
    while (at < bytes.size()) {
      if (bytes.size() - at < record_header_bytes) {
        stop("a torn record header");
        break;
      }
      const auto* h = bytes.data() + at;
      auto size = get<std::uint32_t>(h + 4);
      auto seq = get<std::uint64_t>(h + 8);
      if (get<std::uint32_t>(h) != record_magic) {
        stop("bad magic");
        break;
      }
      if (size > max_wal_record_bytes) {
        stop("a record length of " + std::to_string(size) + " bytes");
        break;
      }
      if (bytes.size() - at - record_header_bytes < size) {
        stop("a torn record");
        break;
      }
      std::span<const std::uint8_t> payload(h + record_header_bytes, size);
      if (checksum(seq, payload) != get<std::uint64_t>(h + 16)) {
        stop("checksum mismatch");
        break;
      }
      // Records the snapshot already holds are skipped; after it, the sequence has no gaps.
      if (seq > r.last_seq) {
        if (seq != r.last_seq + 1) {
          stop("record " + std::to_string(seq) + " follows record " + std::to_string(r.last_seq));
          break;
        }
        on_record(seq, payload);
        ++r.records;
        r.bytes += size;
        r.last_seq = seq;
      }
      at += record_header_bytes + size;
    }
    tail_segment = path;
  }
  if (r.dropped_bytes > 0) {
    logger().warn("write-ahead log {}: dropped {} bytes after record {} ({})", options.dir.string(),
                  r.dropped_bytes, r.last_seq, r.dropped_reason);
  }

  auto state = std::make_unique<impl>();
  state->options = options;
  state->last_seq = r.last_seq;
  if (tail_segment.empty() || fs::file_size(tail_segment) >= options.segment_bytes) {
    state->open_segment(r.last_seq + 1);
  } else {
    state->segment = tail_segment;
    state->fd = ::open(tail_segment.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (state->fd < 0) io_failure("open", tail_segment);
    state->segment_size = static_cast<std::size_t>(fs::file_size(tail_segment));
  }
  r.seconds = std::chrono::duration<double>(clock_type::now() - started).count();
  logger().info("write-ahead log {}: replayed snapshot {} and {} records ({} bytes) in {:.3f} s",
                options.dir.string(), r.snapshot_seq, r.records, r.bytes, r.seconds);
  if (report != nullptr) *report = r;
  return std::unique_ptr<write_ahead_log>(new write_ahead_log(std::move(state)));
}

write_ahead_log::write_ahead_log(std::unique_ptr<impl> state) : _impl(std::move(state)) {}
write_ahead_log::~write_ahead_log() = default;

std::uint64_t write_ahead_log::append(std::span<const std::uint8_t> payload) {
  EMBER_EXPECTS(payload.size() <= max_wal_record_bytes, invalid_input,
                "write-ahead log: a record of " + std::to_string(payload.size()) +
                    " bytes exceeds the limit of " + std::to_string(max_wal_record_bytes));
  std::lock_guard lock(_impl->mutex);
  auto& s = *_impl;
  s.expect_usable();
  auto seq = s.last_seq + 1;
  std::vector<std::uint8_t> record;
  record.reserve(record_header_bytes + payload.size());
  put(record, record_magic);
  put(record, static_cast<std::uint32_t>(payload.size()));
  put(record, seq);
  put(record, checksum(seq, payload));
  record.insert(record.end(), payload.begin(), payload.end());
  try {
    if (s.segment_size > 0 && s.segment_size + record.size() > s.options.segment_bytes)
      s.open_segment(seq);
    write_all(s.fd, record.data(), record.size(), s.segment);
    if (s.options.sync) {
      if (::fdatasync(s.fd) != 0) io_failure("sync", s.segment);
    } else {
      s.unsynced = true;
    }
  } catch (...) {
    // A half-written record is a torn tail for the next replay; nothing may follow it.
    s.broken = true;
    throw;
  }
  s.segment_size += record.size();
  s.last_seq = seq;
  return seq;
}

void write_ahead_log::sync() {
  std::lock_guard lock(_impl->mutex);
  auto& s = *_impl;
  if (!s.unsynced) return;
  s.expect_usable();
  if (::fdatasync(s.fd) != 0) {
    s.broken = true;
    io_failure("sync", s.segment);
  }
  s.unsynced = false;
}

void write_ahead_log::snapshot(std::span<const std::uint8_t> state) {
  EMBER_EXPECTS(state.size() <= max_wal_record_bytes, invalid_input,
                "write-ahead log: a snapshot of " + std::to_string(state.size()) +
                    " bytes exceeds the limit of " + std::to_string(max_wal_record_bytes));
  std::lock_guard lock(_impl->mutex);
  auto& s = *_impl;
  s.expect_usable();
  auto seq = s.last_seq;
  std::vector<std::uint8_t> bytes;
  put(bytes, snapshot_magic);
  put(bytes, snapshot_version);
  put(bytes, std::uint16_t{0});
  put(bytes, static_cast<std::uint64_t>(state.size()));
  put(bytes, seq);
  put(bytes, checksum(seq, state));
  bytes.insert(bytes.end(), state.begin(), state.end());
  auto final_path = s.options.dir / numbered("snapshot-", seq, ".bin");
  auto tmp = s.options.dir / (final_path.filename().string() + ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) io_failure("create", tmp);
  try {
    write_all(fd, bytes.data(), bytes.size(), tmp);
    if (::fsync(fd) != 0) io_failure("sync", tmp);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  fs::rename(tmp, final_path);
  sync_dir(s.options.dir);
  // Later records go to a fresh segment. The previous snapshot and the records after it stay,
  // so that a snapshot damaged on disk still leaves a way to the same state; anything older goes.
  s.open_segment(seq + 1);
  std::uint64_t previous = 0;
  auto snapshots = numbered_files(s.options.dir, "snapshot-", ".bin");
  for (const auto& [at, path] : snapshots)
    if (at < seq) previous = std::max(previous, at);
  for (const auto& [at, path] : snapshots)
    if (at < previous) fs::remove(path);
  auto segments = numbered_files(s.options.dir, "wal-", ".log");
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
    // Every record of segment i comes before the next segment's first one.
    if (segments[i + 1].first <= previous + 1 && segments[i].second != s.segment)
      fs::remove(segments[i].second);
  }
}

std::uint64_t write_ahead_log::last_seq() const {
  std::lock_guard lock(_impl->mutex);
  return _impl->last_seq;
}

const fs::path& write_ahead_log::dir() const noexcept { return _impl->options.dir; }

}  // namespace ember
