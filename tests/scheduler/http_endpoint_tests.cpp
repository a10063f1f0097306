// The HTTP endpoint behind /metrics and the dashboard: it serves its routes, reports the port it
// bound, refuses a wrong or missing token beyond loopback (and serves the right one), refuses to
// start beyond loopback without a token, and bounds every request.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

#include <ember/host/error.hpp>
#include <ember/scheduler/http_endpoint.hpp>

#include "common/errors.hpp"

namespace ember {
namespace {

using namespace std::chrono_literals;

std::vector<http_route> test_routes() {
  return {
      {"/hello",
       [] {
         return http_response{200, "text/plain; charset=utf-8", "hello\n"};
       }},
      {"/data.json",
       [] {
         return http_response{200, "application/json", "{\"a\": 1}"};
       }},
      {"/boom", []() -> http_response { throw std::runtime_error("the snapshot is gone"); }},
      {"/healthz",
       [] {
         return http_response{200, "text/plain; charset=utf-8", "ok\n"};
       },
       true},
  };
}

http_endpoint_options options_for(const std::string& listen, const std::string& token = {}) {
  http_endpoint_options o;
  o.listen = listen;
  o.token = token;
  o.name = "the test endpoint";
  return o;
}

httplib::Client client_for(const std::string& host, int port) {
  httplib::Client c(host, port);
  c.set_connection_timeout(5);
  c.set_read_timeout(5);
  return c;
}

// The first IPv4 address of this machine that is not loopback, if any.
std::optional<std::string> machine_address() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return std::nullopt;
  std::optional<std::string> found;
  for (auto* a = list; a != nullptr && !found; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
    if ((ntohl(in->sin_addr.s_addr) >> 24) == 127) continue;
    char text[INET_ADDRSTRLEN] = {};
    if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) != nullptr) found = text;
  }
  ::freeifaddrs(list);
  return found;
}

TEST(http_endpoint, serves_its_routes_on_loopback_without_a_token) {
  http_endpoint e(options_for("127.0.0.1:0"), test_routes());
  ASSERT_GT(e.port(), 0);
  EXPECT_EQ(e.url(), "http://127.0.0.1:" + std::to_string(e.port()));
  EXPECT_FALSE(e.token_required());
  auto c = client_for("127.0.0.1", e.port());

  auto hello = c.Get("/hello");
  ASSERT_TRUE(hello) << httplib::to_string(hello.error());
  EXPECT_EQ(hello->status, 200);
  EXPECT_EQ(hello->body, "hello\n");
  EXPECT_EQ(hello->get_header_value("Content-Type"), "text/plain; charset=utf-8");

  auto json = c.Get("/data.json");
  ASSERT_TRUE(json);
  EXPECT_EQ(json->status, 200);
  EXPECT_EQ(json->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(json->body, "{\"a\": 1}");

  auto missing = c.Get("/nothing-here");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);

  // A handler that throws: 500 with its message, and the endpoint serves on.
  auto boom = c.Get("/boom");
  ASSERT_TRUE(boom);
  EXPECT_EQ(boom->status, 500);
  EXPECT_NE(boom->body.find("the snapshot is gone"), std::string::npos) << boom->body;
  auto again = c.Get("/hello");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
}

// Bound to 0.0.0.0 (every address of the machine, reached here through loopback): beyond
// loopback, so every route but the open one needs the token.
TEST(http_endpoint, beyond_loopback_a_wrong_or_missing_token_gets_401) {
  const std::string token = "s3cret-cluster-token";
  http_endpoint e(options_for("0.0.0.0:0", token), test_routes());
  EXPECT_TRUE(e.token_required());
  auto c = client_for("127.0.0.1", e.port());

  auto none = c.Get("/hello");
  ASSERT_TRUE(none) << httplib::to_string(none.error());
  EXPECT_EQ(none->status, 401);
  EXPECT_NE(none->body.find("unauthorized"), std::string::npos) << none->body;
  EXPECT_EQ(none->body.find("hello"), std::string::npos);

  for (const auto* wrong :
       {"s3cret-cluster-tokem", "s3cret", "s3cret-cluster-token-and-more", ""}) {
    SCOPED_TRACE(wrong);
    auto header = c.Get("/hello", {{"Authorization", std::string("Bearer ") + wrong}});
    ASSERT_TRUE(header);
    EXPECT_EQ(header->status, 401);
    auto query = c.Get((std::string("/hello?token=") + wrong).c_str());
    ASSERT_TRUE(query);
    EXPECT_EQ(query->status, 401);
  }
  // Not a bearer token: the scheme matters.
  auto basic = c.Get("/hello", {{"Authorization", "Basic " + token}});
  ASSERT_TRUE(basic);
  EXPECT_EQ(basic->status, 401);
  // A route that does not exist is refused the same way, before routing.
  auto missing = c.Get("/nothing-here");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);

  auto bearer = c.Get("/hello", {{"Authorization", "Bearer " + token}});
  ASSERT_TRUE(bearer);
  EXPECT_EQ(bearer->status, 200);
  EXPECT_EQ(bearer->body, "hello\n");
  auto query = c.Get(("/hello?token=" + token).c_str());
  ASSERT_TRUE(query);
  EXPECT_EQ(query->status, 200);
  EXPECT_EQ(query->body, "hello\n");

  // The health check says nothing and needs no token.
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok\n");
}

TEST(http_endpoint, on_the_machines_own_address_the_token_is_required) {
  auto address = machine_address();
  if (!address) GTEST_SKIP() << "this machine has no IPv4 address besides loopback";
  const std::string token = "another-token";
  http_endpoint e(options_for(*address + ":0", token), test_routes());
  EXPECT_TRUE(e.token_required());
  EXPECT_EQ(e.host(), *address);
  auto c = client_for(*address, e.port());
  auto none = c.Get("/hello");
  ASSERT_TRUE(none) << httplib::to_string(none.error());
  EXPECT_EQ(none->status, 401);
  auto wrong = c.Get("/hello", {{"Authorization", "Bearer nope"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto right = c.Get("/hello", {{"Authorization", "Bearer " + token}});
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200);
}

TEST(http_endpoint, refuses_to_start_beyond_loopback_without_a_token) {
  test::expect_invalid_input([] { http_endpoint e(options_for("0.0.0.0:0"), test_routes()); },
                             "--metrics-listen 0.0.0.0:0 is not a loopback address");
  test::expect_invalid_input([] { http_endpoint e(options_for("0.0.0.0:0"), test_routes()); },
                             "--token-file");
  if (auto address = machine_address()) {
    test::expect_invalid_input(
        [&] { http_endpoint e(options_for(*address + ":0"), test_routes()); }, "--token-file");
  }
  // Loopback needs none; "localhost" is loopback too.
  http_endpoint local(options_for("localhost:0"), test_routes());
  EXPECT_FALSE(local.token_required());
}

TEST(http_endpoint, a_malformed_address_is_bad_input_naming_the_flag) {
  test::expect_invalid_input([] { http_endpoint e(options_for("127.0.0.1"), test_routes()); },
                             "--metrics-listen");
  test::expect_invalid_input([] { http_endpoint e(options_for("127.0.0.1:http"), test_routes()); },
                             "is not a number");
}

TEST(http_endpoint, a_port_in_use_is_a_transport_error) {
  http_endpoint first(options_for("127.0.0.1:0"), test_routes());
  auto taken = "127.0.0.1:" + std::to_string(first.port());
  try {
    http_endpoint second(options_for(taken), test_routes());
    ADD_FAILURE() << "a second endpoint bound " << taken;
  } catch (const transport_error& e) {
    EXPECT_NE(std::string(e.what()).find(taken), std::string::npos) << e.what();
  }
}

TEST(http_endpoint, stop_is_idempotent_and_closes_the_port) {
  http_endpoint e(options_for("127.0.0.1:0"), test_routes());
  auto port = e.port();
  e.stop();
  e.stop();
  auto c = client_for("127.0.0.1", port);
  c.set_connection_timeout(1);
  auto r = c.Get("/hello");
  EXPECT_FALSE(r) << "still served after stop()";
}

// A client that connects and sends nothing is cut off after the read timeout, and others are
// served meanwhile.
TEST(http_endpoint, a_silent_client_is_cut_off_and_does_not_block_others) {
  auto o = options_for("127.0.0.1:0");
  o.io_timeout = 300ms;
  http_endpoint e(o, test_routes());
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(e.port()));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);

  auto c = client_for("127.0.0.1", e.port());
  auto r = c.Get("/hello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  timeval limit{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  auto start = std::chrono::steady_clock::now();
  char buf[64];
  auto n = ::recv(fd, buf, sizeof buf, 0);
  auto waited = std::chrono::steady_clock::now() - start;
  ::close(fd);
  EXPECT_EQ(n, 0) << "the server did not close the silent connection";
  EXPECT_LT(waited, 3s);  // io_timeout 300 ms: idle for at most 1 s
}

TEST(http_endpoint, tokens_compare_equal_only_when_identical) {
  EXPECT_TRUE(equal_in_constant_time("abc", "abc"));
  EXPECT_TRUE(equal_in_constant_time("", ""));
  EXPECT_FALSE(equal_in_constant_time("abd", "abc"));
  EXPECT_FALSE(equal_in_constant_time("ab", "abc"));
  EXPECT_FALSE(equal_in_constant_time("abcd", "abc"));
  EXPECT_FALSE(equal_in_constant_time("", "abc"));
  EXPECT_FALSE(equal_in_constant_time("abc", ""));
  EXPECT_FALSE(equal_in_constant_time(std::string("ab\0", 3), "ab"));
}

}  // namespace
}  // namespace ember
