#pragma once
// `ember bench locks`: the scheduler's coordination services (coordination_client.hpp) measured
// from clients over UCX (tcp, loopback), beside a local Redis and a UCX round trip in the same
// run.
//
//   lock    one client: acquire (timeout 10 s, ttl 10 s) + release, `ops` times; round trips per
//           second and p50/p99/max of each pair, beside Redis SET and GET (-c 1).
//   kv      one client: set + get of one 64-byte value, `ops` times, beside Redis SET + GET.
//   queue   4 producer and 4 consumer clients (a connection each) move `messages` 64-byte
//           messages (put; get + ack) through a queue, non-durable and durable; messages per
//           second from the first put to the last ack, beside Redis LPUSH + RPOP with 8 clients.
//   ceiling `ucx_perftest ucp_am_lat` (64 bytes, tcp, loopback): the transport's round trip.
//
// It starts an `ember scheduler` of this same executable (or uses --scheduler) and, when
// `redis-server` and `redis-benchmark` are on PATH, a `redis-server` on a free loopback port
// without persistence; both are killed afterwards. Without Redis the report says why the peer is
// unavailable and its ratios are null.
#include <string>

#include <ember/host/types.hpp>

namespace ember::cli {

struct bench_locks_options {
  /// Lock and key/value round trips per round (after a warm-up of min(1000, ops)).
  size_type ops = 20'000;
  /// Messages through each queue per round.
  size_type messages = 100'000;
  /// Rounds, ember and the peer alternating; the report gives medians with min and max.
  int rounds = 3;
  std::string json_path;
  /// HOST:PORT of a running scheduler to measure; empty: start one on loopback.
  std::string scheduler;
  /// The cluster token of --scheduler (empty: none).
  std::string token;
};

/// `ember bench locks`. Returns the exit code. Throws ember::invalid_input for bad options, and
/// ember::error when a service loses or corrupts a message or a lock's fencing token goes back.
int run_bench_locks(const bench_locks_options& options);

}  // namespace ember::cli
