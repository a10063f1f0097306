#pragma once
// ember::http_endpoint: a small HTTP server (cpp-httplib) on its own thread, for what operators
// read with a browser or Prometheus: the scheduler's /metrics, /api/cluster and dashboard, and a
// worker's /metrics. GET only; every route is a callback that returns the whole response.
//
// Security. Bound to a loopback address it serves anyone on the host (like the scheduler's own
// port). Bound to any other address (0.0.0.0 included) it requires the cluster token on every
// route but the open ones (a health check that says nothing): `Authorization: Bearer TOKEN`, or
// `?token=TOKEN` in the URL for a browser. A wrong or missing token gets 401 with a short text
// body; tokens are compared in constant time. Without a token it refuses to start beyond
// loopback.
//
// Every request is bounded: reads and writes time out (io_timeout), an idle connection (kept
// alive, or one that never sends a request) is closed after io_timeout rounded up to whole
// seconds (1 to 5), request bodies are refused beyond a few KiB. Eight threads serve requests.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ember {

/// What a route answers.
struct http_response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

/// One GET route: `path` exactly (no patterns). `handle` runs on one of the endpoint's threads,
/// several at once for concurrent requests: it must be thread-safe and must not block for long.
/// An exception it throws becomes a 500 with the message.
struct http_route {
  std::string path;
  std::function<http_response()> handle;
  /// Served without the token even beyond loopback (a health check that reveals nothing).
  bool open = false;
};

struct http_endpoint_options {
  /// HOST:PORT to bind (port 0: any free port).
  std::string listen = "127.0.0.1:0";
  /// The cluster token; required when `listen` is not a loopback address.
  std::string token;
  /// Flag names for error messages ("--metrics-listen", "--token-file").
  std::string listen_flag = "--metrics-listen";
  std::string token_flag = "--token-file";
  /// Names the endpoint in logs ("scheduler metrics").
  std::string name = "http endpoint";
  /// Bound on reading a request and on writing a response, each.
  std::chrono::milliseconds io_timeout{5'000};
};

class http_endpoint {
 public:
  /// Binds and starts serving `routes` (returns once it accepts connections). Throws
  /// ember::invalid_input for a malformed address or a non-loopback one without a token (naming
  /// options.listen_flag and options.token_flag), ember::transport_error when the address
  /// cannot be bound (in use, not an address of this host).
  http_endpoint(const http_endpoint_options& options, std::vector<http_route> routes);
  /// stop().
  ~http_endpoint();
  http_endpoint(const http_endpoint&) = delete;
  http_endpoint& operator=(const http_endpoint&) = delete;

  /// Stops accepting, finishes the requests in progress, joins the server thread. Never throws;
  /// idempotent.
  void stop() noexcept;

  /// The bound host (as given) and port.
  [[nodiscard]] const std::string& host() const noexcept;
  [[nodiscard]] int port() const noexcept;
  /// "http://HOST:PORT" (IPv6 hosts in brackets).
  [[nodiscard]] std::string url() const;
  /// True when requests must carry the token (bound beyond loopback).
  [[nodiscard]] bool token_required() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> _impl;
};

/// True when `given` equals `expected`, in time that depends only on expected's length (a
/// timing side channel must not reveal how much of a guessed token was right).
[[nodiscard]] bool equal_in_constant_time(const std::string& given,
                                          const std::string& expected) noexcept;

}  // namespace ember
