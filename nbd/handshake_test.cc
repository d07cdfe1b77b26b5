// Checks the fixed-newstyle negotiation by running Handshake over a MemoryStream of scripted
// client bytes against a catalog of two fake exports and parsing every byte the server wrote.
#include "nbd/handshake.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/endian.h"
#include "nbd/protocol.h"

namespace blockrep::nbd {
namespace {

constexpr uint64_t kAlphaBytes = 1 << 20;
constexpr uint64_t kBetaBytes = 64 << 10;

// Fixed size and capabilities; the handshake never does I/O.
class FakeBackend : public Backend {
 public:
  FakeBackend(uint64_t size, BackendCapabilities caps) : size_(size), caps_(caps) {}
  uint64_t size_bytes() const override { return size_; }
  BackendCapabilities capabilities() const override { return caps_; }
  void Read(IoRing&, uint64_t, uint32_t, uint8_t*, BackendDone* done) override { done->OnDone(0); }
  void Write(IoRing&, uint64_t, uint32_t, const uint8_t*, bool, BackendDone* done) override {
    done->OnDone(0);
  }
  void WriteZeroes(IoRing&, uint64_t, uint64_t, bool, bool, bool, BackendDone* done) override {
    done->OnDone(0);
  }
  void Trim(IoRing&, uint64_t, uint64_t, bool, BackendDone* done) override { done->OnDone(0); }
  void Flush(IoRing&, BackendDone* done) override { done->OnDone(0); }
  Status BlockStatus(uint64_t, uint64_t, uint32_t, std::vector<Extent>*) override {
    return Status::Ok();
  }

 private:
  uint64_t size_;
  BackendCapabilities caps_;
};

BackendCapabilities ReadOnlyCaps() {
  BackendCapabilities caps;
  caps.read_only = true;
  caps.can_multi_conn = false;
  return caps;
}

std::string Be16(uint16_t v) {
  std::string s(2, '\0');
  StoreBe16(reinterpret_cast<uint8_t*>(s.data()), v);
  return s;
}
std::string Be32(uint32_t v) {
  std::string s(4, '\0');
  StoreBe32(reinterpret_cast<uint8_t*>(s.data()), v);
  return s;
}
std::string Be64(uint64_t v) {
  std::string s(8, '\0');
  StoreBe64(reinterpret_cast<uint8_t*>(s.data()), v);
  return s;
}
uint16_t Get16(const std::string& s, size_t at) {
  return LoadBe16(reinterpret_cast<const uint8_t*>(s.data()) + at);
}
uint32_t Get32(const std::string& s, size_t at) {
  return LoadBe32(reinterpret_cast<const uint8_t*>(s.data()) + at);
}
uint64_t Get64(const std::string& s, size_t at) {
  return LoadBe64(reinterpret_cast<const uint8_t*>(s.data()) + at);
}

// What a client sends, built up option by option.
class Client {
 public:
  explicit Client(uint32_t flags = kClientFlagFixedNewstyle) { bytes_ = Be32(flags); }
  Client& Option(uint32_t option, const std::string& data = "") {
    bytes_ += Be64(kIHaveOpt) + Be32(option) + Be32(static_cast<uint32_t>(data.size())) + data;
    return *this;
  }
  Client& Raw(const std::string& raw) {
    bytes_ += raw;
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// NBD_OPT_INFO / NBD_OPT_GO data.
std::string GoData(const std::string& name, const std::vector<uint16_t>& requests = {}) {
  std::string d = Be32(static_cast<uint32_t>(name.size())) + name +
                  Be16(static_cast<uint16_t>(requests.size()));
  for (uint16_t r : requests) d += Be16(r);
  return d;
}

// NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT data.
std::string MetaData(const std::string& name, const std::vector<std::string>& queries) {
  std::string d = Be32(static_cast<uint32_t>(name.size())) + name +
                  Be32(static_cast<uint32_t>(queries.size()));
  for (const std::string& q : queries) d += Be32(static_cast<uint32_t>(q.size())) + q;
  return d;
}

struct OptionReply {
  uint32_t option;
  uint32_t type;
  std::string data;
};

// The server's output split into greeting, option replies and whatever follows them (the
// NBD_OPT_EXPORT_NAME reply, which has no header).
struct ServerOutput {
  std::string greeting;
  std::vector<OptionReply> replies;
  std::string tail;
};

ServerOutput ParseServerOutput(const std::string& w) {
  ServerOutput out;
  out.greeting = w.substr(0, 18);
  size_t pos = out.greeting.size();
  while (w.size() - pos >= kOptionReplyHeaderBytes && Get64(w, pos) == kOptionReplyMagic) {
    OptionReply r;
    r.option = Get32(w, pos + 8);
    r.type = Get32(w, pos + 12);
    uint32_t len = Get32(w, pos + 16);
    pos += kOptionReplyHeaderBytes;
    if (w.size() - pos < len) break;  // malformed: leave it in the tail
    r.data = w.substr(pos, len);
    pos += len;
    out.replies.push_back(r);
  }
  out.tail = w.substr(pos);
  return out;
}

struct Outcome {
  Result<std::optional<Session>> result;
  ServerOutput out;
  size_t unread;  // client bytes the server never read
};

class HandshakeTest : public ::testing::Test {
 protected:
  HandshakeTest()
      : alpha_(kAlphaBytes, BackendCapabilities{}), beta_(kBetaBytes, ReadOnlyCaps()) {
    EXPECT_TRUE(catalog_.Add({"alpha", "first disk", &alpha_}).ok());
    EXPECT_TRUE(catalog_.Add({"beta", "", &beta_}).ok());
  }

  Outcome Run(const std::string& client) {
    // An exact-size heap copy, so an overread is caught by AddressSanitizer.
    std::vector<uint8_t> input(client.begin(), client.end());
    MemoryStream stream(input.data(), input.size());
    Handshake hs(catalog_, stream);
    auto result = hs.Run();
    return Outcome{std::move(result), ParseServerOutput(stream.written()), stream.remaining()};
  }

  const Export* alpha() const { return catalog_.Find("alpha"); }
  const Export* beta() const { return catalog_.Find("beta"); }

  FakeBackend alpha_;
  FakeBackend beta_;
  ExportCatalog catalog_;
};

bool IsSession(const Outcome& o) { return o.result.ok() && o.result.value().has_value(); }
bool IsAbort(const Outcome& o) { return o.result.ok() && !o.result.value().has_value(); }

// ---- Greeting and client flags -------------------------------------------------------------

TEST_F(HandshakeTest, GreetingIsNbdMagicIHaveOptAndFlags3) {
  Outcome o = Run(Client().Option(kOptAbort).bytes());
  ASSERT_EQ(o.out.greeting.size(), 18u);
  EXPECT_EQ(Get64(o.out.greeting, 0), 0x4e42444d41474943ULL);  // "NBDMAGIC"
  EXPECT_EQ(o.out.greeting.substr(0, 8), "NBDMAGIC");
  EXPECT_EQ(o.out.greeting.substr(8, 8), "IHAVEOPT");
  EXPECT_EQ(Get16(o.out.greeting, 16), 3);  // FIXED_NEWSTYLE | NO_ZEROES
}

TEST_F(HandshakeTest, UnknownClientFlagsIsError) {
  Outcome o = Run(Client(kClientFlagFixedNewstyle | 4).Option(kOptAbort).bytes());
  ASSERT_FALSE(o.result.ok());
  EXPECT_EQ(o.result.status().code(), Status::Code::kProtocolError);
  EXPECT_TRUE(o.out.replies.empty());
  EXPECT_TRUE(o.out.tail.empty());
}

TEST_F(HandshakeTest, HighClientFlagBitIsError) {
  Outcome o = Run(Client(0x80000000u | kClientFlagFixedNewstyle).Option(kOptAbort).bytes());
  EXPECT_FALSE(o.result.ok());
  EXPECT_TRUE(o.out.replies.empty());
}

TEST_F(HandshakeTest, ZeroClientFlagsAreAccepted) {
  Outcome o = Run(Client(0).Option(kOptAbort).bytes());
  EXPECT_TRUE(IsAbort(o));
}

TEST_F(HandshakeTest, EmptyInputIsErrorAfterGreeting) {
  Outcome o = Run("");
  EXPECT_FALSE(o.result.ok());
  EXPECT_EQ(o.out.greeting.size(), 18u);
}

// ---- Option framing --------------------------------------------------------------------------

TEST_F(HandshakeTest, BadOptionMagicIsError) {
  Outcome o = Run(Client().Raw(Be64(kNbdMagic) + Be32(kOptList) + Be32(0)).bytes());
  ASSERT_FALSE(o.result.ok());
  EXPECT_EQ(o.result.status().code(), Status::Code::kProtocolError);
  EXPECT_TRUE(o.out.replies.empty());
}

TEST_F(HandshakeTest, UnknownOptionGetsErrUnsup) {
  Outcome o = Run(Client().Option(42, "some data").Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[0].option, 42u);
  EXPECT_EQ(o.out.replies[0].type, 0x80000001u);
  EXPECT_FALSE(o.out.replies[0].data.empty());  // a human-readable message
}

TEST_F(HandshakeTest, StartTlsGetsErrUnsup) {
  Outcome o = Run(Client().Option(kOptStartTls).Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[0].option, kOptStartTls);
  EXPECT_EQ(o.out.replies[0].type, kRepErrUnsup);
}

TEST_F(HandshakeTest, OptionOverMaxBytesGetsErrTooBigAndItsBytesAreSkipped) {
  // The skipped payload is made of option headers so that mis-skipping would show.
  std::string payload;
  while (payload.size() < kMaxOptionBytes + 1) {
    payload += Be64(kIHaveOpt) + Be32(kOptAbort) + Be32(0);
  }
  payload.resize(kMaxOptionBytes + 1);
  Outcome o = Run(Client().Option(42, payload).Option(kOptList).Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 5u);  // TOO_BIG, 2 x SERVER, ACK, ACK
  EXPECT_EQ(o.out.replies[0].option, 42u);
  EXPECT_EQ(o.out.replies[0].type, 0x80000009u);
  EXPECT_EQ(o.out.replies[1].option, kOptList);
  EXPECT_EQ(o.out.replies[1].type, kRepServer);
  EXPECT_EQ(o.out.replies[3].option, kOptList);
  EXPECT_EQ(o.out.replies[3].type, kRepAck);
  EXPECT_EQ(o.out.replies[4].option, kOptAbort);
  EXPECT_EQ(o.unread, 0u);
}

TEST_F(HandshakeTest, OptionOfExactlyMaxBytesIsReadNotRefused) {
  Outcome o = Run(
      Client().Option(42, std::string(kMaxOptionBytes, 'x')).Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[0].type, kRepErrUnsup);
}

TEST_F(HandshakeTest, OversizedOptionWhoseBytesAreMissingIsError) {
  Outcome o = Run(Client().Raw(Be64(kIHaveOpt) + Be32(42) + Be32(0xFFFFFFFFu)).bytes());
  EXPECT_FALSE(o.result.ok());
}

TEST_F(HandshakeTest, MaxOptionsThenOneMoreIsError) {
  Client c;
  for (uint32_t i = 0; i < kMaxOptions; ++i) c.Option(42);
  c.Option(kOptGo, GoData("alpha"));
  Outcome o = Run(c.bytes());
  ASSERT_FALSE(o.result.ok());
  EXPECT_EQ(o.result.status().code(), Status::Code::kProtocolError);
  EXPECT_EQ(o.out.replies.size(), kMaxOptions);  // every allowed option was answered
}

TEST_F(HandshakeTest, GoAsLastAllowedOptionSucceeds) {
  Client c;
  for (uint32_t i = 0; i + 1 < kMaxOptions; ++i) c.Option(42);
  c.Option(kOptGo, GoData("alpha"));
  Outcome o = Run(c.bytes());
  ASSERT_TRUE(IsSession(o)) << o.result.status().ToString();
  EXPECT_EQ(o.result.value()->exp, alpha());
}

// ---- LIST ------------------------------------------------------------------------------------

TEST_F(HandshakeTest, ListWithDataGetsErrInvalid) {
  Outcome o = Run(Client().Option(kOptList, "x").Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[0].option, kOptList);
  EXPECT_EQ(o.out.replies[0].type, 0x80000003u);
}

TEST_F(HandshakeTest, ListSendsOneServerReplyPerExportThenAck) {
  Outcome o = Run(Client().Option(kOptList).Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 4u);
  const OptionReply& a = o.out.replies[0];
  EXPECT_EQ(a.option, kOptList);
  EXPECT_EQ(a.type, kRepServer);
  EXPECT_EQ(a.data, Be32(5) + "alpha" + "first disk");
  const OptionReply& b = o.out.replies[1];
  EXPECT_EQ(b.type, kRepServer);
  EXPECT_EQ(b.data, Be32(4) + "beta");
  EXPECT_EQ(o.out.replies[2].option, kOptList);
  EXPECT_EQ(o.out.replies[2].type, kRepAck);
  EXPECT_TRUE(o.out.replies[2].data.empty());
}

// ---- INFO and GO -----------------------------------------------------------------------------

TEST_F(HandshakeTest, GoUnknownExportGetsErrUnknownAndNegotiationContinues) {
  Outcome o =
      Run(Client().Option(kOptGo, GoData("nope")).Option(kOptGo, GoData("beta")).bytes());
  ASSERT_TRUE(IsSession(o)) << o.result.status().ToString();
  ASSERT_FALSE(o.out.replies.empty());
  EXPECT_EQ(o.out.replies[0].option, kOptGo);
  EXPECT_EQ(o.out.replies[0].type, 0x80000006u);
  EXPECT_EQ(o.result.value()->exp, beta());
}

TEST_F(HandshakeTest, GoNameLengthPastDataGetsErrInvalid) {
  std::string data = Be32(100) + "alpha" + Be16(0);
  Outcome o = Run(Client().Option(kOptGo, data).Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[0].option, kOptGo);
  EXPECT_EQ(o.out.replies[0].type, kRepErrInvalid);
}

TEST_F(HandshakeTest, GoTrailingBytesGetErrInvalid) {
  Outcome o = Run(Client().Option(kOptGo, GoData("alpha") + "z").Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[0].type, kRepErrInvalid);
}

TEST_F(HandshakeTest, GoRequestCountPastDataGetsErrInvalid) {
  std::string data = Be32(5) + "alpha" + Be16(2) + Be16(kInfoName);  // says 2, has 1
  Outcome o = Run(Client().Option(kOptGo, data).Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[0].type, kRepErrInvalid);
}

TEST_F(HandshakeTest, GoWithoutRequestCountGetsErrInvalid) {
  Outcome o = Run(Client().Option(kOptGo, Be32(5) + "alpha").Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[0].type, kRepErrInvalid);
}

TEST_F(HandshakeTest, GoNameWithNulGetsErrInvalid) {
  Outcome o = Run(
      Client().Option(kOptGo, GoData(std::string("al\0ha", 5))).Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[0].type, kRepErrInvalid);
}

TEST_F(HandshakeTest, InfoSendsExportInfoBlockSizeAndAckAndDoesNotEndNegotiation) {
  Outcome o = Run(Client().Option(kOptInfo, GoData("alpha")).Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o)) << "INFO must not end the negotiation";
  ASSERT_EQ(o.out.replies.size(), 4u);  // INFO EXPORT, INFO BLOCK_SIZE, ACK, ACK(abort)

  const OptionReply& exp = o.out.replies[0];
  EXPECT_EQ(exp.option, kOptInfo);
  EXPECT_EQ(exp.type, kRepInfo);
  ASSERT_EQ(exp.data.size(), 12u);
  EXPECT_EQ(Get16(exp.data, 0), kInfoExport);
  EXPECT_EQ(Get64(exp.data, 2), kAlphaBytes);
  EXPECT_EQ(Get16(exp.data, 10), TransmissionFlags(BackendCapabilities{}, false));

  const OptionReply& bs = o.out.replies[1];
  EXPECT_EQ(bs.type, kRepInfo);
  ASSERT_EQ(bs.data.size(), 14u);
  EXPECT_EQ(Get16(bs.data, 0), kInfoBlockSize);
  EXPECT_EQ(Get32(bs.data, 2), 1u);
  EXPECT_EQ(Get32(bs.data, 6), 4096u);
  EXPECT_EQ(Get32(bs.data, 10), 32u << 20);

  EXPECT_EQ(o.out.replies[2].option, kOptInfo);
  EXPECT_EQ(o.out.replies[2].type, kRepAck);
}

TEST_F(HandshakeTest, InfoSendsNameAndDescriptionWhenRequested) {
  Outcome o = Run(Client()
                      .Option(kOptInfo, GoData("alpha", {kInfoDescription, kInfoName}))
                      .Option(kOptAbort)
                      .bytes());
  ASSERT_TRUE(IsAbort(o));
  std::vector<uint16_t> infos;
  std::string name, description;
  for (const OptionReply& r : o.out.replies) {
    if (r.type != kRepInfo) continue;
    ASSERT_GE(r.data.size(), 2u);
    uint16_t info = Get16(r.data, 0);
    infos.push_back(info);
    if (info == kInfoName) name = r.data.substr(2);
    if (info == kInfoDescription) description = r.data.substr(2);
  }
  EXPECT_EQ(infos.size(), 4u);  // EXPORT, DESCRIPTION, NAME, BLOCK_SIZE
  EXPECT_EQ(name, "alpha");
  EXPECT_EQ(description, "first disk");
}

TEST_F(HandshakeTest, InfoRepeatedRequestIsAnsweredOnce) {
  Outcome o = Run(Client()
                      .Option(kOptInfo, GoData("alpha", {kInfoName, kInfoName, kInfoBlockSize}))
                      .Option(kOptAbort)
                      .bytes());
  ASSERT_TRUE(IsAbort(o));
  int names = 0, block_sizes = 0;
  for (const OptionReply& r : o.out.replies) {
    if (r.type != kRepInfo) continue;
    if (Get16(r.data, 0) == kInfoName) ++names;
    if (Get16(r.data, 0) == kInfoBlockSize) ++block_sizes;
  }
  EXPECT_EQ(names, 1);
  EXPECT_EQ(block_sizes, 1);
}

TEST_F(HandshakeTest, InfoUnknownRequestTypeIsIgnored) {
  Outcome o =
      Run(Client().Option(kOptInfo, GoData("alpha", {999})).Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 4u);  // EXPORT, BLOCK_SIZE, ACK, ACK(abort)
  EXPECT_EQ(o.out.replies[2].type, kRepAck);
}

TEST_F(HandshakeTest, InfoForReadOnlyExportAdvertisesReadOnly) {
  Outcome o = Run(Client().Option(kOptInfo, GoData("beta")).Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_FALSE(o.out.replies.empty());
  const OptionReply& exp = o.out.replies[0];
  ASSERT_EQ(exp.data.size(), 12u);
  EXPECT_EQ(Get64(exp.data, 2), kBetaBytes);
  const uint16_t flags = Get16(exp.data, 10);
  EXPECT_TRUE(flags & kFlagReadOnly);
  EXPECT_FALSE(flags & kFlagSendTrim);
  EXPECT_FALSE(flags & kFlagSendWriteZeroes);
}

TEST_F(HandshakeTest, InfoUnknownExportGetsErrUnknown) {
  Outcome o = Run(Client().Option(kOptInfo, GoData("nope")).Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[0].option, kOptInfo);
  EXPECT_EQ(o.out.replies[0].type, kRepErrUnknown);
}

TEST_F(HandshakeTest, GoEndsNegotiationWithSessionForExport) {
  const std::string after = "transmission bytes";
  Outcome o = Run(Client().Option(kOptGo, GoData("beta")).Raw(after).bytes());
  ASSERT_TRUE(IsSession(o)) << o.result.status().ToString();
  const Session& s = *o.result.value();
  EXPECT_EQ(s.exp, beta());
  EXPECT_FALSE(s.structured_replies);
  EXPECT_FALSE(s.base_allocation);
  EXPECT_EQ(s.transmission_flags, TransmissionFlags(ReadOnlyCaps(), false));
  EXPECT_EQ(o.unread, after.size()) << "the handshake read past its last option";
  ASSERT_FALSE(o.out.replies.empty());
  EXPECT_EQ(o.out.replies.back().option, kOptGo);
  EXPECT_EQ(o.out.replies.back().type, kRepAck);
  EXPECT_TRUE(o.out.tail.empty());
}

TEST_F(HandshakeTest, GoEmptyNameSelectsDefaultExport) {
  Outcome o = Run(Client().Option(kOptGo, GoData("")).bytes());
  ASSERT_TRUE(IsSession(o));
  EXPECT_EQ(o.result.value()->exp, alpha());
}

TEST_F(HandshakeTest, GoAfterStructuredReplyAdvertisesDf) {
  Outcome o = Run(Client().Option(kOptStructuredReply).Option(kOptGo, GoData("alpha")).bytes());
  ASSERT_TRUE(IsSession(o));
  const Session& s = *o.result.value();
  EXPECT_TRUE(s.structured_replies);
  EXPECT_TRUE(s.transmission_flags & kFlagSendDf);
  EXPECT_EQ(s.transmission_flags, TransmissionFlags(BackendCapabilities{}, true));
}

// ---- EXPORT_NAME -----------------------------------------------------------------------------

TEST_F(HandshakeTest, ExportNameSendsSizeFlagsAnd124Zeroes) {
  Outcome o = Run(Client(kClientFlagFixedNewstyle).Option(kOptExportName, "alpha").bytes());
  ASSERT_TRUE(IsSession(o)) << o.result.status().ToString();
  EXPECT_TRUE(o.out.replies.empty());
  ASSERT_EQ(o.out.tail.size(), 134u);
  EXPECT_EQ(Get64(o.out.tail, 0), kAlphaBytes);
  EXPECT_EQ(Get16(o.out.tail, 8), TransmissionFlags(BackendCapabilities{}, false));
  EXPECT_EQ(o.out.tail.substr(10), std::string(124, '\0'));
  EXPECT_EQ(o.result.value()->exp, alpha());
  EXPECT_EQ(o.result.value()->transmission_flags, Get16(o.out.tail, 8));
}

TEST_F(HandshakeTest, ExportNameWithNoZeroesSendsTenBytes) {
  Outcome o = Run(Client(kClientFlagFixedNewstyle | kClientFlagNoZeroes)
                      .Option(kOptExportName, "beta")
                      .bytes());
  ASSERT_TRUE(IsSession(o));
  ASSERT_EQ(o.out.tail.size(), 10u);
  EXPECT_EQ(Get64(o.out.tail, 0), kBetaBytes);
  EXPECT_EQ(Get16(o.out.tail, 8), TransmissionFlags(ReadOnlyCaps(), false));
  EXPECT_EQ(o.result.value()->exp, beta());
}

TEST_F(HandshakeTest, ExportNameUnknownIsErrorStatus) {
  Outcome o = Run(Client().Option(kOptExportName, "nope").bytes());
  ASSERT_FALSE(o.result.ok());
  EXPECT_EQ(o.result.status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(o.out.replies.empty());
  EXPECT_TRUE(o.out.tail.empty()) << "nothing may be sent for an unknown EXPORT_NAME";
}

TEST_F(HandshakeTest, ExportNameOverMaxOptionBytesIsError) {
  Outcome o = Run(
      Client().Option(kOptExportName, std::string(kMaxOptionBytes + 1, 'a')).bytes());
  ASSERT_FALSE(o.result.ok());
  EXPECT_TRUE(o.out.replies.empty());
}

TEST_F(HandshakeTest, ExportNameOverMaxStringBytesIsError) {
  Outcome o = Run(
      Client().Option(kOptExportName, std::string(kMaxStringBytes + 1, 'a')).bytes());
  ASSERT_FALSE(o.result.ok());
  EXPECT_TRUE(o.out.tail.empty());
}

TEST_F(HandshakeTest, ExportNameEmptySelectsDefaultExport) {
  Outcome o = Run(Client().Option(kOptExportName, "").bytes());
  ASSERT_TRUE(IsSession(o));
  EXPECT_EQ(o.result.value()->exp, alpha());
}

// ---- ABORT and STRUCTURED_REPLY --------------------------------------------------------------

TEST_F(HandshakeTest, AbortGetsAckAndEndsWithoutSession) {
  Outcome o = Run(Client().Option(kOptAbort).Option(kOptGo, GoData("alpha")).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 1u);
  EXPECT_EQ(o.out.replies[0].option, kOptAbort);
  EXPECT_EQ(o.out.replies[0].type, kRepAck);
  EXPECT_GT(o.unread, 0u) << "nothing after ABORT may be read";
}

TEST_F(HandshakeTest, StructuredReplyGetsAck) {
  Outcome o = Run(Client().Option(kOptStructuredReply).Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[0].option, kOptStructuredReply);
  EXPECT_EQ(o.out.replies[0].type, kRepAck);
}

TEST_F(HandshakeTest, StructuredReplyWithDataGetsErrInvalidAndIsNotEnabled) {
  Outcome o = Run(
      Client().Option(kOptStructuredReply, "x").Option(kOptGo, GoData("alpha")).bytes());
  ASSERT_TRUE(IsSession(o));
  ASSERT_FALSE(o.out.replies.empty());
  EXPECT_EQ(o.out.replies[0].type, kRepErrInvalid);
  EXPECT_FALSE(o.result.value()->structured_replies);
}

// ---- Meta contexts ---------------------------------------------------------------------------

TEST_F(HandshakeTest, SetMetaContextBeforeStructuredReplyGetsErrInvalid) {
  Outcome o = Run(Client()
                      .Option(kOptSetMetaContext, MetaData("alpha", {"base:allocation"}))
                      .Option(kOptGo, GoData("alpha"))
                      .bytes());
  ASSERT_TRUE(IsSession(o));
  ASSERT_FALSE(o.out.replies.empty());
  EXPECT_EQ(o.out.replies[0].option, kOptSetMetaContext);
  EXPECT_EQ(o.out.replies[0].type, 0x80000003u);
  EXPECT_FALSE(o.result.value()->base_allocation);
}

TEST_F(HandshakeTest, ListMetaContextBeforeStructuredReplyGetsErrInvalid) {
  Outcome o = Run(
      Client().Option(kOptListMetaContext, MetaData("alpha", {})).Option(kOptAbort).bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[0].type, kRepErrInvalid);
}

TEST_F(HandshakeTest, SetBaseAllocationAfterStructuredReplyIsSelected) {
  Outcome o = Run(Client()
                      .Option(kOptStructuredReply)
                      .Option(kOptSetMetaContext, MetaData("alpha", {"base:allocation"}))
                      .Option(kOptGo, GoData("alpha"))
                      .bytes());
  ASSERT_TRUE(IsSession(o)) << o.result.status().ToString();
  ASSERT_GE(o.out.replies.size(), 3u);
  const OptionReply& ctx = o.out.replies[1];
  EXPECT_EQ(ctx.option, kOptSetMetaContext);
  EXPECT_EQ(ctx.type, 4u);
  ASSERT_GE(ctx.data.size(), 4u);
  EXPECT_NE(Get32(ctx.data, 0), 0u) << "SET must assign a non-zero context id";
  EXPECT_EQ(ctx.data.substr(4), "base:allocation");
  EXPECT_EQ(o.out.replies[2].option, kOptSetMetaContext);
  EXPECT_EQ(o.out.replies[2].type, kRepAck);
  EXPECT_TRUE(o.result.value()->base_allocation);
  EXPECT_TRUE(o.result.value()->structured_replies);
}

TEST_F(HandshakeTest, SetForOneExportThenGoAnotherDropsBaseAllocation) {
  Outcome o = Run(Client()
                      .Option(kOptStructuredReply)
                      .Option(kOptSetMetaContext, MetaData("alpha", {"base:allocation"}))
                      .Option(kOptGo, GoData("beta"))
                      .bytes());
  ASSERT_TRUE(IsSession(o));
  EXPECT_EQ(o.result.value()->exp, beta());
  EXPECT_FALSE(o.result.value()->base_allocation);
}

TEST_F(HandshakeTest, SetForOneExportThenExportNameAnotherDropsBaseAllocation) {
  Outcome o = Run(Client()
                      .Option(kOptStructuredReply)
                      .Option(kOptSetMetaContext, MetaData("alpha", {"base:allocation"}))
                      .Option(kOptExportName, "beta")
                      .bytes());
  ASSERT_TRUE(IsSession(o));
  EXPECT_FALSE(o.result.value()->base_allocation);
}

TEST_F(HandshakeTest, SetForDefaultNameThenGoFirstExportKeepsBaseAllocation) {
  Outcome o = Run(Client()
                      .Option(kOptStructuredReply)
                      .Option(kOptSetMetaContext, MetaData("", {"base:allocation"}))
                      .Option(kOptGo, GoData("alpha"))
                      .bytes());
  ASSERT_TRUE(IsSession(o));
  EXPECT_TRUE(o.result.value()->base_allocation);
}

TEST_F(HandshakeTest, LaterSetWithoutMatchClearsBaseAllocation) {
  Outcome o = Run(Client()
                      .Option(kOptStructuredReply)
                      .Option(kOptSetMetaContext, MetaData("alpha", {"base:allocation"}))
                      .Option(kOptSetMetaContext, MetaData("alpha", {"qemu:dirty-bitmap:x"}))
                      .Option(kOptGo, GoData("alpha"))
                      .bytes());
  ASSERT_TRUE(IsSession(o));
  EXPECT_FALSE(o.result.value()->base_allocation);
}

TEST_F(HandshakeTest, SetWithBasePrefixSelectsNothing) {
  Outcome o = Run(Client()
                      .Option(kOptStructuredReply)
                      .Option(kOptSetMetaContext, MetaData("alpha", {"base:"}))
                      .Option(kOptGo, GoData("alpha"))
                      .bytes());
  ASSERT_TRUE(IsSession(o));
  ASSERT_GE(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[1].type, kRepAck) << "no META_CONTEXT for a prefix in SET";
  EXPECT_FALSE(o.result.value()->base_allocation);
}

TEST_F(HandshakeTest, ListMetaContextWithNoQueriesListsBaseAllocation) {
  Outcome o = Run(Client()
                      .Option(kOptStructuredReply)
                      .Option(kOptListMetaContext, MetaData("alpha", {}))
                      .Option(kOptGo, GoData("alpha"))
                      .bytes());
  ASSERT_TRUE(IsSession(o));
  ASSERT_GE(o.out.replies.size(), 3u);
  const OptionReply& ctx = o.out.replies[1];
  EXPECT_EQ(ctx.option, kOptListMetaContext);
  EXPECT_EQ(ctx.type, kRepMetaContext);
  EXPECT_EQ(ctx.data, Be32(0) + "base:allocation");
  EXPECT_EQ(o.out.replies[2].type, kRepAck);
  EXPECT_FALSE(o.result.value()->base_allocation) << "LIST must not select a context";
}

TEST_F(HandshakeTest, ListMetaContextWithBasePrefixListsBaseAllocation) {
  Outcome o = Run(Client()
                      .Option(kOptStructuredReply)
                      .Option(kOptListMetaContext, MetaData("alpha", {"base:"}))
                      .Option(kOptAbort)
                      .bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_GE(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[1].type, kRepMetaContext);
  EXPECT_EQ(o.out.replies[1].data.substr(4), "base:allocation");
}

TEST_F(HandshakeTest, ListMetaContextWithUnknownQueryListsNothing) {
  Outcome o = Run(Client()
                      .Option(kOptStructuredReply)
                      .Option(kOptListMetaContext, MetaData("alpha", {"qemu:"}))
                      .Option(kOptAbort)
                      .bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 3u);  // ACK(structured), ACK(list), ACK(abort)
  EXPECT_EQ(o.out.replies[1].type, kRepAck);
}

TEST_F(HandshakeTest, MetaContextForUnknownExportGetsErrUnknown) {
  Outcome o = Run(Client()
                      .Option(kOptStructuredReply)
                      .Option(kOptSetMetaContext, MetaData("nope", {"base:allocation"}))
                      .Option(kOptAbort)
                      .bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 3u);
  EXPECT_EQ(o.out.replies[1].type, kRepErrUnknown);
}

TEST_F(HandshakeTest, MetaContextWithTrailingBytesGetsErrInvalid) {
  Outcome o = Run(Client()
                      .Option(kOptStructuredReply)
                      .Option(kOptSetMetaContext, MetaData("alpha", {"base:allocation"}) + "z")
                      .Option(kOptGo, GoData("alpha"))
                      .bytes());
  ASSERT_TRUE(IsSession(o));
  ASSERT_GE(o.out.replies.size(), 2u);
  EXPECT_EQ(o.out.replies[1].type, kRepErrInvalid);
  EXPECT_FALSE(o.result.value()->base_allocation);
}

TEST_F(HandshakeTest, MetaContextQueryLengthPastDataGetsErrInvalid) {
  std::string data = Be32(5) + "alpha" + Be32(1) + Be32(1000) + "base:allocation";
  Outcome o = Run(Client()
                      .Option(kOptStructuredReply)
                      .Option(kOptSetMetaContext, data)
                      .Option(kOptAbort)
                      .bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 3u);
  EXPECT_EQ(o.out.replies[1].type, kRepErrInvalid);
}

TEST_F(HandshakeTest, TooManyMetaQueriesGetsErrTooBig) {
  std::string data = Be32(5) + "alpha" + Be32(kMaxMetaQueries + 1);
  Outcome o = Run(Client()
                      .Option(kOptStructuredReply)
                      .Option(kOptListMetaContext, data)
                      .Option(kOptAbort)
                      .bytes());
  ASSERT_TRUE(IsAbort(o));
  ASSERT_EQ(o.out.replies.size(), 3u);
  EXPECT_EQ(o.out.replies[1].type, kRepErrTooBig);
}

// ---- Truncated input -------------------------------------------------------------------------

TEST_F(HandshakeTest, TruncatedGoExchangeIsErrorAtEveryLength) {
  const std::string full = Client()
                               .Option(kOptStructuredReply)
                               .Option(kOptSetMetaContext, MetaData("alpha", {"base:allocation"}))
                               .Option(kOptInfo, GoData("alpha", {kInfoName}))
                               .Option(kOptGo, GoData("alpha", {kInfoName, kInfoDescription}))
                               .bytes();
  ASSERT_TRUE(IsSession(Run(full)));
  for (size_t n = 0; n < full.size(); ++n) {
    Outcome o = Run(full.substr(0, n));
    EXPECT_FALSE(o.result.ok()) << "input cut to " << n << " of " << full.size() << " bytes";
    EXPECT_EQ(o.unread, 0u);
  }
}

TEST_F(HandshakeTest, TruncatedExportNameExchangeIsErrorAtEveryLength) {
  const std::string full = Client(kClientFlagFixedNewstyle | kClientFlagNoZeroes)
                               .Option(kOptList)
                               .Option(kOptExportName, "beta")
                               .bytes();
  ASSERT_TRUE(IsSession(Run(full)));
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_FALSE(Run(full.substr(0, n)).result.ok()) << "input cut to " << n << " bytes";
  }
}

// ---- TransmissionFlags -----------------------------------------------------------------------

TEST(TransmissionFlags, WritableExportAdvertisesEverything) {
  uint16_t f = TransmissionFlags(BackendCapabilities{}, false);
  EXPECT_EQ(f, kFlagHasFlags | kFlagSendFlush | kFlagSendFua | kFlagSendTrim |
                   kFlagSendWriteZeroes | kFlagSendFastZero | kFlagCanMultiConn);
}

TEST(TransmissionFlags, DfOnlyWithStructuredReplies) {
  EXPECT_FALSE(TransmissionFlags(BackendCapabilities{}, false) & kFlagSendDf);
  EXPECT_TRUE(TransmissionFlags(BackendCapabilities{}, true) & kFlagSendDf);
}

TEST(TransmissionFlags, FastZeroNeedsZero) {
  BackendCapabilities caps;
  caps.can_zero = false;
  uint16_t f = TransmissionFlags(caps, false);
  EXPECT_FALSE(f & kFlagSendWriteZeroes);
  EXPECT_FALSE(f & kFlagSendFastZero);
}

TEST(TransmissionFlags, ReadOnlyAdvertisesNoWriteCommands) {
  uint16_t f = TransmissionFlags(ReadOnlyCaps(), false);
  EXPECT_TRUE(f & kFlagReadOnly);
  EXPECT_FALSE(f & (kFlagSendTrim | kFlagSendWriteZeroes | kFlagSendFastZero));
  EXPECT_FALSE(f & kFlagCanMultiConn);
}

}  // namespace
}  // namespace blockrep::nbd
