// Bad input sent to a real scheduler and a real worker: raw bytes on their sockets, malformed
// frames from a UCX peer that skips the handshake, a wrong token, and malformed messages from a
// peer that did authenticate. Each is dropped with a log line; no process dies, nothing
// unbounded is allocated, and a job started afterwards runs normally.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <iostream>
#include <ember/scheduler/client.hpp>
#include <ember/scheduler/jobs.hpp>
#include <ember/transport/byte_codec.hpp>
#include <ember/transport/node.hpp>
#include <random>
#include <thread>

#include "common/processes.hpp"

namespace ember {
namespace {

using namespace std::chrono_literals;

class quiet_handler : public transport::node_handler {
 public:
  void on_message(transport::connection_id, std::uint16_t, std::span<const std::uint8_t>) override {
  }
  void on_table(transport::connection_id, std::uint16_t, std::span<const std::uint8_t>,
                table) override {}
};

std::vector<std::uint8_t> frame(std::uint16_t type, std::uint64_t body_bytes,
                                std::uint16_t version = transport::protocol_version) {
  transport::frame_header h;
  h.type = type;
  h.version = version;
  h.body_bytes = body_bytes;
  auto b = transport::encode_frame_header(h);
  return {b.begin(), b.end()};
}

std::vector<std::uint8_t> hello(const std::string& token, std::uint16_t version = 1) {
  transport::byte_writer w;
  w.put(version);
  w.put_string(token);
  w.put_string("hostile");
  return std::move(w.bytes());
}

// Sends `bytes` on a plain TCP connection to host:port and closes it.
void send_tcp(const std::string& host, int port, const std::vector<std::uint8_t>& bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    std::this_thread::sleep_for(50ms);
  }
  ::close(fd);
}

class hostile_peer_test : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto* e : {"UCX_NET_DEVICES=lo", "UCX_SOCKADDR_TLS_PRIORITY=tcp"}) {
      std::string s = e;
      ::setenv(s.substr(0, s.find('=')).c_str(), s.substr(s.find('=') + 1).c_str(), 1);
    }
    test::cluster_spec spec;
    spec.env = {"UCX_NET_DEVICES=lo", "UCX_SOCKADDR_TLS_PRIORITY=tcp", "EMBER_LOG_LEVEL=info"};
    spec.token = "the-token";
    spec.workers = 2;
    cluster = std::make_unique<test::local_cluster>(spec);
    client_options co;
    co.token = "the-token";
    c = std::make_unique<client>(client::connect(cluster->address, co));
    auto s = c->status();
    ASSERT_EQ(s.workers.size(), 2u);
    targets.push_back({"scheduler", transport::parse_host_port(cluster->address)});
    targets.push_back({"worker", transport::parse_host_port(s.workers[0].address)});
  }

  void TearDown() override {
    if (cluster && std::getenv("EMBER_TEST_SHOW_LOGS") != nullptr) std::cerr << cluster->logs();
  }

  // Both processes are still running and a job gives the right answer.
  void expect_cluster_healthy() {
    EXPECT_FALSE(cluster->scheduler().wait_exit(0ms).has_value()) << cluster->logs();
    for (std::size_t i = 0; i < cluster->num_workers(); ++i)
      EXPECT_FALSE(cluster->worker(i).wait_exit(0ms).has_value()) << cluster->logs();
    job_options o;
    o.rows = 50'000;
    auto r = run_job(*c, "sort", o);
    EXPECT_EQ(r.result.num_rows(), 50'000);
    EXPECT_EQ(c->num_workers(), 2);
  }

  // Counts log lines of the process that were written about dropped or refused peers.
  std::size_t drops(const std::string& who) {
    auto log = who == "scheduler" ? cluster->scheduler().err() : cluster->worker(0).err();
    std::size_t n = 0;
    for (auto at = log.find("dropping peer"); at != std::string::npos;
         at = log.find("dropping peer", at + 1))
      ++n;
    return n;
  }

  void wait_for_drops(const std::string& who, std::size_t at_least) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (drops(who) < at_least && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(20ms);
    EXPECT_GE(drops(who), at_least) << cluster->logs();
  }

  std::unique_ptr<test::local_cluster> cluster;
  std::unique_ptr<client> c;
  std::vector<std::pair<std::string, transport::host_port>> targets;
};

TEST_F(hostile_peer_test, RawBytesOnTheSocketsAreSurvived) {
  std::mt19937_64 gen(11);
  for (const auto& [who, where] : targets) {
    SCOPED_TRACE(who);
    for (int i = 0; i < 5; ++i) {
      std::vector<std::uint8_t> noise(static_cast<std::size_t>(1 + gen() % 4096));
      for (auto& b : noise) b = static_cast<std::uint8_t>(gen());
      send_tcp(where.host, where.port, noise);
    }
    // A length field of 2^63 where UCX's connection setup expects a small header.
    std::vector<std::uint8_t> huge(16, 0xff);
    huge[7] = 0x7f;
    send_tcp(where.host, where.port, huge);
    send_tcp(where.host, where.port, {});  // connect and say nothing
  }
  expect_cluster_healthy();
}

TEST_F(hostile_peer_test, MalformedFramesBeforeTheHandshakeAreDropped) {
  std::mt19937_64 gen(12);
  std::vector<std::uint8_t> noise(48);
  for (auto& b : noise) b = static_cast<std::uint8_t>(gen());
  auto good_hello = hello("the-token");
  auto truncated = frame(1, good_hello.size());
  truncated.resize(9);
  struct bad {
    const char* name;
    std::vector<std::uint8_t> header, body;
  };
  std::vector<bad> cases = {
      {"random bytes", noise, noise},
      {"truncated frame", truncated, good_hello},
      {"length 2^63", frame(1, std::uint64_t{1} << 63), good_hello},
      {"wrong protocol version", frame(1, good_hello.size(), 7), good_hello},
      {"wrong token", frame(1, hello("nope").size()), hello("nope")},
      {"old hello version", frame(1, hello("the-token", 0).size()), hello("the-token", 0)},
      {"message before hello", frame(16, 8), std::vector<std::uint8_t>(8, 1)},
  };
  quiet_handler h;
  transport::node_options o;
  o.name = "hostile";
  transport::node peer(o, h);
  for (const auto& [who, where] : targets) {
    SCOPED_TRACE(who);
    auto before = drops(who);
    for (const auto& c : cases) {
      auto id = peer.connect_raw(where.host, where.port);
      peer.send_raw(id, c.header, c.body);
    }
    wait_for_drops(who, before + cases.size());
  }
  expect_cluster_healthy();
}

TEST_F(hostile_peer_test, MalformedMessagesAfterTheHandshakeDropOnlyThatPeer) {
  quiet_handler h;
  transport::node_options o;
  o.name = "authenticated but hostile";
  o.token = "the-token";
  for (const auto& [who, where] : targets) {
    SCOPED_TRACE(who);
    auto before = drops(who);
    std::vector<std::vector<std::uint8_t>> bodies;
    bodies.push_back({1, 2, 3});                            // truncated
    bodies.push_back(std::vector<std::uint8_t>(64, 0xff));  // counts of 2^32-1 entries
    transport::byte_writer w;                               // a plan claiming 2^63 bytes
    w.put<std::uint64_t>(7);
    w.put<std::uint64_t>(std::uint64_t{1} << 63);
    bodies.push_back(w.bytes());
    int sent = 0;
    for (std::uint16_t type : {std::uint16_t{16}, std::uint16_t{28}, std::uint16_t{200}}) {
      for (const auto& body : bodies) {
        transport::node peer(o, h);
        auto id = peer.connect(where.host, where.port);
        peer.send(id, type, body);
        ++sent;
        // Wait until this peer is dropped before the next one.
        wait_for_drops(who, before + static_cast<std::size_t>(sent));
      }
    }
  }
  expect_cluster_healthy();
}

TEST_F(hostile_peer_test, AWrongTokenClientIsRefusedAndTheClusterServesOn) {
  client_options co;
  co.token = "not-the-token";
  EXPECT_THROW((void)client::connect(cluster->address, co), transport_error);
  expect_cluster_healthy();
}

}  // namespace
}  // namespace ember
