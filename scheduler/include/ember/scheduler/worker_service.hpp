#pragma once
// ember::worker_service: the body of `ember worker`. One per GPU (or per CPU worker process).
//
// It connects to the scheduler over UCX, registers (backend, device, memory, task slots, the
// address where its peers fetch blocks) and heartbeats. It runs the tasks it is given on its
// task threads, each owning one backend context: before a task starts, the worker gathers the
// task's shuffle inputs, taking its own blocks by reference and fetching the others from the
// workers that hold them (UCX rendezvous straight into host buffers), so task threads never
// wait on the network. A task's output blocks stay in this worker's store until the scheduler
// releases them; peers fetch them from here. For hash exchanges among GPU workers the scheduler
// may instead ask for an NCCL all-to-all of the whole stage (nccl.hpp).
//
// Every wait is bounded: the registration, each fetch (fetch_timeout), and the scheduler's
// liveness (a lost scheduler connection ends run()).
#include <chrono>
#include <cstddef>
#include <ember/cuda/context.hpp>
#include <ember/host/memory_resource.hpp>
#include <memory>
#include <stop_token>
#include <string>

namespace ember {

struct worker_service_options {
  /// The scheduler's HOST:PORT.
  std::string scheduler;
  /// Where peers reach this worker: HOST[:PORT]; empty: the local address this host uses to
  /// reach the scheduler, on a free port.
  std::string listen;
  backend_choice backend = backend_choice::automatic;
  /// CUDA device of this worker.
  int gpu = 0;
  /// Budget of the worker's device tier, bytes: every task slot's results and scratch, the
  /// shuffle blocks and cached partitions it holds there, and transport staging of device data.
  /// Under pressure the least recently used unpinned partitions spill to the host tier.
  std::size_t device_memory_limit = tracking_resource::unlimited;
  /// Budget of the worker's host tier, bytes (partitions spilled from the device tier, fetched
  /// blocks waiting for their task). Under pressure its partitions spill to disk.
  std::size_t host_memory_limit = tracking_resource::unlimited;
  /// Folder for partitions spilled to disk; empty: a private folder under the system's temporary
  /// folder, removed when the worker stops.
  std::string spill_dir;
  /// Tasks run at once (each on its own thread and context); 0: 2.
  int task_slots = 0;
  /// OpenMP threads of each CPU task thread; 0: max(1, hardware threads / task slots).
  int cpu_threads = 0;
  /// The cluster token (contents of the token file); empty on a loopback cluster without one.
  std::string token;
  /// Let UCX use shared memory to same-host peers (see transport/node.hpp).
  bool shared_memory = false;
  /// Names the worker in logs and `ember status`; empty: "worker@HOST:PORT".
  std::string name;
  /// How long the constructor keeps trying to reach the scheduler.
  std::chrono::milliseconds connect_timeout{30'000};
  /// One block fetch from a peer, from request to arrival.
  std::chrono::milliseconds fetch_timeout{60'000};
  /// A stop request (SIGTERM) ends the wait for the scheduler in the constructor and in run()'s
  /// reconnection with ember::cancelled, instead of waiting out the timeouts.
  std::stop_token stop;
  /// When the scheduler goes away, how long to keep trying to rejoin one at the same address (a
  /// restarted scheduler); the worker's tasks and blocks are dropped meanwhile. 0: stop at once.
  std::chrono::milliseconds reconnect_timeout{30'000};
  /// HOST:PORT of this worker's HTTP endpoint (port 0: any free port); empty: none, the default
  /// (one worker per GPU shares a host, so no fixed port suits them all). It serves /metrics in
  /// the Prometheus text format (tiers, spills, store hits, tasks running, queued and held back,
  /// result bytes in flight) and /healthz (200 while registered with a scheduler, else 503; no
  /// token needed). Beyond loopback /metrics requires `token`, and
  /// without a token the worker refuses to start (http_endpoint.hpp).
  std::string metrics_listen;
};

class worker_service {
 public:
  /// Creates the task contexts, listens for peers, connects and registers. Throws
  /// ember::invalid_input for bad options (CUDA asked for but unavailable),
  /// ember::transport_error or ember::timeout when the scheduler cannot be reached or refuses.
  explicit worker_service(const worker_service_options& options);
  /// stop().
  ~worker_service();
  worker_service(const worker_service&) = delete;
  worker_service& operator=(const worker_service&) = delete;

  /// Serves until `stop` is requested or the scheduler is gone for good (not back within
  /// reconnect_timeout). Returns true for a requested stop, false when the scheduler was lost.
  bool run(std::stop_token stop);
  /// Stops serving: drops queued tasks, lets running ones finish, closes connections. Never
  /// throws; idempotent.
  void stop() noexcept;

  /// The id the scheduler gave this worker.
  [[nodiscard]] int id() const noexcept;
  /// HOST:PORT where peers fetch blocks.
  [[nodiscard]] std::string data_address() const;
  /// "http://HOST:PORT" of the metrics endpoint; "" without one.
  [[nodiscard]] std::string metrics_url() const;
  /// "worker 2: cpu (1 threads) x2 slots, UCX 1.13.1 ...".
  [[nodiscard]] std::string description() const;

 private:
  struct impl;
  std::unique_ptr<impl> _impl;
};

}  // namespace ember
