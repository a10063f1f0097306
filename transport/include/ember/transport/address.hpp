#pragma once
// Network addresses as ember's command line and messages spell them: HOST:PORT.
#include <string>

namespace ember::transport {

/// "HOST:PORT" split into its parts. Throws ember::invalid_input naming the text when the port
/// is missing or not in 0..65535.
struct host_port {
  std::string host;
  int port = 0;
  [[nodiscard]] std::string to_string() const { return host + ":" + std::to_string(port); }
};
[[nodiscard]] host_port parse_host_port(const std::string& text);

/// The local IP address this host would use to reach host:port (no packet is sent). Throws
/// ember::transport_error when there is no route.
[[nodiscard]] std::string local_address_towards(const std::string& host, int port);

/// True for addresses on the loopback network (127.0.0.0/8, ::1, "localhost").
[[nodiscard]] bool is_loopback(const std::string& host);

}  // namespace ember::transport
