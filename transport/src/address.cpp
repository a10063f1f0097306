#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <ember/host/error.hpp>
#include <ember/transport/address.hpp>

#include "detail/sockaddr.hpp"

namespace ember::transport {
namespace detail {

std::string sockaddr_text(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = {};
  int port = 0;
  if (a.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(a);
    inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
    port = ntohs(in.sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto& in = reinterpret_cast<const sockaddr_in6&>(a);
    inet_ntop(AF_INET6, &in.sin6_addr, host, sizeof host);
    port = ntohs(in.sin6_port);
  } else {
    return "unknown address";
  }
  return std::string(host) + ":" + std::to_string(port);
}

sockaddr_storage resolve(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints,
                       &found);
  if (rc != 0 || found == nullptr) {
    throw transport_error("cannot resolve '" + host + "': " + gai_strerror(rc));
  }
  sockaddr_storage out{};
  std::memcpy(&out, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  return out;
}

}  // namespace detail

using detail::resolve;
using detail::sockaddr_text;

host_port parse_host_port(const std::string& text) {
  auto colon = text.rfind(':');
  EMBER_EXPECTS(colon != std::string::npos && colon + 1 < text.size(), invalid_input,
                "'" + text + "' is not HOST:PORT");
  host_port out;
  out.host = text.substr(0, colon);
  if (out.host.size() >= 2 && out.host.front() == '[' && out.host.back() == ']')
    out.host = out.host.substr(1, out.host.size() - 2);
  auto port_text = text.substr(colon + 1);
  EMBER_EXPECTS(
      port_text.find_first_not_of("0123456789") == std::string::npos && port_text.size() <= 5,
      invalid_input, "'" + text + "': the port '" + port_text + "' is not a number");
  out.port = std::stoi(port_text);
  EMBER_EXPECTS(out.port <= 65535, invalid_input, "'" + text + "': port out of range");
  EMBER_EXPECTS(!out.host.empty(), invalid_input, "'" + text + "' has no host");
  return out;
}

std::string local_address_towards(const std::string& host, int port) {
  auto target = resolve(host, port);
  int fd = ::socket(target.ss_family, SOCK_DGRAM, 0);
  if (fd < 0) throw transport_error("cannot open a socket to find the route to " + host);
  socklen_t len = target.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  sockaddr_storage local{};
  socklen_t local_len = sizeof local;
  bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&target), len) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) == 0;
  ::close(fd);
  if (!ok) throw transport_error("no route to " + host + ":" + std::to_string(port));
  auto text = sockaddr_text(local);
  return text.substr(0, text.rfind(':'));
}

bool is_loopback(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
  return false;
}

}  // namespace ember::transport
