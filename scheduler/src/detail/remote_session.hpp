#pragma once
// A client's connection to a remote scheduler: submits plans and waits for their results,
// relaying progress to the waiting thread.
#include <chrono>
#include <condition_variable>
#include <ember/scheduler/client.hpp>
#include <ember/transport/node.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "protocol.hpp"

namespace ember::detail {

class remote_session final : public transport::node_handler {
 public:
  /// Connects to `address` (HOST:PORT) with `options.token`. Throws ember::transport_error or
  /// ember::timeout naming the scheduler.
  remote_session(const std::string& address, const client_options& options);
  ~remote_session() override;

  /// Runs `p` on the cluster; blocks. Throws the job's error with its original type,
  /// ember::transport_error when the scheduler connection is lost while it runs (the next call
  /// connects again, see client_options::reconnect_timeout), ember::timeout past the
  /// job timeout (plus a grace period for the scheduler's own answer).
  [[nodiscard]] job_result run(const plan& p);
  /// The scheduler's view of the cluster.
  [[nodiscard]] cluster_status status(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// One request of the named cache or the residency catalog, with the table of a put; returns
  /// the reply and the table of a get. Throws ember::timeout past `limit`,
  /// ember::transport_error when the scheduler is lost, the reply's error when !ok.
  [[nodiscard]] std::pair<cache_reply_msg, std::optional<table>> cache_call(
      cache_request_msg request, const table_view* rows, std::chrono::milliseconds limit);
  void close() noexcept;
  [[nodiscard]] const std::string& address() const noexcept { return _address; }

  void on_message(transport::connection_id from, std::uint16_t type,
                  std::span<const std::uint8_t> body) override;
  void on_table(transport::connection_id from, std::uint16_t type,
                std::span<const std::uint8_t> header, table rows) override;
  void on_disconnected(transport::connection_id id, const std::string& reason) override;

 private:
  struct pending {
    std::vector<job_progress_msg> progress;
    std::optional<job_result> result;
    std::optional<job_failed_msg> failure;
    std::optional<status_reply_msg> status;
    std::optional<cache_reply_msg> cache;
    std::optional<table> cache_rows;
  };

  /// Connects again when the scheduler went away (for up to the reconnect timeout). Called with
  /// the lock held; throws ember::transport_error when it stays away.
  void reconnect_if_lost(std::unique_lock<std::mutex>& lock);

  std::string _address;
  client_options _options;
  std::unique_ptr<transport::node> _net;
  transport::connection_id _scheduler = 0;
  std::mutex _mutex;  // guards everything below
  std::condition_variable _cv;
  std::map<std::uint64_t, pending> _pending;
  std::uint64_t _next_request = 1;
  std::optional<std::string> _lost;
  std::uint64_t _epoch = 0;  // bumped on every reconnect
  bool _reconnecting = false;
};

}  // namespace ember::detail
