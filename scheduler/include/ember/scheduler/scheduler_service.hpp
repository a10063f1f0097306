#pragma once
// ember::scheduler_service: the body of `ember scheduler`. One per cluster.
//
// It listens over UCX (127.0.0.1 unless told otherwise; any other address needs a cluster
// token), accepts workers and clients that present the token, tracks workers by their
// heartbeats (a worker silent for missed_heartbeats intervals, or whose connection fails, is
// dead), and runs jobs: a client's plan is cut into stages at shuffle boundaries (planner.hpp),
// each task goes to a live worker with a free slot, preferring the worker that holds most of its
// input bytes, and shuffle blocks stay on the workers that wrote them until every consumer stage
// is done. Hash exchanges among GPU workers run as one NCCL all-to-all per stage when every
// participant is a CUDA worker (or when a job forces it); otherwise reducers fetch blocks over
// UCX.
//
// Failure. A task that was running on a worker that died runs again elsewhere, and finished
// tasks whose blocks died with it run again if a consumer still needs them; after max_attempts
// the job fails with an error naming the task. A task that fails on its own (bad input, out of
// memory) fails the job at once with the task's error. A job with no live worker for
// no_worker_timeout fails. All state lives in one event-loop thread; the transport's handlers
// only queue events for it.
//
// Metrics. With metrics_listen, the event loop publishes an immutable snapshot of its state every
// 200 ms (and when a job ends or a worker comes or goes); the HTTP endpoint's threads render
// /metrics and the dashboard's JSON from it, and read locks and queues under the coordination
// services' mutex.
#include <chrono>
#include <filesystem>
#include <memory>
#include <stop_token>
#include <string>

namespace ember {

struct scheduler_service_options {
  /// HOST:PORT to listen on (port 0: any free port).
  std::string listen = "127.0.0.1:4242";
  /// Folder for the scheduler's state: scheduler.json (address, pid) and a lock that keeps a
  /// second scheduler off the same folder. Created when missing.
  std::filesystem::path data_dir;
  /// The cluster token (contents of the token file). Required unless `listen` is a loopback
  /// address.
  std::string token;
  /// Let UCX use shared memory between processes on this host (transport/node.hpp).
  bool shared_memory = false;
  /// How often workers heartbeat, and how many intervals of silence make a worker dead. A crash
  /// or a broken link is seen at once (UCX peer error handling and keepalive); silence catches
  /// hangs and pauses. Two seconds, because a single UCX progress call over tcp can take more
  /// than one second while a worker streams a large shuffle (measured: 1.16 s in a 2 GB shuffle
  /// of three workers on two cores), and heartbeats leave through the same thread.
  std::chrono::milliseconds heartbeat_interval{250};
  int missed_heartbeats = 8;
  /// Runs of one task (the first included) before its job fails.
  int max_attempts = 3;
  /// Tasks a worker may hold beyond its slots (queued there, so it never idles between tasks).
  int queue_depth_per_slot = 16;
  /// A job with no live worker for this long fails.
  std::chrono::milliseconds no_worker_timeout{10'000};
  /// How long a dead worker is still listed by `ember status` (workers that rejoin come back
  /// under new ids, so the list would otherwise only grow).
  std::chrono::milliseconds dead_worker_retention{300'000};
  /// HOST:PORT of the scheduler's HTTP endpoint (port 0: any free port); empty: none. It serves
  /// /metrics (Prometheus text format), /api/cluster (the cluster as JSON), the dashboard at /
  /// and /healthz (no token needed: it says "ok" and nothing else). Beyond loopback every other
  /// route requires `token` (http_endpoint.hpp), and without a token the scheduler refuses to
  /// start. Its numbers are at most a few hundred milliseconds old.
  std::string metrics_listen;
  /// When metrics_listen's port is in use, take a free port on its host instead of failing (for
  /// a default address: two schedulers on one host both start; the log names the port taken).
  bool metrics_port_fallback = false;
};

class scheduler_service {
 public:
  /// Takes the data folder, listens and starts the event loop. Throws ember::invalid_input for
  /// a non-loopback address without a token or a data folder held by another scheduler, and
  /// ember::transport_error when the address cannot be bound.
  explicit scheduler_service(const scheduler_service_options& options);
  /// stop().
  ~scheduler_service();
  scheduler_service(const scheduler_service&) = delete;
  scheduler_service& operator=(const scheduler_service&) = delete;

  /// Serves until `stop` is requested.
  void run(std::stop_token stop);
  /// Fails running jobs (ember::cancelled), closes every connection, stops the loop. Never
  /// throws; idempotent.
  void stop() noexcept;

  /// The bound port and HOST:PORT.
  [[nodiscard]] int port() const noexcept;
  [[nodiscard]] std::string address() const;
  /// "http://HOST:PORT" of the metrics endpoint; "" without one.
  [[nodiscard]] std::string metrics_url() const;
  /// What replaying the durable state at start found and how long it took (one line; "" without
  /// a data folder).
  [[nodiscard]] std::string recovery() const;

 private:
  struct impl;
  std::unique_ptr<impl> _impl;
};

}  // namespace ember
