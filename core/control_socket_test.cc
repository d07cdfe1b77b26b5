// Checks the control socket's contract (core/control_socket.h) by running a real ControlServer
// on a unix socket in a temp directory and talking to it with ControlCall or a raw client that
// writes lines and reads them back. Handlers that must block wait on a Gate the test opens:
// no test waits for a thread by sleeping.
#include "core/control_socket.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/test_temp_dir.h"
#include "core/unix_socket.h"

namespace blockrep {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

// How long a test waits for something that must happen before it calls the test failed
// instead of hanging. Never reached when the code works, however loaded the machine.
constexpr milliseconds kHangGuard{30000};

// A one-way latch: Wait() returns once Open() was called.
class Gate {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool WaitFor(milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Opens a gate when the test leaves its scope, even through a failed ASSERT, so that a
// handler blocked on it lets the server stop. Declare it after the server it unblocks.
class OpenOnExit {
 public:
  explicit OpenOnExit(Gate& gate) : gate_(gate) {}
  ~OpenOnExit() { gate_.Open(); }

 private:
  Gate& gate_;
};

sockaddr_un Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof(addr.sun_path) - 1));
  return addr;
}

// A client speaking the wire format by hand: for what ControlCall cannot do (several
// requests on one connection, malformed lines, watching the connection close).
class RawClient {
 public:
  bool Connect(const std::string& path) {
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr = Address(path);
    return fd_.valid() &&
           ::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // The next line without its "\n"; nullopt on EOF, an error or kHangGuard without one.
  std::optional<std::string> ReadLine() {
    while (true) {
      size_t newline = in_.find('\n');
      if (newline != std::string::npos) {
        std::string line = in_.substr(0, newline);
        in_.erase(0, newline + 1);
        return line;
      }
      if (!Receive()) return std::nullopt;
    }
  }
  // The next response line parsed, or a JSON null when there is none.
  Json ReadResponse() {
    auto line = ReadLine();
    if (!line) return Json();
    return Json::parse(*line, nullptr, /*allow_exceptions=*/false);
  }
  // True once the server closed the connection with nothing more to read.
  bool ReachesEof() { return in_.empty() && !Receive() && eof_; }
  void Close() { fd_.Reset(); }

 private:
  bool Receive() {
    pollfd pfd{fd_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(kHangGuard.count())) != 1) return false;
    char buf[4096];
    ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    eof_ = n == 0;
    if (n <= 0) return false;
    in_.append(buf, static_cast<size_t>(n));
    return true;
  }

  UniqueFd fd_;
  std::string in_;
  bool eof_ = false;
};

// Leaves a socket file nobody listens on, as a killed daemon does.
void MakeStaleSocket(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(fd.valid());
  sockaddr_un addr = Address(path);
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
      << std::strerror(errno);
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

ControlServer::Handler Pong() {
  return [](const Json&) { return Json{{"pong", true}}; };
}

std::unique_ptr<ControlServer> MustStart(const std::string& path, ControlServer::Handler h) {
  auto server = ControlServer::Start(path, std::move(h));
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(server).value() : nullptr;
}

// A server that is not a ControlServer: answers the first request line with `reply`.
class FakeServer {
 public:
  FakeServer(const std::string& path, std::string reply) {
    auto sock = ListenUnixSocket(path, 1, "fake server");
    EXPECT_TRUE(sock.ok()) << sock.status().ToString();
    if (!sock.ok()) return;
    thread_ = std::jthread([fd = std::move(sock->fd), reply = std::move(reply)] {
      UniqueFd conn(::accept4(fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
      char c;
      while (::recv(conn.get(), &c, 1, 0) == 1 && c != '\n') {
      }
      ::send(conn.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
    });
  }

 private:
  std::jthread thread_;
};

TEST(ControlServer, RoundTripEchoesRequestFields) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), [](const Json& req) {
    return Json{{"cmd", req["cmd"]}, {"echo", req["arg"]}};
  });
  ASSERT_NE(server, nullptr);
  auto r = ControlCall(dir.file("control.sock"), {{"cmd", "status"}, {"arg", {1, "two"}}},
                       static_cast<int>(kHangGuard.count()));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (Json{{"ok", true}, {"cmd", "status"}, {"echo", {1, "two"}}}));
}

TEST(ControlServer, HandlerOkFalseIsReturnedAsAValue) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), [](const Json&) {
    return Json{{"ok", false}, {"error", "no such disk"}};
  });
  ASSERT_NE(server, nullptr);
  auto r = ControlCall(dir.file("control.sock"), {{"cmd", "detach"}}, -1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (Json{{"ok", false}, {"error", "no such disk"}}));
}

TEST(ControlServer, HandlerResponseThatIsNotAnObjectIsAnError) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), [](const Json&) { return Json(42); });
  ASSERT_NE(server, nullptr);
  auto r = ControlCall(dir.file("control.sock"), {{"cmd", "status"}}, -1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["ok"], false);
  EXPECT_NE((*r)["error"].get<std::string>().find("not a JSON object"), std::string::npos);
}

TEST(ControlServer, SeveralRequestsOnOneConnection) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), [](const Json& req) {
    return Json{{"n", req["n"]}};
  });
  ASSERT_NE(server, nullptr);
  RawClient client;
  ASSERT_TRUE(client.Connect(dir.file("control.sock")));
  for (int n = 0; n < 3; ++n) {
    ASSERT_TRUE(client.Send(Json{{"cmd", "count"}, {"n", n}}.dump() + "\n"));
    EXPECT_EQ(client.ReadResponse(), (Json{{"ok", true}, {"n", n}}));
  }
}

TEST(ControlServer, PipelinedRequestsAreAnsweredInOrder) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), [](const Json& req) {
    return Json{{"n", req["n"]}};
  });
  ASSERT_NE(server, nullptr);
  RawClient client;
  ASSERT_TRUE(client.Connect(dir.file("control.sock")));
  ASSERT_TRUE(client.Send("{\"cmd\":\"a\",\"n\":1}\n{\"cmd\":\"b\",\"n\":2}\n"));
  EXPECT_EQ(client.ReadResponse(), (Json{{"ok", true}, {"n", 1}}));
  EXPECT_EQ(client.ReadResponse(), (Json{{"ok", true}, {"n", 2}}));
}

TEST(ControlServer, SocketFileHasMode0600WhateverTheUmask) {
  test::TempDir dir;
  mode_t old_umask = ::umask(0);
  auto server = MustStart(dir.file("control.sock"), Pong());
  ::umask(old_umask);
  ASSERT_NE(server, nullptr);
  struct stat st;
  ASSERT_EQ(::lstat(dir.file("control.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(ControlServer, StaleSocketFromDeadServerIsReplaced) {
  test::TempDir dir;
  MakeStaleSocket(dir.file("control.sock"));
  auto server = MustStart(dir.file("control.sock"), Pong());
  ASSERT_NE(server, nullptr);
  auto r = ControlCall(dir.file("control.sock"), {{"cmd", "ping"}}, -1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["pong"], true);
}

TEST(ControlServer, LiveServerSocketIsNotStolen) {
  test::TempDir dir;
  auto first = MustStart(dir.file("control.sock"), Pong());
  ASSERT_NE(first, nullptr);
  auto second = ControlServer::Start(dir.file("control.sock"), [](const Json&) {
    return Json{{"second", true}};
  });
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(dir.file("control.sock")), std::string::npos)
      << second.status().ToString();
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status().ToString();
  auto r = ControlCall(dir.file("control.sock"), {{"cmd", "ping"}}, -1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (Json{{"ok", true}, {"pong", true}})) << "the first server must keep its socket";
}

TEST(ControlServer, RegularFileAtPathIsRefusedAndKept) {
  test::TempDir dir;
  std::ofstream(dir.file("control.sock")) << "precious";
  auto server = ControlServer::Start(dir.file("control.sock"), Pong());
  ASSERT_FALSE(server.ok());
  EXPECT_NE(
      server.status().message().find(dir.file("control.sock") + " exists and is not a socket"),
      std::string::npos)
      << server.status().ToString();
  std::string content;
  std::ifstream(dir.file("control.sock")) >> content;
  EXPECT_EQ(content, "precious");
}

TEST(ControlServer, PathLongerThanSunPathIsRefused) {
  test::TempDir dir;
  std::string path = dir.file(std::string(200, 'x'));
  auto server = ControlServer::Start(path, Pong());
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(server.status().message().find("must be 1 to 107 bytes"), std::string::npos)
      << server.status().ToString();
  EXPECT_NE(server.status().message().find(path), std::string::npos) << server.status().ToString();
}

TEST(ControlServer, NonJsonLineGetsErrorAndConnectionStillServes) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), Pong());
  ASSERT_NE(server, nullptr);
  RawClient client;
  ASSERT_TRUE(client.Connect(dir.file("control.sock")));
  ASSERT_TRUE(client.Send("status please\n"));
  Json bad = client.ReadResponse();
  EXPECT_EQ(bad["ok"], false);
  EXPECT_NE(bad["error"].get<std::string>().find("not valid JSON"), std::string::npos) << bad;
  ASSERT_TRUE(client.Send("{\"cmd\":\"ping\"}\n"));
  EXPECT_EQ(client.ReadResponse(), (Json{{"ok", true}, {"pong", true}}));
}

TEST(ControlServer, RequestThatIsNotAnObjectGetsError) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), Pong());
  ASSERT_NE(server, nullptr);
  RawClient client;
  ASSERT_TRUE(client.Connect(dir.file("control.sock")));
  ASSERT_TRUE(client.Send("[\"ping\"]\n"));
  Json bad = client.ReadResponse();
  EXPECT_EQ(bad["ok"], false);
  EXPECT_NE(bad["error"].get<std::string>().find("not a JSON object"), std::string::npos) << bad;
}

TEST(ControlServer, MissingCmdGetsError) {
  test::TempDir dir;
  bool handler_ran = false;  // only this thread reads it, after the response came back
  auto server = MustStart(dir.file("control.sock"), [&](const Json&) {
    handler_ran = true;
    return Json::object();
  });
  ASSERT_NE(server, nullptr);
  for (const Json& request : {Json{{"command", "ping"}}, Json{{"cmd", 7}}}) {
    auto r = ControlCall(dir.file("control.sock"), request, -1);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)["ok"], false) << request;
    EXPECT_NE((*r)["error"].get<std::string>().find("\"cmd\""), std::string::npos) << *r;
  }
  EXPECT_FALSE(handler_ran);
}

TEST(ControlServer, HandlerExceptionBecomesErrorWithItsMessage) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), [](const Json&) -> Json {
    throw std::runtime_error("disk d0 is not attached");
  });
  ASSERT_NE(server, nullptr);
  auto r = ControlCall(dir.file("control.sock"), {{"cmd", "detach"}}, -1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (Json{{"ok", false}, {"error", "disk d0 is not attached"}}));
}

TEST(ControlServer, OversizedLineGetsErrorAndClose) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), Pong());
  ASSERT_NE(server, nullptr);
  RawClient client;
  ASSERT_TRUE(client.Connect(dir.file("control.sock")));
  // One byte over the limit and no newline: the server must give up without the end.
  ASSERT_TRUE(client.Send(std::string(ControlServer::kMaxRequestBytes + 1, ' ')));
  Json bad = client.ReadResponse();
  EXPECT_EQ(bad["ok"], false);
  EXPECT_NE(bad["error"].get<std::string>().find("longer than"), std::string::npos) << bad;
  EXPECT_TRUE(client.ReachesEof());
}

TEST(ControlServer, LineOfExactlyTheLimitIsServed) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), Pong());
  ASSERT_NE(server, nullptr);
  std::string request = "{\"cmd\":\"ping\"}";
  request.resize(ControlServer::kMaxRequestBytes, ' ');  // JSON allows trailing whitespace
  RawClient client;
  ASSERT_TRUE(client.Connect(dir.file("control.sock")));
  ASSERT_TRUE(client.Send(request + "\n"));
  EXPECT_EQ(client.ReadResponse(), (Json{{"ok", true}, {"pong", true}}));
}

TEST(ControlCall, MissingSocketIsNotFoundWithAHint) {
  test::TempDir dir;
  auto r = ControlCall(dir.file("control.sock"), {{"cmd", "status"}}, -1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_NE(r.status().message().find(dir.file("control.sock")), std::string::npos);
  EXPECT_NE(r.status().message().find("no daemon is listening"), std::string::npos)
      << r.status().ToString();
}

TEST(ControlCall, StaleSocketIsNotFound) {
  test::TempDir dir;
  MakeStaleSocket(dir.file("control.sock"));
  auto r = ControlCall(dir.file("control.sock"), {{"cmd", "status"}}, -1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound) << r.status().ToString();
}

TEST(ControlCall, OversizedRequestIsRefusedBeforeSending) {
  test::TempDir dir;
  Json request{{"cmd", "attach"}, {"note", std::string(ControlServer::kMaxRequestBytes, 'x')}};
  auto r = ControlCall(dir.file("control.sock"), request, -1);  // no server: never connects
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << r.status().ToString();
}

TEST(ControlCall, TimesOutWhenTheHandlerTakesLonger) {
  test::TempDir dir;
  Gate release;
  auto server = MustStart(dir.file("control.sock"), [&](const Json&) {
    release.WaitFor(milliseconds(5000));
    return Json::object();
  });
  ASSERT_NE(server, nullptr);
  OpenOnExit opener(release);
  auto start = std::chrono::steady_clock::now();
  auto r = ControlCall(dir.file("control.sock"), {{"cmd", "drain"}}, 200);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok()) << "got a response: " << *r;
  EXPECT_EQ(r.status().code(), Status::Code::kIoError);
  EXPECT_NE(r.status().message().find("timed out after 200 ms"), std::string::npos)
      << r.status().ToString();
  EXPECT_GE(elapsed, milliseconds(200));
}

TEST(ControlCall, NonJsonResponseIsProtocolError) {
  test::TempDir dir;
  FakeServer fake(dir.file("control.sock"), "hello there\n");
  auto r = ControlCall(dir.file("control.sock"), {{"cmd", "status"}}, -1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kProtocolError) << r.status().ToString();
}

TEST(ControlCall, NonObjectResponseIsProtocolError) {
  test::TempDir dir;
  FakeServer fake(dir.file("control.sock"), "[true]\n");
  auto r = ControlCall(dir.file("control.sock"), {{"cmd", "status"}}, -1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kProtocolError) << r.status().ToString();
}

TEST(ControlServer, StopWhileHandlerBlocksReturnsAndRemovesSocket) {
  test::TempDir dir;
  Gate entered, release;
  auto server = MustStart(dir.file("control.sock"), [&](const Json&) {
    entered.Open();
    release.WaitFor(kHangGuard);
    return Json::object();
  });
  ASSERT_NE(server, nullptr);
  RawClient client;
  ASSERT_TRUE(client.Connect(dir.file("control.sock")));
  ASSERT_TRUE(client.Send("{\"cmd\":\"drain\"}\n"));
  ASSERT_TRUE(entered.WaitFor(kHangGuard));

  std::jthread stopper([&] { server->Stop(); });
  OpenOnExit opener(release);  // declared after stopper: opens the gate before it is joined
  // Stop() shuts the connection down before it waits for the handler: the client sees the
  // end of the stream while the handler still blocks.
  EXPECT_TRUE(client.ReachesEof());
  client.Close();  // had Stop() left the connection open, it would wait for the client
  release.Open();
  stopper.join();
  EXPECT_FALSE(FileExists(dir.file("control.sock")));
}

TEST(ControlServer, StopIsIdempotent) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), Pong());
  ASSERT_NE(server, nullptr);
  server->Stop();
  server->Stop();
  EXPECT_FALSE(FileExists(dir.file("control.sock")));
}  // and the destructor stops a third time

TEST(ControlServer, StopLeavesAFileThatReplacedTheSocket) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), Pong());
  ASSERT_NE(server, nullptr);
  ASSERT_EQ(::unlink(dir.file("control.sock").c_str()), 0);
  MakeStaleSocket(dir.file("control.sock"));  // another server's, as far as Stop() can tell
  server->Stop();
  EXPECT_TRUE(FileExists(dir.file("control.sock")));
}

TEST(ControlServer, ConnectionOverTheLimitIsRefused) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), Pong());
  ASSERT_NE(server, nullptr);
  // Each connection answers once, so the server has taken each one before the next.
  std::vector<RawClient> clients(ControlServer::kMaxConnections);
  for (RawClient& c : clients) {
    ASSERT_TRUE(c.Connect(dir.file("control.sock")));
    ASSERT_TRUE(c.Send("{\"cmd\":\"ping\"}\n"));
    ASSERT_EQ(c.ReadResponse(), (Json{{"ok", true}, {"pong", true}}));
  }
  RawClient extra;
  ASSERT_TRUE(extra.Connect(dir.file("control.sock")));
  EXPECT_EQ(extra.ReadResponse(), (Json{{"ok", false}, {"error", "too many control connections"}}));
  EXPECT_TRUE(extra.ReachesEof());
  // The connections already open still serve.
  ASSERT_TRUE(clients.back().Send("{\"cmd\":\"ping\"}\n"));
  EXPECT_EQ(clients.back().ReadResponse(), (Json{{"ok", true}, {"pong", true}}));
}

TEST(ControlServer, FinishedConnectionsFreeTheirSlots) {
  test::TempDir dir;
  auto server = MustStart(dir.file("control.sock"), Pong());
  ASSERT_NE(server, nullptr);
  // A connection's slot is freed by its thread after the client left, which the client cannot
  // observe: a refusal is retried. Only leaked slots make the calls fail for good.
  const auto deadline = std::chrono::steady_clock::now() + kHangGuard;
  for (int i = 0; i < 4 * ControlServer::kMaxConnections; ++i) {
    while (true) {
      auto r = ControlCall(dir.file("control.sock"), {{"cmd", "ping"}}, -1);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      if ((*r)["ok"] == true) break;
      ASSERT_EQ((*r)["error"], "too many control connections");
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "slots leak: call " << i;
      std::this_thread::sleep_for(milliseconds(1));
    }
  }
}

}  // namespace
}  // namespace blockrep
