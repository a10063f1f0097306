#pragma once
// How a client's sessions (jobs, coordination) open their connection to the scheduler.
#include <ember/host/error.hpp>
#include <ember/scheduler/client.hpp>
#include <ember/transport/address.hpp>
#include <ember/transport/node.hpp>
#include <memory>
#include <string>
#include <utility>

namespace ember::detail {

/// A transport node named `name` that delivers to `handler`, connected to the scheduler at
/// `address` (HOST:PORT) with the options' token and transport. Throws ember::transport_error
/// "cannot reach the scheduler at ADDRESS: why", or ember::timeout without a handshake.
inline std::pair<std::unique_ptr<transport::node>, transport::connection_id> connect_to_scheduler(
    const std::string& address, const client_options& options, const std::string& name,
    transport::node_handler& handler) {
  auto where = transport::parse_host_port(address);
  transport::node_options no;
  no.name = name;
  no.token = options.token;
  no.shared_memory = options.shared_memory;
  auto net = std::make_unique<transport::node>(no, handler);
  try {
    auto conn = net->connect(where.host, where.port);
    return {std::move(net), conn};
  } catch (const transport_error& e) {
    throw transport_error("cannot reach the scheduler at " + address + ": " + e.what());
  }
}

}  // namespace ember::detail
