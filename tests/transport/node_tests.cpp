// Two UCX nodes in one process over loopback: the handshake, control messages, tables in both
// protocols (eager and rendezvous), and every kind of bad input a peer can send.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/transport/byte_codec.hpp>
#include <ember/transport/node.hpp>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/tables.hpp"

namespace ember::transport {
namespace {

using namespace std::chrono_literals;

constexpr std::uint16_t ping = first_application_type;
constexpr std::uint16_t block = first_application_type + 1;

// Records what a node delivers; tests wait for it with a deadline.
class recorder : public node_handler {
 public:
  struct message {
    connection_id from;
    std::uint16_t type;
    std::vector<std::uint8_t> body;
  };
  struct received_table {
    connection_id from;
    std::vector<std::uint8_t> header;
    table rows;
  };

  void on_connected(const peer_info& peer) override {
    std::lock_guard lock(_mutex);
    connected.push_back(peer);
    _cv.notify_all();
  }
  void on_message(connection_id from, std::uint16_t type,
                  std::span<const std::uint8_t> body) override {
    std::lock_guard lock(_mutex);
    messages.push_back({from, type, {body.begin(), body.end()}});
    _cv.notify_all();
  }
  void on_table(connection_id from, std::uint16_t, std::span<const std::uint8_t> header,
                table rows) override {
    std::lock_guard lock(_mutex);
    tables.push_back({from, {header.begin(), header.end()}, std::move(rows)});
    _cv.notify_all();
  }
  void on_disconnected(connection_id id, const std::string& reason) override {
    std::lock_guard lock(_mutex);
    disconnected.emplace_back(id, reason);
    _cv.notify_all();
  }

  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds limit = 10s) {
    std::unique_lock lock(_mutex);
    return _cv.wait_for(lock, limit, [&] { return pred(*this); });
  }

  std::vector<peer_info> connected;
  std::vector<message> messages;
  std::vector<received_table> tables;
  std::vector<std::pair<connection_id, std::string>> disconnected;

 private:
  std::mutex _mutex;
  std::condition_variable _cv;
};

node_options options_named(const std::string& name, const std::string& token = "secret") {
  node_options o;
  o.name = name;
  o.token = token;
  o.handshake_timeout = 2s;
  o.connect_timeout = 5s;
  return o;
}

std::vector<std::uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

class node_test : public ::testing::Test {
 protected:
  void SetUp() override {
    // Keep UCX on loopback (it may otherwise open lanes on other interfaces for 127.0.0.1).
    ::setenv("UCX_NET_DEVICES", "lo", 0);
    ::setenv("UCX_SOCKADDR_TLS_PRIORITY", "tcp", 0);
    server = std::make_unique<node>(options_named("server"), server_events);
    port = server->listen("127.0.0.1", 0);
  }
  // A client that completed the handshake, and its connection.
  std::pair<std::unique_ptr<node>, connection_id> connect_client(
      recorder& events, const std::string& token = "secret") {
    auto n = std::make_unique<node>(options_named("client", token), events);
    auto id = n->connect("127.0.0.1", port);
    return {std::move(n), id};
  }
  // The server still serves a well-behaved client after whatever the test did.
  void expect_server_still_serves() {
    recorder events;
    auto [client, id] = connect_client(events);
    auto before = server_messages();
    ASSERT_TRUE(client->send(id, ping, bytes_of("still there?")));
    ASSERT_TRUE(server_events.wait([&](recorder& r) { return r.messages.size() > before; }));
    EXPECT_EQ(server_events.messages.back().body, bytes_of("still there?"));
  }
  std::size_t server_messages() {
    std::size_t n = 0;
    server_events.wait(
        [&](recorder& r) {
          n = r.messages.size();
          return true;
        },
        0ms);
    return n;
  }
  // A raw connection (no handshake) and what it is told.
  std::pair<std::unique_ptr<node>, connection_id> connect_raw(recorder& events) {
    auto n = std::make_unique<node>(options_named("raw peer"), events);
    auto id = n->connect_raw("127.0.0.1", port);
    return {std::move(n), id};
  }
  std::vector<std::uint8_t> hello(std::uint16_t version, const std::string& token) {
    byte_writer w;
    w.put(version);
    w.put_string(token);
    w.put_string("raw peer");
    return std::move(w.bytes());
  }
  std::vector<std::uint8_t> header(std::uint16_t type, std::uint64_t body_bytes,
                                   std::uint16_t version = protocol_version) {
    frame_header h;
    h.type = type;
    h.version = version;
    h.body_bytes = body_bytes;
    auto b = encode_frame_header(h);
    return {b.begin(), b.end()};
  }
  std::uint64_t rejected() { return server->statistics().rejected_connections; }

  recorder server_events;
  std::unique_ptr<node> server;
  int port = 0;
};

TEST_F(node_test, HandshakeThenMessagesBothWays) {
  recorder client_events;
  auto [client, id] = connect_client(client_events);
  ASSERT_TRUE(server_events.wait([](recorder& r) { return r.connected.size() == 1; }));
  EXPECT_EQ(server_events.connected[0].name, "client");
  EXPECT_TRUE(server_events.connected[0].inbound);
  ASSERT_EQ(client_events.connected.size(), 1u);
  EXPECT_EQ(client_events.connected[0].name, "server");

  for (int i = 0; i < 100; ++i) ASSERT_TRUE(client->send(id, ping, bytes_of(std::to_string(i))));
  ASSERT_TRUE(server_events.wait([](recorder& r) { return r.messages.size() == 100; }));
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(server_events.messages[i].body, bytes_of(std::to_string(i)));

  auto back = server_events.messages[0].from;
  ASSERT_TRUE(server->send(back, ping, bytes_of("pong")));
  ASSERT_TRUE(client_events.wait([](recorder& r) { return r.messages.size() == 1; }));
  EXPECT_EQ(client_events.messages[0].body, bytes_of("pong"));

  // A large control message goes by rendezvous.
  std::vector<std::uint8_t> big(8 << 20);
  std::iota(big.begin(), big.end(), 0);
  ASSERT_TRUE(client->send(id, ping, big));
  ASSERT_TRUE(server_events.wait([](recorder& r) { return r.messages.size() == 101; }));
  EXPECT_EQ(server_events.messages.back().body, big);

  client->close(id);
  ASSERT_TRUE(server_events.wait([](recorder& r) { return r.disconnected.size() == 1; }));
  EXPECT_NE(server_events.disconnected[0].second.find("goodbye"), std::string::npos);
  EXPECT_FALSE(client->send(id, ping, bytes_of("after close")) &&
               client_events.wait([](recorder& r) { return r.disconnected.empty(); }, 0ms) &&
               false);
}

table sample_table(std::size_t rows, std::uint64_t seed) {
  std::vector<std::uint8_t> flags(rows);
  for (std::size_t i = 0; i < rows; ++i)
    flags[i] = static_cast<std::uint8_t>((i * 7 + seed) % 3 == 0);
  std::vector<column> cols;
  cols.push_back(test::random_int64(rows, 0, 1000, 0.0, seed));
  cols.push_back(test::random_float64(rows, -1, 1, 0.1, seed + 1));
  cols.push_back(test::random_strings(rows, 997, 0.1, seed + 2));
  cols.push_back(make_column(type_id::bool8, flags));
  return table(std::move(cols), {"key", "value", "word", "flag"});
}

void expect_same_table(const table_view& got, const table_view& want) {
  EXPECT_EQ(got.names(), want.names());
  ASSERT_EQ(got.num_rows(), want.num_rows());
  EXPECT_TRUE(test::rows_of(got) == test::rows_of(want));
}

TEST_F(node_test, TablesArriveIntactEagerRendezvousSlicedAndEmpty) {
  recorder client_events;
  auto [client, id] = connect_client(client_events);
  auto small = std::make_shared<const table>(sample_table(100, 1));
  auto large = std::make_shared<const table>(sample_table(1 << 20, 2));
  struct sent_case {
    std::shared_ptr<const table> owner;
    table_view rows;
  };
  std::vector<sent_case> cases = {
      {small, small->view()},
      {large, large->view()},
      {large, large->view().slice(5, 5 + 300'001)},  // null masks not word-aligned
      {small, small->view().slice(40, 40)},          // empty
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    auto out = describe_table(cases[i].rows, cases[i].owner);
    EXPECT_EQ(body_bytes(cases[i].rows), out.body_bytes) << "case " << i;
    ASSERT_TRUE(
        client->send_table(id, block, bytes_of("case " + std::to_string(i)), std::move(out)));
  }
  ASSERT_TRUE(
      server_events.wait([&](recorder& r) { return r.tables.size() == cases.size(); }, 30s));
  // Rendezvous transfers may complete out of order: match them by header.
  for (const auto& got : server_events.tables) {
    std::string h(got.header.begin(), got.header.end());
    auto i = std::stoul(h.substr(5));
    SCOPED_TRACE(h);
    expect_same_table(got.rows.view(), cases[i].rows);
  }
  EXPECT_GT(server->statistics().bytes_received, std::uint64_t{8} << 20);
}

TEST_F(node_test, WrongTokenIsRefusedWithTheReasonAndTheServerKeepsServing) {
  recorder events;
  try {
    (void)connect_client(events, "not the secret");
    FAIL() << "a wrong token was accepted";
  } catch (const transport_error& e) {
    EXPECT_NE(std::string(e.what()).find("wrong cluster token"), std::string::npos) << e.what();
  }
  EXPECT_EQ(rejected(), 1u);
  EXPECT_TRUE(server_events.connected.empty());
  expect_server_still_serves();
}

TEST_F(node_test, BadFramesAreDroppedAndLogged) {
  struct bad_case {
    const char* name;
    std::vector<std::uint8_t> am_header;
    std::vector<std::uint8_t> body;
  };
  std::mt19937_64 gen(7);
  std::vector<std::uint8_t> noise(64);
  for (auto& b : noise) b = static_cast<std::uint8_t>(gen());
  auto hello_ok = hello(protocol_version, "secret");
  auto truncated = header(1, hello_ok.size());
  truncated.resize(10);
  std::vector<bad_case> cases = {
      {"random bytes", noise, noise},
      {"truncated header", truncated, hello_ok},
      {"length 2^63", header(1, std::uint64_t{1} << 63), hello_ok},
      {"length shorter than the body", header(1, 3), hello_ok},
      {"wrong protocol version in the frame", header(1, hello_ok.size(), 99), hello_ok},
      {"wrong protocol version in the hello", header(1, 0), {}},
      {"wrong token", header(1, 0), {}},
      {"application message before the hello", header(ping, 4), {1, 2, 3, 4}},
      {"truncated hello", header(1, 5), {1, 0, 6, 0, 0}},
  };
  cases[5].body = hello(protocol_version + 1, "secret");
  cases[5].am_header = header(1, cases[5].body.size());
  cases[6].body = hello(protocol_version, "guess");
  cases[6].am_header = header(1, cases[6].body.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    recorder events;
    auto [peer, id] = connect_raw(events);
    auto before = rejected();
    peer->send_raw(id, cases[i].am_header, cases[i].body);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (rejected() == before && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    EXPECT_EQ(rejected(), before + 1);
  }
  EXPECT_TRUE(server_events.connected.empty());
  EXPECT_TRUE(server_events.messages.empty());
  expect_server_still_serves();
}

TEST_F(node_test, SilentPeerIsDroppedAfterTheHandshakeTimeout) {
  recorder events;
  auto [peer, id] = connect_raw(events);
  (void)id;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (rejected() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(rejected(), 1u);
  expect_server_still_serves();
}

TEST_F(node_test, OversizedMessageIsRejectedBeforeAllocation) {
  server.reset();
  auto o = options_named("small server");
  o.limits.max_message_bytes = 1024;
  server = std::make_unique<node>(o, server_events);
  port = server->listen("127.0.0.1", 0);
  recorder events;
  auto [client, id] = connect_client(events);
  ASSERT_TRUE(client->send(id, ping, std::vector<std::uint8_t>(4096, 1)));
  ASSERT_TRUE(server_events.wait([](recorder& r) { return !r.disconnected.empty(); }));
  EXPECT_NE(server_events.disconnected[0].second.find("exceeds the limit"), std::string::npos)
      << server_events.disconnected[0].second;
  EXPECT_EQ(server_events.disconnected.size(), 1u);
  EXPECT_TRUE(server_events.messages.empty());
  expect_server_still_serves();
}

TEST_F(node_test, ConnectingToNothingFailsNamingThePeer) {
  recorder events;
  node n(options_named("lonely"), events);
  server.reset();  // nobody listens on `port` any more
  try {
    (void)n.connect("127.0.0.1", port);
    FAIL() << "connected to a closed port";
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)), std::string::npos)
        << e.what();
  }
}

TEST(host_port_test, ParsesAndRejects) {
  auto a = parse_host_port("127.0.0.1:4242");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 4242);
  EXPECT_EQ(parse_host_port("[::1]:80").host, "::1");
  EXPECT_THROW((void)parse_host_port("nohost"), invalid_input);
  EXPECT_THROW((void)parse_host_port("h:99999"), invalid_input);
  EXPECT_THROW((void)parse_host_port("h:x1"), invalid_input);
  EXPECT_TRUE(is_loopback("127.0.0.1"));
  EXPECT_TRUE(is_loopback("127.1.2.3"));
  EXPECT_TRUE(is_loopback("localhost"));
  EXPECT_FALSE(is_loopback("10.0.0.1"));
  EXPECT_FALSE(is_loopback("0.0.0.0"));
}

}  // namespace
}  // namespace ember::transport
