#include <sys/socket.h>

#include <ember/host/error.hpp>
#include <ember/host/log.hpp>
#include <ember/scheduler/http_endpoint.hpp>
#include <ember/transport/address.hpp>
#include <httplib.h>
#include <algorithm>
#include <mutex>
#include <regex>
#include <thread>

namespace ember {
namespace {

constexpr std::string_view bearer = "Bearer ";

// An idle connection (kept alive, or one that never sends its request) holds one of the server's
// threads until this many seconds pass: at most 5, fewer with a shorter io_timeout (at least 1,
// cpp-httplib counts whole seconds).
constexpr time_t max_idle_seconds = 5;
constexpr std::size_t keep_alive_requests = 100;
// Requests are GETs: any body beyond this is refused before it is read.
constexpr std::size_t max_request_body = 4096;
// Threads that serve requests (each a snapshot read and some formatting); a dashboard tab keeps
// one busy with its keep-alive connection.
constexpr std::size_t server_threads = 8;

std::string regex_escaped(const std::string& path) {
  static const std::regex special(R"([.^$|()\[\]{}*+?\\])");
  return std::regex_replace(path, special, R"(\$&)");
}

}  // namespace

bool equal_in_constant_time(const std::string& given, const std::string& expected) noexcept {
  // Every byte of `expected` is compared whatever the outcome; the loop's length is the secret's
  // (which the attacker may know), never the position of the first difference.
  unsigned diff = given.size() == expected.size() ? 0u : 1u;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    auto g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0u;
    diff |= g ^ static_cast<unsigned char>(expected[i]);
  }
  return diff == 0;
}

struct http_endpoint::impl {
  http_endpoint_options options;
  std::string host;
  int port = 0;
  bool token_required = false;
  std::vector<http_route> routes;
  httplib::Server server;
  std::thread thread;
  std::mutex stop_mutex;  // guards the join in stop()

  impl(const http_endpoint_options& o, std::vector<http_route> r)
      : options(o), routes(std::move(r)) {
    transport::host_port where;
    try {
      where = transport::parse_host_port(o.listen);
    } catch (const invalid_input& e) {
      throw invalid_input(o.listen_flag + ": " + e.what());
    }
    host = where.host;
    token_required = !transport::is_loopback(host);
    EMBER_EXPECTS(!token_required || !o.token.empty(), invalid_input,
                  o.listen_flag + " " + o.listen + " is not a loopback address: serving " + o.name +
                      " beyond this host needs the cluster token (" + o.token_flag + ")");
    configure();
    bind(where);
    thread = std::thread([this] { server.listen_after_bind(); });
    // stop() only reaches a server that is already running (cpp-httplib 0.11 has no
    // wait_until_ready): return once it is, so a stop right after start cannot hang the join.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!server.is_running()) {
      if (std::chrono::steady_clock::now() > deadline || !thread.joinable()) {
        stop();
        throw transport_error(o.name + " on " + o.listen + " did not start");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  ~impl() { stop(); }

  void configure() {
    auto io = options.io_timeout;
    server.set_read_timeout(io);
    server.set_write_timeout(io);
    auto idle = std::chrono::ceil<std::chrono::seconds>(io).count();
    server.set_keep_alive_timeout(std::clamp<time_t>(idle, 1, max_idle_seconds));
    server.set_keep_alive_max_count(keep_alive_requests);
    server.set_payload_max_length(max_request_body);
    // cpp-httplib's own default sets SO_REUSEPORT, which lets a second process bind the same
    // port and silently share its connections; SO_REUSEADDR only allows a quick restart.
    server.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    // cpp-httplib takes ownership of the queue it returns (its API: a raw pointer).
    server.new_task_queue = [] { return new httplib::ThreadPool(server_threads); };
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!token_required || is_open(req.path) || authorized(req))
        return httplib::Server::HandlerResponse::Unhandled;
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer realm=\"ember\"");
      res.set_content(
          "401 unauthorized: send the cluster token (Authorization: Bearer TOKEN, or ?token=TOKEN "
          "in the URL)\n",
          "text/plain; charset=utf-8");
      return httplib::Server::HandlerResponse::Handled;
    });
    server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      auto what = res.status == 404 ? " not found" : res.status == 400 ? " bad request" : "";
      res.set_content(std::to_string(res.status) + what + "\n", "text/plain; charset=utf-8");
    });
    for (const auto& route : routes) {
      const auto* r = &route;
      server.Get(regex_escaped(route.path),
                 [this, r](const httplib::Request&, httplib::Response& res) {
                   try {
                     auto answer = r->handle();
                     res.status = answer.status;
                     res.set_content(std::move(answer.body), answer.content_type.c_str());
                   } catch (const std::exception& e) {
                     logger().warn("{}: GET {} failed: {}", options.name, r->path, e.what());
                     res.status = 500;
                     res.set_content(std::string("500 internal error: ") + e.what() + "\n",
                                     "text/plain; charset=utf-8");
                   }
                   res.set_header("Cache-Control", "no-store");
                 });
    }
  }

  void bind(const transport::host_port& where) {
    bool bound = false;
    if (where.port == 0) {
      port = server.bind_to_any_port(where.host);
      bound = port > 0;
    } else {
      bound = server.bind_to_port(where.host, where.port);
      port = where.port;
    }
    if (!bound) {
      throw transport_error(options.name + " cannot listen on " + options.listen + " (" +
                            options.listen_flag +
                            "): the port is in use or the host is not an address of this machine");
    }
  }

  [[nodiscard]] bool is_open(const std::string& path) const {
    for (const auto& r : routes)
      if (r.open && r.path == path) return true;
    return false;
  }

  [[nodiscard]] bool authorized(const httplib::Request& req) const {
    auto header = req.get_header_value("Authorization");
    if (header.size() > bearer.size() && header.compare(0, bearer.size(), bearer) == 0)
      return equal_in_constant_time(header.substr(bearer.size()), options.token);
    if (req.has_param("token"))
      return equal_in_constant_time(req.get_param_value("token"), options.token);
    return false;
  }

  void stop() noexcept {
    std::lock_guard lock(stop_mutex);
    if (!thread.joinable()) return;
    server.stop();
    thread.join();
  }
};

http_endpoint::http_endpoint(const http_endpoint_options& options, std::vector<http_route> routes)
    : _impl(std::make_unique<impl>(options, std::move(routes))) {}

http_endpoint::~http_endpoint() { stop(); }

void http_endpoint::stop() noexcept {
  if (_impl) _impl->stop();
}

const std::string& http_endpoint::host() const noexcept { return _impl->host; }

int http_endpoint::port() const noexcept { return _impl->port; }

std::string http_endpoint::url() const {
  auto h = _impl->host.find(':') != std::string::npos ? "[" + _impl->host + "]" : _impl->host;
  return "http://" + h + ":" + std::to_string(_impl->port);
}

bool http_endpoint::token_required() const noexcept { return _impl->token_required; }

}  // namespace ember
