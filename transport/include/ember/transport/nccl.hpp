#pragma once
// NCCL communicators for all-to-all exchanges among GPU workers: one rank per worker process (one
// GPU each), created from a unique id that the scheduler generates on one rank and ships to the
// others in a message. Raw device bytes move with all_to_all(); whole tables (every column's
// values, offsets, characters and null masks) with all_to_all_tables().
//
// This header compiles without CUDA or NCCL: ncclComm_t lives behind a pimpl, streams travel as
// ember::stream_view, and NCCL and CUDA result codes never leave transport/src/. In a build
// without CUDA every entry point throws ember::invalid_input and nccl_built() is false.
//
// Waiting is bounded: communicators are created non-blocking and every wait polls NCCL's
// asynchronous error state against a deadline, so a dead or missing peer ends in an exception,
// never in a hang. After any failure the communicator is aborted; a job then builds a new one.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <ember/cuda/context.hpp>
#include <ember/host/memory_resource.hpp>
#include <ember/host/table.hpp>
#include <ember/host/types.hpp>

namespace ember::transport {

/// The bytes of an ncclUniqueId (NCCL_UNIQUE_ID_BYTES), so that it can travel in a message. Opaque:
/// it names the bootstrap listener of the process that made it.
using nccl_unique_id = std::array<std::uint8_t, 128>;

/// True when this build of ember was compiled and linked against NCCL (a CUDA build).
[[nodiscard]] bool nccl_built() noexcept;

/// NCCL's version as "major.minor.patch" (for example "2.28.9"), as the linked library reports
/// it; "" when nccl_built() is false. Needs no GPU.
[[nodiscard]] std::string nccl_version();

/// A fresh unique id for a new communicator (ncclGetUniqueId). Call it on one rank only and send
/// the id to the others. It opens a bootstrap listener in this process on the interface that
/// NCCL_SOCKET_IFNAME selects (by default the first non-loopback one), which must be reachable
/// from every rank. Needs no GPU. Throws ember::transport_error with NCCL's message when NCCL
/// fails, ember::invalid_input when nccl_built() is false.
[[nodiscard]] nccl_unique_id nccl_make_unique_id();

/// How one rank joins a communicator.
struct nccl_options {
  /// CUDA device ordinal of this rank. Several ranks of one communicator cannot share a device.
  int device = 0;
  /// Longest wait for every rank to join in nccl_communicator::create().
  std::chrono::milliseconds init_timeout{30'000};
  /// Longest wait for one exchange (all_to_all, all_to_all_tables) and for the orderly
  /// shutdown in the destructor.
  std::chrono::milliseconds op_timeout{60'000};
};

class nccl_communicator;

/// Sends outgoing[r] to rank r and returns the table that each rank sent to this one, in rank
/// order (result[r] came from rank r), in device memory allocated from ctx.resource() on
/// ctx.stream(). A collective: every rank calls it with its own tables.
///
/// `outgoing` holds comm.size() tables in `ctx`'s device memory, all with the column names of
/// outgoing[0] and the column types `types`; every rank must pass the same `types`. The received
/// tables carry outgoing[0]'s names. Inputs may be slices: a string column whose offsets do not
/// start at 0, or a null mask that does not start at a 32-bit word boundary, is first compacted
/// into a copy (ember::copy_slice) so that only compact buffers travel.
///
/// Two exchanges: fixed-size records of int64 (per table the row count, per column the type and
/// the byte counts of its values or characters, offsets and null mask), checked before anything
/// is allocated, then every non-empty buffer, all sends to one peer in one NCCL group. Returns
/// once the received tables are complete (ctx.stream() has drained); synchronises ctx.stream()
/// several times (reading string offsets, the size records).
///
/// Throws ember::invalid_input when `ctx` is not a CUDA context on the communicator's device,
/// when the counts of tables or columns, the names or the types disagree (locally, or with what a
/// peer announces: then every rank that sees the mismatch throws), or when a column with rows is
/// not in device memory; ember::out_of_memory when the received tables do not fit ctx's budget;
/// and what nccl_communicator::all_to_all throws. After any exception the caller should abort
/// the communicator on every rank: peers may still be waiting in the exchange.
[[nodiscard]] std::vector<table> all_to_all_tables(nccl_communicator& comm,
                                                   std::span<const table_view> outgoing,
                                                   std::span<const type_id> types, context& ctx);

/// One rank of an NCCL communicator (RAII owner of an ncclComm_t). Owned by one thread at a time:
/// calls on one communicator must not overlap, abort() included. Not copyable or movable.
class nccl_communicator {
 public:
  /// Raw device bytes to send: `bytes` bytes at `data`.
  struct device_bytes {
    const void* data;
    std::size_t bytes;
  };
  /// Raw device bytes to receive into: room for `bytes` bytes at `data`.
  struct mutable_device_bytes {
    void* data;
    std::size_t bytes;
  };

  /// Joins the communicator named by `id` as rank `rank` of `nranks` on `options.device`. Every
  /// rank calls it (concurrently, in its own process) with the same `id` and `nranks`. Creation
  /// is non-blocking: this polls until every rank has joined, a rank fails, or
  /// options.init_timeout passes. The calling thread's current CUDA device is restored before
  /// returning.
  ///
  /// Throws ember::invalid_input when nranks < 1, rank is outside [0, nranks), a timeout is not
  /// positive, no CUDA device is usable (the message says why) or options.device does not
  /// exist, or when nccl_built() is false; ember::timeout when not every rank joined within
  /// init_timeout; ember::transport_error naming the rank, the size and NCCL's error when NCCL
  /// fails (a peer failed, the id is unreachable); ember::cuda_error when the CUDA runtime
  /// fails. On failure the half-built communicator is aborted.
  [[nodiscard]] static std::unique_ptr<nccl_communicator> create(const nccl_unique_id& id,
                                                                 int nranks, int rank,
                                                                 const nccl_options& options);

  /// A healthy communicator is finalized (pending NCCL work flushed, waiting at most
  /// op_timeout) and destroyed; one that failed, or whose finalization fails, is aborted.
  /// Never throws.
  ~nccl_communicator();
  nccl_communicator(const nccl_communicator&) = delete;
  nccl_communicator& operator=(const nccl_communicator&) = delete;

  /// This rank, in [0, size()).
  [[nodiscard]] int rank() const noexcept { return _rank; }
  /// Number of ranks in the communicator.
  [[nodiscard]] int size() const noexcept { return _size; }
  /// CUDA device ordinal of this rank (nccl_options::device).
  [[nodiscard]] int device() const noexcept { return _options.device; }
  /// The options the communicator was created with.
  [[nodiscard]] const nccl_options& options() const noexcept { return _options; }
  /// False once the communicator was aborted, by abort() or after a failed or timed-out
  /// operation; every later operation throws ember::transport_error.
  [[nodiscard]] bool healthy() const noexcept { return _healthy; }

  /// Aborts the communicator (ncclCommAbort): operations still running on the device are
  /// stopped and its resources freed. Peers see their next operation with this rank fail or
  /// time out. Idempotent. Never throws.
  void abort() noexcept;

  /// Grouped point-to-point exchange of raw device bytes: send[r] goes to rank r and recv[r]
  /// receives what rank r sends to this rank (recv[r].bytes must equal rank r's send[rank()].bytes;
  /// a zero-sized entry, on both sides, is skipped). Both spans hold size() entries; buffers
  /// are device memory of this rank's device. The transfers are queued on `stream` (which must
  /// not be the null stream), after the work already queued there; this then waits until
  /// `stream` has drained, polling with short sleeps. Returns at once when every entry is empty.
  ///
  /// Throws ember::invalid_input for a wrong number of entries, a null pointer with a non-zero
  /// size or the null stream; ember::transport_error when the communicator is not healthy or
  /// NCCL reports an error; ember::timeout when the exchange has not completed within
  /// options().op_timeout (a peer is missing or stuck); ember::cuda_error when the stream
  /// fails. On an NCCL error, a timeout or a stream failure the communicator is aborted first.
  void all_to_all(std::span<const device_bytes> send, std::span<const mutable_device_bytes> recv,
                  stream_view stream);

 private:
  struct impl;
  /// Only create() makes communicators (std::make_unique needs a public constructor).
  class passkey {
    friend class nccl_communicator;
    explicit passkey() = default;
  };

 public:
  nccl_communicator(passkey, int rank, int size, nccl_options options,
                    std::unique_ptr<impl> state) noexcept;

 private:
  /// One buffer of a grouped exchange with `peer`. A peer's sends and this rank's receives from
  /// it are matched in order.
  struct peer_send {
    int peer;
    device_bytes buffer;
  };
  struct peer_recv {
    int peer;
    mutable_device_bytes buffer;
  };
  /// The engine under all_to_all: any number of buffers per peer in one NCCL group; waits,
  /// aborts and throws as all_to_all does.
  void exchange(std::span<const peer_send> sends, std::span<const peer_recv> recvs,
                stream_view stream);
  /// Throws ember::transport_error when the communicator was aborted.
  void expect_healthy(const char* operation) const;
  /// "NCCL rank 1 of 4 (device 1)", for messages.
  [[nodiscard]] std::string describe() const;

  friend std::vector<table> all_to_all_tables(nccl_communicator& comm,
                                              std::span<const table_view> outgoing,
                                              std::span<const type_id> types, context& ctx);

  int _rank;
  int _size;
  nccl_options _options;
  bool _healthy = true;
  std::unique_ptr<impl> _state;
};

}  // namespace ember::transport
