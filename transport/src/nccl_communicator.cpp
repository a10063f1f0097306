#include <ember/transport/nccl.hpp>

#include <ember/config.hpp>
#include <ember/cuda/copying.hpp>
#include <ember/host/error.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <utility>

#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif

namespace ember::transport {

namespace {

[[noreturn]] void throw_not_built(const char* operation) {
  throw invalid_input(std::string(operation) +
                      ": ember was built without CUDA, so NCCL is unavailable");
}

}  // namespace

#if EMBER_WITH_CUDA

namespace {

static_assert(sizeof(ncclUniqueId) == std::tuple_size_v<nccl_unique_id>,
              "nccl_unique_id must hold exactly the bytes of an ncclUniqueId");

using clock = std::chrono::steady_clock;

std::string cuda_status_text(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + ")";
}

// The CUDA check of this file (cuda/src/gpu/cuda_try.hpp is private to ember::cuda): a failed
// runtime call becomes ember::cuda_error naming the call and who made it.
void cuda_check(cudaError_t status, const char* call, const std::string& who) {
  if (status == cudaSuccess) return;
  cudaGetLastError();
  throw cuda_error(who + ": " + call + " failed: " + cuda_status_text(status));
}

std::string nccl_status_text(ncclResult_t status, ncclComm_t comm) {
  std::string text = ncclGetErrorString(status);
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && *last != '\0') text += std::string(": ") + last;
  return text;
}

// Makes `device` current for the calling thread and restores the previous one on exit, so that
// a communicator does not silently move its owner's later CUDA work to another device.
class device_scope {
 public:
  device_scope(int device, const std::string& who) {
    cuda_check(cudaGetDevice(&_previous), "cudaGetDevice", who);
    if (_previous != device) {
      cuda_check(cudaSetDevice(device), "cudaSetDevice", who);
      _changed = true;
    }
  }
  // The noexcept flavour for abort and the destructor: a failure leaves the device as it is.
  static device_scope try_enter(int device) noexcept { return device_scope(device); }
  ~device_scope() {
    if (_changed && cudaSetDevice(_previous) != cudaSuccess) cudaGetLastError();
  }
  device_scope(const device_scope&) = delete;
  device_scope& operator=(const device_scope&) = delete;

 private:
  explicit device_scope(int device) noexcept {
    if (cudaGetDevice(&_previous) != cudaSuccess) {
      cudaGetLastError();
      return;
    }
    if (_previous != device) {
      if (cudaSetDevice(device) == cudaSuccess) {
        _changed = true;
      } else {
        cudaGetLastError();
      }
    }
  }
  int _previous = 0;
  bool _changed = false;
};

// Polls `step` until it returns true or `limit` passes (then false). Sleeps between polls,
// starting at a few microseconds so a short exchange is not delayed, growing to a millisecond so
// a long wait does not burn a core.
template <class Step>
bool poll_until(std::chrono::milliseconds limit, Step&& step) {
  const auto deadline = clock::now() + limit;
  auto pause = std::chrono::microseconds(2);
  while (true) {
    if (step()) return true;
    if (clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

}  // namespace

struct nccl_communicator::impl {
  ncclComm_t comm = nullptr;
};

bool nccl_built() noexcept { return true; }

std::string nccl_version() {
  int code = 0;
  if (ncclGetVersion(&code) != ncclSuccess) return "";
  // NCCL_VERSION(X, Y, Z) = X * 10000 + Y * 100 + Z since NCCL 2.9.
  return std::to_string(code / 10000) + "." + std::to_string(code / 100 % 100) + "." +
         std::to_string(code % 100);
}

nccl_unique_id nccl_make_unique_id() {
  ncclUniqueId id{};
  ncclResult_t status = ncclGetUniqueId(&id);
  if (status != ncclSuccess) {
    throw transport_error("ncclGetUniqueId failed: " + nccl_status_text(status, nullptr) +
                          " (is NCCL_SOCKET_IFNAME set to a usable interface?)");
  }
  nccl_unique_id out{};
  std::memcpy(out.data(), id.internal, out.size());
  return out;
}

std::unique_ptr<nccl_communicator> nccl_communicator::create(const nccl_unique_id& id, int nranks,
                                                             int rank,
                                                             const nccl_options& options) {
  EMBER_EXPECTS(nranks >= 1, invalid_input,
                "NCCL communicator: the size must be at least 1, not " + std::to_string(nranks));
  EMBER_EXPECTS(rank >= 0 && rank < nranks, invalid_input,
                "NCCL communicator: rank " + std::to_string(rank) + " is outside [0, " +
                    std::to_string(nranks) + ")");
  EMBER_EXPECTS(options.init_timeout.count() > 0 && options.op_timeout.count() > 0, invalid_input,
                "NCCL communicator: init_timeout and op_timeout must be positive");
  const std::string who = "NCCL rank " + std::to_string(rank) + " of " + std::to_string(nranks) +
                          " (device " + std::to_string(options.device) + ")";

  // Ask for the device before NCCL does: a missing driver or a wrong ordinal is a setup problem
  // that deserves CUDA's own words, not NCCL's "unhandled cuda error".
  int devices = 0;
  cudaError_t probe = cudaGetDeviceCount(&devices);
  if (probe != cudaSuccess) {
    cudaGetLastError();
    throw invalid_input(who + ": no usable CUDA device: " + cuda_status_text(probe));
  }
  EMBER_EXPECTS(options.device >= 0 && options.device < devices, invalid_input,
                who + ": CUDA device " + std::to_string(options.device) + " does not exist (" +
                    std::to_string(devices) + " devices)");

  device_scope on_device(options.device, who);
  ncclUniqueId nccl_id{};
  std::memcpy(nccl_id.internal, id.data(), id.size());
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  ncclResult_t status = ncclCommInitRankConfig(&comm, nranks, nccl_id, rank, &config);

  // Non-blocking creation returns ncclInProgress while the ranks find each other; the
  // communicator's asynchronous error turns into ncclSuccess once every rank has joined.
  ncclResult_t state = status;
  bool done = true;
  if (status == ncclSuccess || status == ncclInProgress) {
    done = poll_until(options.init_timeout, [&] {
      if (ncclCommGetAsyncError(comm, &state) != ncclSuccess) state = ncclInternalError;
      return state != ncclInProgress;
    });
  }
  if (done && state == ncclSuccess) {
    auto state_holder = std::make_unique<impl>();
    state_holder->comm = comm;
    return std::make_unique<nccl_communicator>(passkey{}, rank, nranks, options,
                                               std::move(state_holder));
  }
  std::string reason = done ? nccl_status_text(state, comm) : "";
  if (comm != nullptr) ncclCommAbort(comm);
  if (!done) {
    throw timeout(who + ": not every rank joined within " +
                  std::to_string(options.init_timeout.count()) + " ms");
  }
  throw transport_error(who + ": ncclCommInitRankConfig failed: " + reason);
}

nccl_communicator::nccl_communicator(passkey, int rank, int size, nccl_options options,
                                     std::unique_ptr<impl> state) noexcept
    : _rank(rank), _size(size), _options(options), _state(std::move(state)) {}

nccl_communicator::~nccl_communicator() {
  if (_state == nullptr || _state->comm == nullptr) return;
  if (!_healthy) {
    abort();
    return;
  }
  auto on_device = device_scope::try_enter(_options.device);
  ncclComm_t comm = _state->comm;
  // Finalize flushes what this rank queued and waits for its peers to be quiescent; a peer that
  // never gets there must not hang our teardown, so it is bounded like any other operation.
  bool finalized = false;
  ncclResult_t status = ncclCommFinalize(comm);
  if (status == ncclSuccess || status == ncclInProgress) {
    ncclResult_t state = ncclInProgress;
    bool done = poll_until(_options.op_timeout, [&] {
      if (ncclCommGetAsyncError(comm, &state) != ncclSuccess) state = ncclInternalError;
      return state != ncclInProgress;
    });
    finalized = done && state == ncclSuccess;
  }
  if (finalized) {
    ncclCommDestroy(comm);
  } else {
    ncclCommAbort(comm);
  }
  _state->comm = nullptr;
}

void nccl_communicator::abort() noexcept {
  _healthy = false;
  if (_state == nullptr || _state->comm == nullptr) return;
  auto on_device = device_scope::try_enter(_options.device);
  ncclCommAbort(_state->comm);
  _state->comm = nullptr;
}

void nccl_communicator::all_to_all(std::span<const device_bytes> send,
                                   std::span<const mutable_device_bytes> recv, stream_view stream) {
  EMBER_EXPECTS(send.size() == static_cast<std::size_t>(_size) &&
                    recv.size() == static_cast<std::size_t>(_size),
                invalid_input,
                describe() + ": all_to_all needs " + std::to_string(_size) +
                    " send and receive entries, got " + std::to_string(send.size()) + " and " +
                    std::to_string(recv.size()));
  std::vector<peer_send> sends;
  std::vector<peer_recv> recvs;
  for (int r = 0; r < _size; ++r) {
    sends.push_back({r, send[r]});
    recvs.push_back({r, recv[r]});
  }
  exchange(sends, recvs, stream);
}

void nccl_communicator::exchange(std::span<const peer_send> sends, std::span<const peer_recv> recvs,
                                 stream_view stream) {
  expect_healthy("all_to_all");
  EMBER_EXPECTS(stream.handle != nullptr, invalid_input,
                describe() + ": all_to_all needs a stream; the null stream is not allowed");
  bool any = false;
  for (const auto& s : sends) {
    EMBER_EXPECTS(s.peer >= 0 && s.peer < _size, logic_error,
                  describe() + ": send to rank " + std::to_string(s.peer) + " is out of range");
    EMBER_EXPECTS(s.buffer.bytes == 0 || s.buffer.data != nullptr, invalid_input,
                  describe() + ": the send buffer for rank " + std::to_string(s.peer) +
                      " is null but holds " + std::to_string(s.buffer.bytes) + " bytes");
    any |= s.buffer.bytes > 0;
  }
  for (const auto& r : recvs) {
    EMBER_EXPECTS(
        r.peer >= 0 && r.peer < _size, logic_error,
        describe() + ": receive from rank " + std::to_string(r.peer) + " is out of range");
    EMBER_EXPECTS(r.buffer.bytes == 0 || r.buffer.data != nullptr, invalid_input,
                  describe() + ": the receive buffer for rank " + std::to_string(r.peer) +
                      " is null but holds " + std::to_string(r.buffer.bytes) + " bytes");
    any |= r.buffer.bytes > 0;
  }
  if (!any) return;

  device_scope on_device(_options.device, describe());
  ncclComm_t comm = _state->comm;
  auto s = static_cast<cudaStream_t>(stream.handle);
  auto fail = [&](const std::string& what, ncclResult_t status) {
    std::string message = describe() + ": " + what + ": " + nccl_status_text(status, comm);
    abort();
    throw transport_error(message);
  };

  ncclResult_t status = ncclGroupStart();
  if (status != ncclSuccess) fail("ncclGroupStart failed", status);
  // A failed enqueue still needs its group closed before the communicator can be aborted.
  ncclResult_t enqueue = ncclSuccess;
  for (const auto& x : sends) {
    if (x.buffer.bytes == 0) continue;
    enqueue = ncclSend(x.buffer.data, x.buffer.bytes, ncclUint8, x.peer, comm, s);
    if (enqueue != ncclSuccess) break;
  }
  for (const auto& x : recvs) {
    if (enqueue != ncclSuccess) break;
    if (x.buffer.bytes == 0) continue;
    enqueue = ncclRecv(x.buffer.data, x.buffer.bytes, ncclUint8, x.peer, comm, s);
  }
  status = ncclGroupEnd();
  if (enqueue != ncclSuccess && enqueue != ncclInProgress)
    fail("ncclSend/ncclRecv failed", enqueue);
  if (status != ncclSuccess && status != ncclInProgress) fail("ncclGroupEnd failed", status);

  // ncclGroupEnd of a non-blocking communicator returns before the operations are launched;
  // the asynchronous error reports launch failures and, later, a peer's failure, while the
  // stream reports completion. One deadline covers both.
  ncclResult_t async = ncclSuccess;
  cudaError_t stream_state = cudaErrorNotReady;
  bool done = poll_until(_options.op_timeout, [&] {
    if (ncclCommGetAsyncError(comm, &async) != ncclSuccess) async = ncclInternalError;
    if (async != ncclSuccess && async != ncclInProgress) return true;
    if (async == ncclInProgress) return false;
    stream_state = cudaStreamQuery(s);
    return stream_state != cudaErrorNotReady;
  });
  if (async != ncclSuccess && async != ncclInProgress) fail("the exchange failed", async);
  if (!done) {
    std::string message = describe() + ": all_to_all did not complete within " +
                          std::to_string(_options.op_timeout.count()) +
                          " ms (a peer is missing or stuck); the communicator was aborted";
    abort();
    throw timeout(message);
  }
  if (stream_state != cudaSuccess) {
    cudaGetLastError();
    std::string message =
        describe() + ": the stream of all_to_all failed: " + cuda_status_text(stream_state);
    abort();
    throw cuda_error(message);
  }
}

#else  // !EMBER_WITH_CUDA

struct nccl_communicator::impl {};

bool nccl_built() noexcept { return false; }
std::string nccl_version() { return ""; }
nccl_unique_id nccl_make_unique_id() { throw_not_built("nccl_make_unique_id"); }

std::unique_ptr<nccl_communicator> nccl_communicator::create(const nccl_unique_id&, int, int,
                                                             const nccl_options&) {
  throw_not_built("nccl_communicator::create");
}

nccl_communicator::nccl_communicator(passkey, int rank, int size, nccl_options options,
                                     std::unique_ptr<impl> state) noexcept
    : _rank(rank), _size(size), _options(options), _state(std::move(state)) {}
nccl_communicator::~nccl_communicator() = default;
void nccl_communicator::abort() noexcept { _healthy = false; }

void nccl_communicator::all_to_all(std::span<const device_bytes>,
                                   std::span<const mutable_device_bytes>, stream_view) {
  throw_not_built("nccl_communicator::all_to_all");
}
void nccl_communicator::exchange(std::span<const peer_send>, std::span<const peer_recv>,
                                 stream_view) {
  throw_not_built("nccl_communicator::all_to_all");
}

#endif  // EMBER_WITH_CUDA

void nccl_communicator::expect_healthy(const char* operation) const {
  EMBER_EXPECTS(_healthy, transport_error,
                describe() + ": " + operation + " on a communicator that was aborted");
}

std::string nccl_communicator::describe() const {
  return "NCCL rank " + std::to_string(_rank) + " of " + std::to_string(_size) + " (device " +
         std::to_string(_options.device) + ")";
}

// ---- tables -------------------------------------------------------------------------------------

namespace {

// The size record one rank sends each peer before the table itself, as int64 words:
//   magic | columns | rows | per column: type | values or characters bytes | offsets bytes |
//   null mask bytes
// Byte counts are those of the compact buffers that follow in the second exchange, in the order
// offsets, values (or characters), null mask, per column, skipping empty ones. Both ends run on
// the same kind of little-endian host, and the record never leaves the communicator.
constexpr std::int64_t record_magic = 0x31434e424d45;  // "EMBNC1", little-endian
constexpr std::size_t header_words = 3;
constexpr std::size_t column_words = 4;

std::size_t record_words(std::size_t columns) { return header_words + column_words * columns; }

struct wire_column {
  type_id type = type_id::int64;
  std::int64_t value_bytes = 0;  // values of a fixed-width column, characters of a string column
  std::int64_t offsets_bytes = 0;
  std::int64_t mask_bytes = 0;
};

// One outgoing column as it goes on the wire: compact device pointers and their sizes.
struct outgoing_column {
  wire_column sizes;
  const void* values = nullptr;
  const void* offsets = nullptr;
  const void* mask = nullptr;
};

size_type read_offset(const size_type* device_offset, context& ctx) {
  size_type value = 0;
  ctx.copy(&value, device_offset, sizeof(value));
  return value;
}

std::int64_t mask_bytes_for(size_type rows) {
  return static_cast<std::int64_t>(bitmask_words(rows) * sizeof(bitmask_type));
}

// A compact copy of one column (copy_slice rebases string offsets and realigns the null mask).
column_view compact(const column_view& col, context& ctx, std::vector<table>& keep_alive) {
  table_view one({col}, {"column"});
  keep_alive.push_back(copy_slice(one, 0, col.size(), ctx));
  return keep_alive.back().view().column(0);
}

outgoing_column describe_outgoing(const column_view& input, context& ctx,
                                  std::vector<table>& keep_alive) {
  outgoing_column out;
  out.sizes.type = input.type();
  const size_type rows = input.size();
  if (rows == 0) return out;
  column_view col = input;
  // A mask that starts on a word boundary can be sent from its word; any other offset needs
  // the bits shifted, which copy_slice does (along with the rest of the column).
  bool mask_aligned = !col.nullable() || col.mask_offset() % 32 == 0;
  if (col.type() == type_id::string) {
    size_type first = read_offset(col.offsets(), ctx);
    size_type last = read_offset(col.offsets() + rows, ctx);
    if (first != 0 || !mask_aligned) col = compact(col, ctx, keep_alive);
    out.offsets = col.offsets();
    out.values = col.chars();
    out.sizes.offsets_bytes = static_cast<std::int64_t>((rows + 1) * sizeof(size_type));
    out.sizes.value_bytes = last - first;
  } else {
    if (!mask_aligned) col = compact(col, ctx, keep_alive);
    out.values = col.data();
    out.sizes.value_bytes = rows * size_of(col.type());
  }
  if (col.nullable()) {
    out.mask = col.null_mask() + col.mask_offset() / 32;
    out.sizes.mask_bytes = mask_bytes_for(rows);
  }
  return out;
}

// Checks a peer's record against what this rank expects, before anything is allocated.
std::vector<wire_column> decode_record(const std::int64_t* words, std::span<const type_id> types,
                                       int peer, size_type& rows, const std::string& who) {
  auto bad = [&](const std::string& what) {
    return invalid_input(who + ": the table from rank " + std::to_string(peer) + " " + what);
  };
  if (words[0] != record_magic) throw bad("has a corrupt size record");
  if (words[1] != static_cast<std::int64_t>(types.size())) {
    throw bad("has " + std::to_string(words[1]) + " columns, expected " +
              std::to_string(types.size()));
  }
  rows = words[2];
  if (rows < 0 || rows > std::numeric_limits<std::int64_t>::max() / 16)
    throw bad("claims an impossible row count " + std::to_string(rows));
  std::vector<wire_column> columns(types.size());
  for (std::size_t c = 0; c < types.size(); ++c) {
    const std::int64_t* w = words + header_words + column_words * c;
    auto& col = columns[c];
    const std::string name = "column " + std::to_string(c);
    if (w[0] < 0 || w[0] >= type_count)
      throw bad(name + " has an unknown type code " + std::to_string(w[0]));
    col.type = static_cast<type_id>(w[0]);
    if (col.type != types[c]) {
      throw bad(name + " is " + std::string(to_string(col.type)) + " but this rank expects " +
                std::string(to_string(types[c])));
    }
    col.value_bytes = w[1];
    col.offsets_bytes = w[2];
    col.mask_bytes = w[3];
    bool sizes_ok = col.mask_bytes == 0 || (rows > 0 && col.mask_bytes == mask_bytes_for(rows));
    if (col.type == type_id::string) {
      sizes_ok &= rows == 0 ? col.offsets_bytes == 0 && col.value_bytes == 0
                            : col.offsets_bytes ==
                                      static_cast<std::int64_t>((rows + 1) * sizeof(size_type)) &&
                                  col.value_bytes >= 0;
    } else {
      sizes_ok &= col.offsets_bytes == 0 && col.value_bytes == rows * size_of(col.type);
    }
    if (!sizes_ok) {
      throw bad(name + " announces sizes that do not fit " + std::to_string(rows) + " rows (" +
                std::to_string(col.value_bytes) + ", " + std::to_string(col.offsets_bytes) + ", " +
                std::to_string(col.mask_bytes) + " bytes)");
    }
  }
  return columns;
}

}  // namespace

std::vector<table> all_to_all_tables(nccl_communicator& comm, std::span<const table_view> outgoing,
                                     std::span<const type_id> types, context& ctx) {
  if (!nccl_built()) throw_not_built("all_to_all_tables");
  const std::string who = comm.describe();
  const auto nranks = static_cast<std::size_t>(comm.size());
  comm.expect_healthy("all_to_all_tables");
  EMBER_EXPECTS(ctx.kind() == backend_kind::cuda, invalid_input,
                who + ": all_to_all_tables needs a CUDA context, not a " +
                    std::string(to_string(ctx.kind())) + " context");
  EMBER_EXPECTS(ctx.options().device == comm.device(), invalid_input,
                who + ": the context runs on CUDA device " + std::to_string(ctx.options().device) +
                    ", the communicator on device " + std::to_string(comm.device()));
  EMBER_EXPECTS(outgoing.size() == nranks, invalid_input,
                who + ": all_to_all_tables needs one outgoing table per rank (" +
                    std::to_string(nranks) + "), got " + std::to_string(outgoing.size()));
  const auto& names = outgoing.front().names();
  for (std::size_t r = 0; r < nranks; ++r) {
    const auto& t = outgoing[r];
    const std::string which = who + ": the outgoing table for rank " + std::to_string(r);
    EMBER_EXPECTS(static_cast<std::size_t>(t.num_columns()) == types.size(), invalid_input,
                  which + " has " + std::to_string(t.num_columns()) + " columns but " +
                      std::to_string(types.size()) + " types were given");
    EMBER_EXPECTS(t.names() == names, invalid_input,
                  which + " has other column names than the one for rank 0");
    for (std::size_t c = 0; c < types.size(); ++c) {
      const auto& col = t.column(static_cast<size_type>(c));
      EMBER_EXPECTS(col.type() == types[c], invalid_input,
                    which + ": column '" + names[c] + "' is " + std::string(to_string(col.type())) +
                        ", expected " + std::string(to_string(types[c])));
      EMBER_EXPECTS(col.empty() || col.kind() == memory_kind::device, invalid_input,
                    which + ": column '" + names[c] + "' is in " +
                        std::string(to_string(col.kind())) + " memory, not device memory");
    }
  }

  // Step 1: what each rank will send to each other rank.
  std::vector<table> keep_alive;
  std::vector<std::vector<outgoing_column>> wire(nranks);
  const std::size_t words = record_words(types.size());
  std::vector<std::int64_t> host_records(nranks * words);
  for (std::size_t r = 0; r < nranks; ++r) {
    std::int64_t* rec = host_records.data() + r * words;
    rec[0] = record_magic;
    rec[1] = static_cast<std::int64_t>(types.size());
    rec[2] = outgoing[r].num_rows();
    for (std::size_t c = 0; c < types.size(); ++c) {
      wire[r].push_back(
          describe_outgoing(outgoing[r].column(static_cast<size_type>(c)), ctx, keep_alive));
      const auto& sizes = wire[r].back().sizes;
      std::int64_t* w = rec + header_words + column_words * c;
      w[0] = static_cast<std::int64_t>(sizes.type);
      w[1] = sizes.value_bytes;
      w[2] = sizes.offsets_bytes;
      w[3] = sizes.mask_bytes;
    }
  }
  auto& mr = ctx.resource();
  const auto stream = ctx.stream();
  const std::size_t record_bytes = words * sizeof(std::int64_t);
  buffer send_records(nranks * record_bytes, mr, stream);
  buffer recv_records(nranks * record_bytes, mr, stream);
  ctx.copy(send_records.data(), host_records.data(), send_records.size());
  {
    std::vector<nccl_communicator::device_bytes> send;
    std::vector<nccl_communicator::mutable_device_bytes> recv;
    for (std::size_t r = 0; r < nranks; ++r) {
      send.push_back({send_records.data_as<std::uint8_t>() + r * record_bytes, record_bytes});
      recv.push_back({recv_records.data_as<std::uint8_t>() + r * record_bytes, record_bytes});
    }
    comm.all_to_all(send, recv, stream);
  }
  std::vector<std::int64_t> peer_records(nranks * words);
  ctx.copy(peer_records.data(), recv_records.data(), recv_records.size());

  std::vector<size_type> peer_rows(nranks);
  std::vector<std::vector<wire_column>> incoming(nranks);
  for (std::size_t r = 0; r < nranks; ++r) {
    incoming[r] = decode_record(peer_records.data() + r * words, types, static_cast<int>(r),
                                peer_rows[r], who);
  }

  // Step 2: every buffer, allocated here from the announced sizes. Sends and receives to one
  // peer are matched by NCCL in order, so both ends list a column's buffers in the same order.
  std::vector<std::vector<column>> received(nranks);
  std::vector<nccl_communicator::peer_send> sends;
  std::vector<nccl_communicator::peer_recv> recvs;
  static constexpr size_type zero_offset = 0;
  for (std::size_t r = 0; r < nranks; ++r) {
    const int peer = static_cast<int>(r);
    for (const auto& out : wire[r]) {
      auto send = [&](const void* p, std::int64_t bytes) {
        if (bytes > 0) sends.push_back({peer, {p, static_cast<std::size_t>(bytes)}});
      };
      send(out.offsets, out.sizes.offsets_bytes);
      send(out.values, out.sizes.value_bytes);
      send(out.mask, out.sizes.mask_bytes);
    }
    const size_type rows = peer_rows[r];
    for (const auto& in : incoming[r]) {
      auto receive = [&](std::int64_t bytes) {
        buffer b(static_cast<std::size_t>(bytes), mr, stream);
        if (bytes > 0) recvs.push_back({peer, {b.data(), static_cast<std::size_t>(bytes)}});
        return b;
      };
      if (in.type == type_id::string) {
        buffer offsets;
        if (rows == 0) {
          // Nothing travels for an empty column, but a string column always has offsets [0].
          offsets = buffer(sizeof(size_type), mr, stream);
          ctx.copy(offsets.data(), &zero_offset, sizeof(size_type));
        } else {
          offsets = receive(in.offsets_bytes);
        }
        buffer chars = receive(in.value_bytes);
        buffer mask = in.mask_bytes > 0 ? receive(in.mask_bytes) : buffer{};
        received[r].emplace_back(rows, std::move(offsets), std::move(chars), std::move(mask));
      } else {
        buffer values = receive(in.value_bytes);
        buffer mask = in.mask_bytes > 0 ? receive(in.mask_bytes) : buffer{};
        received[r].emplace_back(in.type, rows, std::move(values), std::move(mask));
      }
    }
  }
  comm.exchange(sends, recvs, stream);

  std::vector<table> result;
  result.reserve(nranks);
  for (auto& cols : received) result.emplace_back(std::move(cols), names);
  return result;
}

}  // namespace ember::transport
