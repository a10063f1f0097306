#pragma once
// Socket addresses for the UCX node: resolving HOST:PORT and printing what UCX reports.
#include <sys/socket.h>

#include <string>

namespace ember::transport::detail {

/// "10.0.0.1:4242" ("[::1]:80" style without brackets for IPv6), or "unknown address".
[[nodiscard]] std::string sockaddr_text(const sockaddr_storage& a);
/// The first address of host:port. Throws ember::transport_error naming the host.
[[nodiscard]] sockaddr_storage resolve(const std::string& host, int port);

}  // namespace ember::transport::detail
