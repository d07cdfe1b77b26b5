// Checks core/tls.h over real loopback TCP: certificates made by tests/lib/make_certs.sh, a
// listener on 127.0.0.1 port 0, the server side on its own thread and the client side on the
// test's thread, as the target and the source run them. Peers configured the way TlsContext
// refuses to be (no certificate, TLS 1.2 only, no CN) are plain OpenSSL with blocking calls.
// Each case checks one behaviour: what each side's Handshake() or Pump() returns (the code
// decides whether the caller retries) and what the message says.
#include "core/tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/test_temp_dir.h"
#include "core/unique_fd.h"

namespace blockrep {
namespace {

using Code = Status::Code;
using Role = TlsContext::Role;

// Generous: a loaded machine running the sanitizer build must not fail a handshake.
constexpr int kHandshakeMs = 5000;
// No test waits longer than this for anything.
constexpr auto kTestDeadline = std::chrono::seconds(10);
constexpr size_t kLargeTransferBytes = 8u << 20;

// OpenSSL writes with write(): a peer that has gone must be an EPIPE, not a dead test binary
// (the daemons ignore SIGPIPE the same way).
class IgnoreSigpipe : public ::testing::Environment {
 public:
  void SetUp() override { signal(SIGPIPE, SIG_IGN); }
};
[[maybe_unused]] ::testing::Environment* const kIgnoreSigpipe =
    ::testing::AddGlobalTestEnvironment(new IgnoreSigpipe);

// tests/lib/make_certs.sh, found from the working directory (the repository root when run
// by tests/run_all.sh) or else from this file's path.
std::string MakeCertsScript() {
  const std::string rel = "tests/lib/make_certs.sh";
  std::filesystem::path dir = std::filesystem::current_path();
  for (int up = 0; up < 4 && !dir.empty(); ++up, dir = dir.parent_path()) {
    if (std::filesystem::exists(dir / rel)) return (dir / rel).string();
  }
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / rel).string();
}

bool RunShell(const std::string& command) { return std::system(command.c_str()) == 0; }

std::string Quote(const std::string& s) { return "'" + s + "'"; }

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

int LocalPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

// A listening socket on loopback, port chosen by the kernel.
struct Listener {
  UniqueFd fd;
  std::string address;  // "127.0.0.1:PORT"
};

Listener Listen() {
  Listener l;
  Result<UniqueFd> fd = TcpListen("127.0.0.1:0");
  EXPECT_TRUE(fd.ok()) << fd.status().ToString();
  if (!fd.ok()) return l;
  l.fd = std::move(fd).value();
  l.address = "127.0.0.1:" + std::to_string(LocalPort(l.fd.get()));
  return l;
}

UniqueFd AcceptWithin(const Listener& l) {
  pollfd pfd{l.fd.get(), POLLIN, 0};
  if (poll(&pfd, 1, kHandshakeMs) != 1) return UniqueFd();
  return UniqueFd(accept4(l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
}

// One side of a connection after its handshake.
struct Side {
  std::unique_ptr<TlsConnection> conn;
  Status handshake = Status::IoError("never ran");
};

Side MakeSide(const TlsContext& ctx, UniqueFd fd, const std::string& peer) {
  Side side;
  if (!fd.valid()) return side;
  Result<std::unique_ptr<TlsConnection>> conn = TlsConnection::Create(ctx, std::move(fd), peer);
  if (!conn.ok()) {
    side.handshake = conn.status();
    return side;
  }
  side.conn = std::move(conn).value();
  side.handshake = side.conn->Handshake(kHandshakeMs);
  return side;
}

Side AcceptSide(const Listener& l, const TlsContext& ctx) {
  return MakeSide(ctx, AcceptWithin(l), "client");
}

Side ConnectSide(const Listener& l, const TlsContext& ctx) {
  Result<UniqueFd> fd = TcpConnect(l.address, kHandshakeMs);
  EXPECT_TRUE(fd.ok()) << fd.status().ToString();
  if (!fd.ok()) return Side{nullptr, fd.status()};
  return MakeSide(ctx, std::move(fd).value(), l.address);
}

// Pumps until `done` holds; an error, or the test deadline, ends it early.
Status PumpUntil(TlsConnection& conn, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kTestDeadline;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return Status::Shutdown("test deadline");
    BLOCKREP_RETURN_IF_ERROR(conn.Pump(100));
  }
  return Status::Ok();
}

// Pumps until the connection fails; returns that failure.
Status PumpUntilError(TlsConnection& conn) {
  Status s = PumpUntil(conn, [] { return false; });
  return s;
}

// Takes exactly n bytes of input, pumping as needed.
Status ReadExactly(TlsConnection& conn, size_t n, std::vector<uint8_t>* out) {
  BLOCKREP_RETURN_IF_ERROR(PumpUntil(conn, [&] { return conn.input().size() >= n; }));
  out->assign(conn.input().begin(), conn.input().begin() + static_cast<std::ptrdiff_t>(n));
  conn.Consume(n);
  return Status::Ok();
}

std::vector<uint8_t> Bytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// A plain OpenSSL context for a peer TlsContext would not make. Empty cert: none presented.
SslCtxPtr RawContext(bool server, int max_version, const std::string& cert, const std::string& key,
                     const std::string& ca) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) return ctx;
  SSL_CTX_set_max_proto_version(ctx.get(), max_version);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                     nullptr);
  bool ok = SSL_CTX_load_verify_locations(ctx.get(), ca.c_str(), nullptr) == 1;
  if (!cert.empty()) {
    ok = ok && SSL_CTX_use_certificate_chain_file(ctx.get(), cert.c_str()) == 1 &&
         SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) == 1;
  }
  if (!ok) ctx.reset();
  return ctx;
}

// Runs a blocking handshake as that raw peer; a client that got through then reads until
// the other side's verdict (an alert or a close) arrives. Returns whether the handshake
// itself succeeded.
bool RunRawPeer(SSL_CTX* ctx, UniqueFd fd, bool server) {
  if (!fd.valid()) return false;
  const int flags = fcntl(fd.get(), F_GETFL);
  fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  timeval tv{kHandshakeMs / 1000, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd.get());
  const bool ok = (server ? SSL_accept(ssl) : SSL_connect(ssl)) == 1;
  if (ok && !server) {
    char byte;
    SSL_read(ssl, &byte, 1);
  }
  SSL_free(ssl);
  ERR_clear_error();
  return ok;
}

class TlsTest : public ::testing::Test {
 protected:
  // One set of certificates for the whole suite: making them is the slow part.
  static void SetUpTestSuite() {
    certs_ = new test::TempDir();
    const std::string dir = Quote(certs_->path());
    const std::string script = Quote(MakeCertsScript());
    ASSERT_TRUE(RunShell(script + " " + dir + " source target"));
    ASSERT_TRUE(RunShell("CA_NAME=other " + script + " " + dir + " intruder"));
    // A certificate the CA signed whose subject has no CN: no identity to give the peer.
    const std::string nocn = Quote(certs_->file("nocn"));
    ASSERT_TRUE(RunShell("cd " + dir +
                         " && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
                         " -keyout nocn.key -out nocn.csr -subj /O=blockrep 2>/dev/null"
                         " && openssl x509 -req -in nocn.csr -CA ca.crt -CAkey ca.key -CAserial"
                         " ca.srl -days 10 -out nocn.crt 2>/dev/null"));
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }

  static std::string File(const std::string& name) { return certs_->file(name); }

  static TlsContext::Options OptionsFor(const std::string& name, const std::string& ca = "ca") {
    return TlsContext::Options{File(name + ".crt"), File(name + ".key"), File(ca + ".crt")};
  }

  static std::unique_ptr<TlsContext> Context(Role role, const std::string& name,
                                             const std::string& ca = "ca") {
    Result<std::unique_ptr<TlsContext>> ctx = TlsContext::Create(role, OptionsFor(name, ca));
    EXPECT_TRUE(ctx.ok()) << ctx.status().ToString();
    return ctx.ok() ? std::move(ctx).value() : nullptr;
  }

  static inline test::TempDir* certs_ = nullptr;
};

// --- Handshake -------------------------------------------------------------------------------

TEST_F(TlsTest, HandshakeReportsBothIdentities) {
  auto server_ctx = Context(Role::kServer, "target");
  auto client_ctx = Context(Role::kClient, "source");
  ASSERT_TRUE(server_ctx && client_ctx);
  EXPECT_EQ(server_ctx->own_identity(), "target");
  EXPECT_EQ(client_ctx->own_identity(), "source");
  Listener l = Listen();
  Side server;
  std::jthread thread([&] { server = AcceptSide(l, *server_ctx); });
  Side client = ConnectSide(l, *client_ctx);
  thread.join();

  ASSERT_TRUE(client.handshake.ok()) << client.handshake.ToString();
  ASSERT_TRUE(server.handshake.ok()) << server.handshake.ToString();
  EXPECT_EQ(client.conn->peer_identity(), "target");
  EXPECT_EQ(server.conn->peer_identity(), "source");
  EXPECT_EQ(client.conn->peer(), l.address);
}

TEST_F(TlsTest, ClientCertificateFromAnotherCaIsRefusedByServer) {
  auto server_ctx = Context(Role::kServer, "target");
  auto client_ctx = Context(Role::kClient, "intruder");  // signed by other-ca, trusts ca
  ASSERT_TRUE(server_ctx && client_ctx);
  Listener l = Listen();
  Side server;
  std::jthread thread([&] { server = AcceptSide(l, *server_ctx); });
  Side client = ConnectSide(l, *client_ctx);
  // TLS 1.3: the client's handshake may finish before the server has judged its certificate;
  // the refusal then arrives as an alert on the next Pump. Queued bytes must not turn it into
  // a plain write error.
  Status client_result = client.handshake;
  if (client_result.ok()) {
    client.conn->Queue(std::vector<uint8_t>(64 * 1024, 'x'));
    client_result = PumpUntilError(*client.conn);
  }
  thread.join();

  EXPECT_EQ(server.handshake.code(), Code::kPermissionDenied) << server.handshake.ToString();
  EXPECT_TRUE(Contains(server.handshake.message(),
                       "the peer's certificate was refused: unable to get local issuer"))
      << server.handshake.message();
  EXPECT_EQ(client_result.code(), Code::kPermissionDenied) << client_result.ToString();
  EXPECT_TRUE(Contains(client_result.message(), l.address + ": the peer refused our certificate"))
      << client_result.message();
}

TEST_F(TlsTest, ServerCertificateFromAnotherCaIsRefusedByClient) {
  auto server_ctx = Context(Role::kServer, "intruder");
  auto client_ctx = Context(Role::kClient, "source");
  ASSERT_TRUE(server_ctx && client_ctx);
  Listener l = Listen();
  Side server;
  std::jthread thread([&] { server = AcceptSide(l, *server_ctx); });
  Side client = ConnectSide(l, *client_ctx);
  client.conn.reset();  // as a caller would: the connection is dead
  thread.join();

  EXPECT_EQ(client.handshake.code(), Code::kPermissionDenied) << client.handshake.ToString();
  EXPECT_EQ(client.handshake.message(),
            "TLS handshake with " + l.address +
                ": the peer's certificate was refused: unable to get local issuer certificate");
  EXPECT_EQ(server.handshake.code(), Code::kPermissionDenied) << server.handshake.ToString();
  EXPECT_TRUE(Contains(server.handshake.message(), "the peer refused our certificate (alert:"))
      << server.handshake.message();
}

TEST_F(TlsTest, ClientWithoutCertificateIsRefused) {
  auto server_ctx = Context(Role::kServer, "target");
  ASSERT_TRUE(server_ctx);
  SslCtxPtr raw = RawContext(false, TLS1_3_VERSION, "", "", File("ca.crt"));
  ASSERT_TRUE(raw);
  Listener l = Listen();
  Side server;
  std::jthread thread([&] { server = AcceptSide(l, *server_ctx); });
  Result<UniqueFd> fd = TcpConnect(l.address, kHandshakeMs);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  RunRawPeer(raw.get(), std::move(fd).value(), /*server=*/false);
  thread.join();

  EXPECT_EQ(server.handshake.code(), Code::kPermissionDenied) << server.handshake.ToString();
  EXPECT_EQ(server.handshake.message(), "TLS handshake with client: the peer sent no certificate");
}

TEST_F(TlsTest, PeerCertificateWithoutCommonNameIsRefused) {
  auto server_ctx = Context(Role::kServer, "target");
  ASSERT_TRUE(server_ctx);
  SslCtxPtr raw =
      RawContext(false, TLS1_3_VERSION, File("nocn.crt"), File("nocn.key"), File("ca.crt"));
  ASSERT_TRUE(raw);
  Listener l = Listen();
  Side server;
  std::jthread thread([&] { server = AcceptSide(l, *server_ctx); });
  Result<UniqueFd> fd = TcpConnect(l.address, kHandshakeMs);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  RunRawPeer(raw.get(), std::move(fd).value(), /*server=*/false);
  thread.join();

  EXPECT_EQ(server.handshake.code(), Code::kPermissionDenied) << server.handshake.ToString();
  EXPECT_TRUE(Contains(server.handshake.message(), "no single, non-empty subject CN"))
      << server.handshake.message();
  EXPECT_EQ(server.conn->peer_identity(), "");
}

TEST_F(TlsTest, Tls12OnlyClientIsRefused) {
  auto server_ctx = Context(Role::kServer, "target");
  ASSERT_TRUE(server_ctx);
  SslCtxPtr raw =
      RawContext(false, TLS1_2_VERSION, File("source.crt"), File("source.key"), File("ca.crt"));
  ASSERT_TRUE(raw);
  Listener l = Listen();
  Side server;
  std::jthread thread([&] { server = AcceptSide(l, *server_ctx); });
  Result<UniqueFd> fd = TcpConnect(l.address, kHandshakeMs);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  EXPECT_FALSE(RunRawPeer(raw.get(), std::move(fd).value(), /*server=*/false));
  thread.join();

  EXPECT_EQ(server.handshake.code(), Code::kPermissionDenied) << server.handshake.ToString();
  EXPECT_TRUE(Contains(server.handshake.message(), "the peer does not offer TLS 1.3"))
      << server.handshake.message();
}

TEST_F(TlsTest, Tls12OnlyServerIsRefused) {
  auto client_ctx = Context(Role::kClient, "source");
  ASSERT_TRUE(client_ctx);
  SslCtxPtr raw =
      RawContext(true, TLS1_2_VERSION, File("target.crt"), File("target.key"), File("ca.crt"));
  ASSERT_TRUE(raw);
  Listener l = Listen();
  bool raw_ok = true;
  std::jthread thread([&] { raw_ok = RunRawPeer(raw.get(), AcceptWithin(l), /*server=*/true); });
  Side client = ConnectSide(l, *client_ctx);
  thread.join();

  EXPECT_FALSE(raw_ok);
  EXPECT_EQ(client.handshake.code(), Code::kPermissionDenied) << client.handshake.ToString();
  EXPECT_TRUE(Contains(client.handshake.message(), "the peer refused the handshake (alert:"))
      << client.handshake.message();
}

TEST_F(TlsTest, HandshakeTimesOutAgainstSilentServer) {
  auto client_ctx = Context(Role::kClient, "source");
  ASSERT_TRUE(client_ctx);
  Listener l = Listen();  // the kernel completes the TCP connect; nobody ever answers
  Result<UniqueFd> fd = TcpConnect(l.address, kHandshakeMs);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  auto conn = TlsConnection::Create(*client_ctx, std::move(fd).value(), l.address);
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();

  const auto start = std::chrono::steady_clock::now();
  Status s = conn.value()->Handshake(200);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.code(), Code::kIoError) << s.ToString();
  EXPECT_EQ(s.message(), "TLS handshake with " + l.address + " timed out after 200 ms");
  EXPECT_GE(elapsed, std::chrono::milliseconds(200));
  EXPECT_LT(elapsed, std::chrono::seconds(3));
}

// --- Data ------------------------------------------------------------------------------------

class TlsDataTest : public TlsTest {
 protected:
  void SetUp() override {
    server_ctx_ = Context(Role::kServer, "target");
    client_ctx_ = Context(Role::kClient, "source");
    ASSERT_TRUE(server_ctx_ && client_ctx_);
  }
  std::unique_ptr<TlsContext> server_ctx_;
  std::unique_ptr<TlsContext> client_ctx_;
};

TEST_F(TlsDataTest, BytesFlowBothWays) {
  Listener l = Listen();
  Status server_result;
  std::jthread thread([&] {
    Side server = AcceptSide(l, *server_ctx_);
    server_result = server.handshake;
    if (!server_result.ok()) return;
    std::vector<uint8_t> got;
    server_result = ReadExactly(*server.conn, 5, &got);
    if (!server_result.ok()) return;
    EXPECT_EQ(got, Bytes("hello"));
    server.conn->Queue(Bytes("world!"));
    server_result = PumpUntil(*server.conn, [&] { return server.conn->queued_bytes() == 0; });
    // Stay until the client has read it all: Close() now could race its last read.
    if (server_result.ok()) server_result = ReadExactly(*server.conn, 3, &got);
  });
  Side client = ConnectSide(l, *client_ctx_);
  ASSERT_TRUE(client.handshake.ok()) << client.handshake.ToString();
  client.conn->Queue(Bytes("hello"));
  std::vector<uint8_t> got;
  ASSERT_TRUE(ReadExactly(*client.conn, 6, &got).ok());
  EXPECT_EQ(got, Bytes("world!"));
  EXPECT_TRUE(client.conn->input().empty());
  client.conn->Queue(Bytes("bye"));
  EXPECT_TRUE(PumpUntil(*client.conn, [&] { return client.conn->queued_bytes() == 0; }).ok());
  thread.join();
  EXPECT_TRUE(server_result.ok()) << server_result.ToString();
}

TEST_F(TlsDataTest, ConsumeDropsOnlyTheConsumedPrefix) {
  Listener l = Listen();
  std::promise<void> client_done;
  std::jthread thread([&] {
    Side server = AcceptSide(l, *server_ctx_);
    if (!server.handshake.ok()) return;
    server.conn->Queue(Bytes("0123456789"));
    PumpUntil(*server.conn, [&] { return server.conn->queued_bytes() == 0; });
    client_done.get_future().wait_for(kTestDeadline);
  });
  Side client = ConnectSide(l, *client_ctx_);
  ASSERT_TRUE(client.handshake.ok()) << client.handshake.ToString();
  ASSERT_TRUE(PumpUntil(*client.conn, [&] { return client.conn->input().size() >= 10; }).ok());
  client.conn->Consume(3);
  EXPECT_EQ(std::string(client.conn->input().begin(), client.conn->input().end()), "3456789");
  client.conn->Consume(7);
  EXPECT_TRUE(client.conn->input().empty());
  client_done.set_value();
}

// 8 MiB each way at once, through a deliberately small send buffer: writes are partial,
// both sides must keep reading while their own queue drains, and every byte arrives in order.
TEST_F(TlsDataTest, LargeTransferBothWaysSurvivesPartialWrites) {
  const std::vector<uint8_t> to_server = RandomBytes(kLargeTransferBytes, 1);
  const std::vector<uint8_t> to_client = RandomBytes(kLargeTransferBytes, 2);
  Listener l = Listen();
  std::promise<void> client_pumped_once;
  std::promise<void> client_done;
  Status server_result;
  std::vector<uint8_t> server_got;

  // Consumes input in a header-sized and then a payload-sized bite, as a frame reader does.
  auto drain = [](TlsConnection& conn, std::vector<uint8_t>* got, bool* small_bite) {
    while (!conn.input().empty()) {
      const size_t n = std::min<size_t>(conn.input().size(), *small_bite ? 12 : 100000);
      got->insert(got->end(), conn.input().begin(), conn.input().begin() + n);
      conn.Consume(n);
      *small_bite = !*small_bite;
    }
  };

  std::jthread thread([&] {
    Side server = AcceptSide(l, *server_ctx_);
    server_result = server.handshake;
    if (!server_result.ok()) return;
    // Read nothing until the client has filled the pipe, so that its first Pump must stop short.
    client_pumped_once.get_future().wait_for(kTestDeadline);
    server.conn->Queue(to_client);
    bool small_bite = true;
    server_result = PumpUntil(*server.conn, [&] {
      drain(*server.conn, &server_got, &small_bite);
      return server_got.size() == kLargeTransferBytes && server.conn->queued_bytes() == 0;
    });
    client_done.get_future().wait_for(kTestDeadline);
  });

  Result<UniqueFd> fd = TcpConnect(l.address, kHandshakeMs);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  const int sndbuf = 64 * 1024;
  ASSERT_EQ(setsockopt(fd->get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
  Side client = MakeSide(*client_ctx_, std::move(fd).value(), l.address);
  ASSERT_TRUE(client.handshake.ok()) << client.handshake.ToString();
  client.conn->Queue(to_server);
  Status first = client.conn->Pump(1000);
  const size_t left_after_first_pump = client.conn->queued_bytes();
  client_pumped_once.set_value();
  ASSERT_TRUE(first.ok()) << first.ToString();
  EXPECT_GT(left_after_first_pump, 0u);
  EXPECT_LT(left_after_first_pump, kLargeTransferBytes);

  std::vector<uint8_t> client_got;
  bool small_bite = true;
  Status s = PumpUntil(*client.conn, [&] {
    drain(*client.conn, &client_got, &small_bite);
    return client_got.size() == kLargeTransferBytes && client.conn->queued_bytes() == 0;
  });
  client_done.set_value();
  thread.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(server_result.ok()) << server_result.ToString();
  EXPECT_TRUE(client_got == to_client);
  EXPECT_TRUE(server_got == to_server);
}

// Whole buffers handed over with Queue(&&) and small messages copied with Queue(ptr, n),
// interleaved while earlier ones are still queued, arrive whole and in order; the spare
// buffer Queue(&&) hands back is one the connection has finished with, capacity kept.
TEST_F(TlsDataTest, MovedBuffersAndCopiedMessagesInterleaveInOrder) {
  constexpr int kFrames = 24;
  std::vector<uint8_t> expected;
  // The whole expected stream, fixed before the server thread starts.
  std::vector<std::vector<uint8_t>> bigs;
  for (int i = 0; i < kFrames; ++i) {
    const uint8_t header[3] = {0xF0, static_cast<uint8_t>(i), 0x0F};
    expected.insert(expected.end(), header, header + 3);
    bigs.push_back(RandomBytes(300000 + 7919 * static_cast<size_t>(i), 100 + i));
    expected.insert(expected.end(), bigs.back().begin(), bigs.back().end());
  }
  Listener l = Listen();
  std::promise<void> client_done;
  Status server_result;
  std::jthread thread([&] {
    Side server = AcceptSide(l, *server_ctx_);
    server_result = server.handshake;
    if (!server_result.ok()) return;
    std::vector<uint8_t> got;
    server_result = PumpUntil(*server.conn, [&] {
      got.insert(got.end(), server.conn->input().begin(), server.conn->input().end());
      server.conn->Consume(server.conn->input().size());
      return got.size() >= expected.size();
    });
    EXPECT_TRUE(got == expected);
    client_done.get_future().wait_for(kTestDeadline);
  });
  Side client = ConnectSide(l, *client_ctx_);
  ASSERT_TRUE(client.handshake.ok()) << client.handshake.ToString();
  size_t largest_spare = 0;
  for (int i = 0; i < kFrames; ++i) {
    const uint8_t header[3] = {0xF0, static_cast<uint8_t>(i), 0x0F};
    client.conn->Queue(header, sizeof(header));
    std::vector<uint8_t> big = bigs[static_cast<size_t>(i)];
    client.conn->Queue(std::move(big));
    EXPECT_TRUE(big.empty());
    largest_spare = std::max(largest_spare, big.capacity());
    ASSERT_TRUE(client.conn->Pump(0).ok());  // sends some, leaves the rest queued
  }
  EXPECT_TRUE(PumpUntil(*client.conn, [&] { return client.conn->queued_bytes() == 0; }).ok());
  client_done.set_value();
  thread.join();
  EXPECT_TRUE(server_result.ok()) << server_result.ToString();
  EXPECT_GE(largest_spare, 300000u) << "no sent buffer was handed back for reuse";
}

// With read-ahead, a server reads the client's first record together with the client's
// Finished when both come in one segment; the record then waits undecrypted in OpenSSL's
// buffer, where poll() cannot see it. The first Pump must deliver it, not wait for more.
TEST_F(TlsDataTest, RecordArrivingWithTheHandshakesLastFlightIsDeliveredByTheFirstPump) {
  Listener l = Listen();
  std::promise<void> server_done;
  std::jthread thread([&] {
    Result<UniqueFd> fd = TcpConnect(l.address, kHandshakeMs);
    ASSERT_TRUE(fd.ok()) << fd.status().ToString();
    const int raw_fd = fd->get();
    // Corked, the client's Finished and its first record leave in one segment.
    int on = 1;
    ASSERT_EQ(setsockopt(raw_fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)), 0);
    Side client = MakeSide(*client_ctx_, std::move(fd).value(), l.address);
    ASSERT_TRUE(client.handshake.ok()) << client.handshake.ToString();
    client.conn->Queue(reinterpret_cast<const uint8_t*>("hello"), 5);
    ASSERT_TRUE(PumpUntil(*client.conn, [&] { return client.conn->queued_bytes() == 0; }).ok());
    int off = 0;
    ASSERT_EQ(setsockopt(raw_fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off)), 0);
    server_done.get_future().wait_for(kTestDeadline);
  });
  Side server = AcceptSide(l, *server_ctx_);
  ASSERT_TRUE(server.handshake.ok()) << server.handshake.ToString();
  // Give the segment time to arrive whole before the first Pump looks.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(server.conn->Pump(2000).ok());
  EXPECT_EQ(std::string(server.conn->input().begin(), server.conn->input().end()), "hello");
  server_done.set_value();
}

TEST_F(TlsDataTest, PumpWithNothingToDoReturnsOkAfterItsTimeout) {
  Listener l = Listen();
  std::promise<void> client_done;
  std::jthread thread([&] {
    Side server = AcceptSide(l, *server_ctx_);
    client_done.get_future().wait_for(kTestDeadline);
  });
  Side client = ConnectSide(l, *client_ctx_);
  ASSERT_TRUE(client.handshake.ok()) << client.handshake.ToString();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.conn->Pump(100).ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
  EXPECT_TRUE(client.conn->input().empty());
  client_done.set_value();
}

TEST_F(TlsDataTest, PeerCloseMakesPumpReportClosed) {
  Listener l = Listen();
  std::jthread thread([&] {
    Side server = AcceptSide(l, *server_ctx_);
    if (server.conn) server.conn->Close();
  });
  Side client = ConnectSide(l, *client_ctx_);
  ASSERT_TRUE(client.handshake.ok()) << client.handshake.ToString();
  Status s = PumpUntilError(*client.conn);
  EXPECT_EQ(s.code(), Code::kIoError) << s.ToString();
  EXPECT_EQ(s.message(), "connection closed by " + l.address);
}

TEST_F(TlsDataTest, PeerDisconnectWithoutCloseNotifyIsClosed) {
  Listener l = Listen();
  std::jthread thread([&] {
    Side server = AcceptSide(l, *server_ctx_);
    if (server.conn) shutdown(server.conn->fd(), SHUT_RDWR);  // TCP FIN, no TLS close_notify
  });
  Side client = ConnectSide(l, *client_ctx_);
  ASSERT_TRUE(client.handshake.ok()) << client.handshake.ToString();
  Status s = PumpUntilError(*client.conn);
  EXPECT_EQ(s.code(), Code::kIoError) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "closed")) << s.message();
}

TEST_F(TlsDataTest, BytesBeforeCloseAreDeliveredBeforeTheError) {
  Listener l = Listen();
  std::jthread thread([&] {
    Side server = AcceptSide(l, *server_ctx_);
    if (!server.conn) return;
    server.conn->Queue(Bytes("last words"));
    PumpUntil(*server.conn, [&] { return server.conn->queued_bytes() == 0; });
    server.conn->Close();
  });
  Side client = ConnectSide(l, *client_ctx_);
  ASSERT_TRUE(client.handshake.ok()) << client.handshake.ToString();
  thread.join();  // data and close_notify are both in flight: one Pump may see both
  std::string got;
  Status s;
  while (s.ok()) {
    s = client.conn->Pump(1000);
    got.append(client.conn->input().begin(), client.conn->input().end());
    client.conn->Consume(client.conn->input().size());
  }
  EXPECT_EQ(got, "last words");
  EXPECT_EQ(s.message(), "connection closed by " + l.address);
  EXPECT_EQ(client.conn->Pump(0).message(), s.message());  // the error is sticky
}

// --- TlsContext::Create ----------------------------------------------------------------------

TEST_F(TlsTest, CreateRefusesKeyOfAnotherCertificateNamingTheKeyFile) {
  TlsContext::Options options = OptionsFor("source");
  options.key_path = File("target.key");
  auto ctx = TlsContext::Create(Role::kClient, options);
  ASSERT_FALSE(ctx.ok());
  EXPECT_EQ(ctx.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(ctx.status().message(), options.key_path)) << ctx.status().message();
}

TEST_F(TlsTest, CreateRefusesMissingCertificateNamingIt) {
  TlsContext::Options options = OptionsFor("source");
  options.cert_path = File("missing.crt");
  auto ctx = TlsContext::Create(Role::kServer, options);
  ASSERT_FALSE(ctx.ok());
  EXPECT_EQ(ctx.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(ctx.status().message(), "TLS certificate file " + options.cert_path))
      << ctx.status().message();
}

TEST_F(TlsTest, CreateRefusesMissingCaNamingIt) {
  TlsContext::Options options = OptionsFor("source");
  options.ca_path = File("missing-ca.crt");
  auto ctx = TlsContext::Create(Role::kServer, options);
  ASSERT_FALSE(ctx.ok());
  EXPECT_EQ(ctx.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(ctx.status().message(), "TLS CA file " + options.ca_path))
      << ctx.status().message();
}

TEST_F(TlsTest, CreateRefusesCertificateWithoutCommonName) {
  auto ctx = TlsContext::Create(Role::kClient, OptionsFor("nocn"));
  ASSERT_FALSE(ctx.ok());
  EXPECT_EQ(ctx.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(ctx.status().message(), File("nocn.crt"))) << ctx.status().message();
}

// --- TCP -------------------------------------------------------------------------------------

TEST(Tcp, ConnectToClosedPortIsRefused) {
  std::string address;
  {
    Listener l = Listen();  // a port that was free a moment ago, closed again
    address = l.address;
  }
  Result<UniqueFd> fd = TcpConnect(address, 1000);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), Code::kIoError);
  EXPECT_EQ(fd.status().message(), "connect to " + address + ": Connection refused");
}

TEST(Tcp, ConnectRefusesMalformedAddress) {
  Result<UniqueFd> fd = TcpConnect("127.0.0.1", 1000);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), Code::kInvalidArgument);
}

TEST(Tcp, ListenRefusesMalformedAddress) {
  Result<UniqueFd> fd = TcpListen("[::1:7420");
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(fd.status().message(), "[::1:7420")) << fd.status().message();
}

TEST(Tcp, ListenAndConnectOverIpv6Loopback) {
  Result<UniqueFd> listener = TcpListen("[::1]:0");
  if (!listener.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << listener.status().ToString();
  const std::string address = "[::1]:" + std::to_string(LocalPort(listener->get()));
  Result<UniqueFd> fd = TcpConnect(address, 1000);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  UniqueFd accepted(accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(accepted.valid());
}

TEST(Tcp, ListenedSocketIsCloseOnExec) {
  Result<UniqueFd> fd = TcpListen("127.0.0.1:0");
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  EXPECT_NE(fcntl(fd->get(), F_GETFD) & FD_CLOEXEC, 0);
}

// --- SplitHostPort ---------------------------------------------------------------------------

struct Split {
  bool ok;
  std::string host;
  std::string port;
};

Split SplitOf(const std::string& spec) {
  Split s;
  s.ok = SplitHostPort(spec, &s.host, &s.port);
  return s;
}

TEST(SplitHostPort, NameAndPort) {
  Split s = SplitOf("target.example:7420");
  EXPECT_TRUE(s.ok);
  EXPECT_EQ(s.host, "target.example");
  EXPECT_EQ(s.port, "7420");
}

TEST(SplitHostPort, Ipv4AndPort) {
  Split s = SplitOf("10.0.0.2:7420");
  EXPECT_TRUE(s.ok);
  EXPECT_EQ(s.host, "10.0.0.2");
  EXPECT_EQ(s.port, "7420");
}

TEST(SplitHostPort, BracketedIpv6AndPort) {
  Split s = SplitOf("[::1]:7420");
  EXPECT_TRUE(s.ok);
  EXPECT_EQ(s.host, "::1");
  EXPECT_EQ(s.port, "7420");
}

TEST(SplitHostPort, PortBoundsAreOneAnd65535) {
  EXPECT_TRUE(SplitOf("h:1").ok);
  EXPECT_TRUE(SplitOf("h:65535").ok);
  EXPECT_FALSE(SplitOf("h:0").ok);
  EXPECT_FALSE(SplitOf("h:65536").ok);
  EXPECT_FALSE(SplitOf("h:99999999999999999999").ok);
}

TEST(SplitHostPort, LeadingZeroIsDroppedFromThePort) {
  Split s = SplitOf("h:07420");
  EXPECT_TRUE(s.ok);
  EXPECT_EQ(s.port, "7420");
}

TEST(SplitHostPort, PortOfMoreThanFiveDigitsIsMalformed) { EXPECT_FALSE(SplitOf("h:007420").ok); }

TEST(SplitHostPort, PortMustBeDigitsOnly) {
  EXPECT_FALSE(SplitOf("h:").ok);
  EXPECT_FALSE(SplitOf("h:+80").ok);
  EXPECT_FALSE(SplitOf("h:-1").ok);
  EXPECT_FALSE(SplitOf("h:80x").ok);
  EXPECT_FALSE(SplitOf("h: 80").ok);
}

TEST(SplitHostPort, MissingPartsAreMalformed) {
  EXPECT_FALSE(SplitOf("").ok);
  EXPECT_FALSE(SplitOf("host").ok);
  EXPECT_FALSE(SplitOf(":7420").ok);
  EXPECT_FALSE(SplitOf("[]:7420").ok);
}

TEST(SplitHostPort, Ipv6NeedsBracketsAndAColonAfterThem) {
  EXPECT_FALSE(SplitOf("::1:7420").ok);
  EXPECT_FALSE(SplitOf("[::1]").ok);
  EXPECT_FALSE(SplitOf("[::1]7420").ok);
  EXPECT_FALSE(SplitOf("[::1:7420").ok);
  EXPECT_FALSE(SplitOf("[::1]:7420]").ok);
}

}  // namespace
}  // namespace blockrep
