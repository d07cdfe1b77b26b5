// Checks the replication protocol codec against docs/formats/replication.md: the worked
// example's bytes, a round trip of every message, one test per rule a decoder enforces (each
// feeding it hand-built bytes that break just that rule), the hash definitions recomputed
// with XXH3 directly, and that no truncation or corruption of a valid message crashes a
// decoder (run under ASan/UBSan, with buffers sized exactly so any over-read is caught).
// It is over 1,000 lines because every rule a decoder enforces gets its own test (the
// house style's one case per edge case), and the protocol has some sixty of them.
#include "core/repl_wire.h"

#include <gtest/gtest.h>
#include <xxhash.h>
#include <zstd.h>

#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/endian.h"

namespace blockrep::repl {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint64_t kDiskBytes = 8ull << 20;  // 8 chunks

DiskId ExampleDiskId() {
  DiskId id;
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(i * 0x11);
  return id;
}

// An item header laid out by hand from the spec's table (not with the codec's encoder), with
// every field settable, including the ones a valid item never has.
struct RawItem {
  uint8_t type = 1;
  uint8_t reserved = 0;
  uint16_t flags = 0;
  uint32_t data_bytes = 0;
  uint64_t seq = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t timestamp_ns = 0;
};

void AppendItem(Bytes* raw, const RawItem& it, size_t data_present) {
  uint8_t h[40];
  h[0] = it.type;
  h[1] = it.reserved;
  StoreLe16(h + 2, it.flags);
  StoreLe32(h + 4, it.data_bytes);
  StoreLe64(h + 8, it.seq);
  StoreLe64(h + 16, it.offset);
  StoreLe64(h + 24, it.length);
  StoreLe64(h + 32, it.timestamp_ns);
  raw->insert(raw->end(), h, h + 40);
  raw->insert(raw->end(), data_present, 0x5A);
}
void AppendItem(Bytes* raw, const RawItem& it) { AppendItem(raw, it, it.data_bytes); }

RawItem Write(uint64_t offset, uint64_t length) {
  return RawItem{.type = 1,
                 .data_bytes = static_cast<uint32_t>(length),
                 .seq = 7,
                 .offset = offset,
                 .length = length};
}
RawItem Of(ItemType type, uint64_t offset, uint64_t length, uint32_t data_bytes = 0) {
  return RawItem{.type = static_cast<uint8_t>(type),
                 .data_bytes = data_bytes,
                 .offset = offset,
                 .length = length};
}

// Reads every item of raw (count of them, on a disk of disk_bytes); the reader's status.
Status ReadItems(const Bytes& raw, uint32_t count, uint64_t disk_bytes,
                 std::vector<ItemHeader>* items = nullptr) {
  ItemReader reader(raw.data(), raw.size(), count, disk_bytes);
  ItemHeader h;
  const uint8_t* data;
  while (reader.Next(&h, &data)) {
    if (items != nullptr) items->push_back(h);
  }
  return reader.status();
}

Status ReadOne(const RawItem& it, uint64_t disk_bytes = kDiskBytes) {
  Bytes raw;
  AppendItem(&raw, it);
  return ReadItems(raw, 1, disk_bytes);
}

// A BATCH header laid out by hand.
Bytes BatchHeaderBytes(uint64_t batch, uint64_t through, uint32_t codec, uint32_t raw_bytes,
                       uint32_t count, uint32_t reserved = 0) {
  Bytes b(32);
  StoreLe64(b.data(), batch);
  StoreLe64(b.data() + 8, through);
  StoreLe32(b.data() + 16, codec);
  StoreLe32(b.data() + 20, raw_bytes);
  StoreLe32(b.data() + 24, count);
  StoreLe32(b.data() + 28, reserved);
  return b;
}

Bytes Concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes Zstd(const Bytes& in, bool with_content_size = true) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, with_content_size ? 1 : 0);
  Bytes out(ZSTD_compressBound(in.size()));
  const size_t n = ZSTD_compress2(cctx, out.data(), out.size(), in.data(), in.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

Bytes RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (auto& c : b) c = static_cast<uint8_t>(rng());
  return b;
}

Bytes Hex(std::initializer_list<int> bytes) {
  Bytes b;
  for (int v : bytes) b.push_back(static_cast<uint8_t>(v));
  return b;
}

Hello ExampleHello() {
  Hello m;
  m.disk_bytes = 1ull << 30;
  m.generation = 1;
  m.disk_id = ExampleDiskId();
  m.disk_name = "vm1";
  m.software_version = "0.2.0";
  return m;
}

Hashes EqualHashes(uint32_t chunk_length) {
  Hashes m;
  m.chunk_length = chunk_length;
  m.equal = true;
  return m;
}

std::vector<uint64_t> SomeHashes(size_t n) {
  std::vector<uint64_t> v;
  for (size_t i = 0; i < n; ++i) v.push_back(0x0123456789abcdefull * (i + 1));
  return v;
}

// ---- the worked example ------------------------------------------------------------------

TEST(ReplWire, WorkedExampleHelloMatchesSpec) {
  const Bytes frame = MakeFrame(MsgType::kHello, EncodeHello(ExampleHello()));
  const Bytes expected = Hex({
      0x42, 0x52, 0x52, 0x50, 0x01, 0x00, 0x00, 0x00, 0x34, 0x00, 0x00, 0x00,  // BRRP, 1, 0, 52
      0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,                          // version 1
      0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00,                          // size 1 GiB
      0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,                          // generation 1
      0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,                          // disk id
      0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,                          //
      0x03, 0x00, 0x76, 0x6d, 0x31,                                            // "vm1"
      0x05, 0x00, 0x30, 0x2e, 0x32, 0x2e, 0x30,                                // "0.2.0"
  });
  EXPECT_EQ(frame, expected);
}

TEST(ReplWire, WorkedExampleBatchMatchesSpec) {
  const uint64_t ts = 1795400000000000000ull;
  const Bytes data(4096, 0xAB);
  BatchBuilder b;
  b.Reset(1);
  b.Add(ItemHeader{.type = ItemType::kWrite,
                   .data_bytes = 4096,
                   .seq = 5,
                   .offset = 8192,
                   .length = 4096,
                   .timestamp_ns = ts},
        data.data());
  auto payload = b.Finish(5, 3);
  ASSERT_TRUE(payload.ok()) << payload.status().ToString();

  BatchHeader h;
  Bytes raw;
  ASSERT_TRUE(DecodeBatch(payload->data(), payload->size(), &h, &raw).ok());
  EXPECT_EQ(h.batch, 1u);
  EXPECT_EQ(h.through_seq, 5u);
  EXPECT_EQ(h.codec, 1u);  // 4096 bytes of 0xAB compress
  EXPECT_EQ(h.raw_bytes, 4136u);
  EXPECT_EQ(h.item_count, 1u);
  const Bytes item_header = Hex({
      0x01, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,  // WRITE, reserved, flags, 4096 data
      0x05, 0,    0,    0,    0,    0,    0,    0,     // seq 5
      0x00, 0x20, 0,    0,    0,    0,    0,    0,     // offset 8192
      0x00, 0x10, 0,    0,    0,    0,    0,    0,     // length 4096
      0x00, 0x80, 0xbc, 0x9d, 0xc9, 0x8a, 0xea, 0x18,  // timestamp
  });
  ASSERT_EQ(raw.size(), 4136u);
  EXPECT_EQ(Bytes(raw.begin(), raw.begin() + 40), item_header);
  EXPECT_EQ(Bytes(raw.begin() + 40, raw.end()), data);
}

// ---- frames ------------------------------------------------------------------------------

TEST(ReplWire, FrameHeaderRoundTrip) {
  uint8_t buf[kFrameHeaderBytes];
  EncodeFrameHeader(MsgType::kBatch, 123456, buf);
  FrameHeader h;
  ASSERT_TRUE(DecodeFrameHeader(buf, &h).ok());
  EXPECT_EQ(h.type, MsgType::kBatch);
  EXPECT_EQ(h.payload_bytes, 123456u);
}

TEST(ReplWire, FrameHeaderRejectsBadMagic) {
  uint8_t buf[kFrameHeaderBytes];
  EncodeFrameHeader(MsgType::kPing, 0, buf);
  buf[3] = 'Q';
  FrameHeader h;
  const Status st = DecodeFrameHeader(buf, &h);
  EXPECT_EQ(st.code(), Status::Code::kProtocolError);
  EXPECT_EQ(st.message(), "frame header: magic 42 52 52 51 is not BRRP");
}

TEST(ReplWire, FrameHeaderRejectsUnknownType) {
  for (uint16_t type : {0, 11, 0xffff}) {
    uint8_t buf[kFrameHeaderBytes];
    EncodeFrameHeader(MsgType::kPing, 0, buf);
    StoreLe16(buf + 4, type);
    FrameHeader h;
    EXPECT_FALSE(DecodeFrameHeader(buf, &h).ok()) << type;
  }
}

TEST(ReplWire, FrameHeaderRejectsNonzeroFlags) {
  uint8_t buf[kFrameHeaderBytes];
  EncodeFrameHeader(MsgType::kAck, 32, buf);
  StoreLe16(buf + 6, 1);
  FrameHeader h;
  EXPECT_EQ(DecodeFrameHeader(buf, &h).message(), "frame header (ACK): flags 0x0001, expected 0");
}

TEST(ReplWire, FrameHeaderRejectsOversizedPayload) {
  uint8_t buf[kFrameHeaderBytes];
  FrameHeader h;
  EncodeFrameHeader(MsgType::kBatch, kMaxFramePayloadBytes, buf);
  EXPECT_TRUE(DecodeFrameHeader(buf, &h).ok());
  EncodeFrameHeader(MsgType::kBatch, kMaxFramePayloadBytes + 1, buf);
  EXPECT_FALSE(DecodeFrameHeader(buf, &h).ok());
  EncodeFrameHeader(MsgType::kBatch, 0xffffffffu, buf);
  EXPECT_FALSE(DecodeFrameHeader(buf, &h).ok());
}

TEST(ReplWire, FrameHeaderRejectsPayloadOverItsTypeLimit) {
  uint8_t buf[kFrameHeaderBytes];
  FrameHeader h;
  EncodeFrameHeader(MsgType::kPing, 1, buf);
  EXPECT_FALSE(DecodeFrameHeader(buf, &h).ok());
  EncodeFrameHeader(MsgType::kAck, 33, buf);
  EXPECT_FALSE(DecodeFrameHeader(buf, &h).ok());
  EncodeFrameHeader(MsgType::kHello, 1u << 20, buf);
  EXPECT_EQ(DecodeFrameHeader(buf, &h).message(),
            "frame header (HELLO): payload of 1048576 bytes is over the limit (4096)");
}

TEST(ReplWire, LargestMessagesFitTheirTypeLimit) {
  const std::string longest(kMaxStringBytes, 'x');
  Hello hello = ExampleHello();
  hello.disk_name = hello.software_version = longest;
  EXPECT_LE(EncodeHello(hello).size(), MaxPayloadBytes(MsgType::kHello));
  EXPECT_EQ(EncodeHelloReply(HelloReply{.message = longest}).size(),
            MaxPayloadBytes(MsgType::kHelloReply));
  EXPECT_EQ(EncodeStart(Start{}).size(), MaxPayloadBytes(MsgType::kStart));
  EXPECT_EQ(EncodeAck(Ack{}).size(), MaxPayloadBytes(MsgType::kAck));
  EXPECT_EQ(
      EncodeHashes(Hashes{.chunk_length = kChunkBytes, .block_hashes = SomeHashes(256)}).size(),
      MaxPayloadBytes(MsgType::kHashes));
  EXPECT_EQ(
      EncodeVerifyHashes(VerifyHashes{.chunk_length = kChunkBytes, .block_hashes = SomeHashes(256)})
          .size(),
      MaxPayloadBytes(MsgType::kVerifyHashes));
  EXPECT_EQ(EncodeError(Error{.code = ErrorCode::kBusy, .message = longest}).size(),
            MaxPayloadBytes(MsgType::kError));
  EXPECT_EQ(MaxPayloadBytes(MsgType::kPing), 0u);
  EXPECT_EQ(MaxPayloadBytes(MsgType::kPong), 0u);
  EXPECT_GE(MaxPayloadBytes(MsgType::kBatch), kBatchHeaderBytes + kMaxBatchRawBytes);
}

TEST(ReplWire, MakeFrameIsHeaderThenPayload) {
  const Bytes payload = EncodeAck(Ack{.batch = 3});
  const Bytes frame = MakeFrame(MsgType::kAck, payload);
  ASSERT_EQ(frame.size(), kFrameHeaderBytes + payload.size());
  FrameHeader h;
  ASSERT_TRUE(DecodeFrameHeader(frame.data(), &h).ok());
  EXPECT_EQ(h.type, MsgType::kAck);
  EXPECT_EQ(h.payload_bytes, payload.size());
  EXPECT_EQ(Bytes(frame.begin() + kFrameHeaderBytes, frame.end()), payload);
  EXPECT_EQ(MakeFrame(MsgType::kPing, {}).size(), kFrameHeaderBytes);
}

// ---- HELLO -------------------------------------------------------------------------------

TEST(ReplWire, HelloRoundTrip) {
  const Hello in = ExampleHello();
  const Bytes p = EncodeHello(in);
  Hello out;
  ASSERT_TRUE(DecodeHello(p.data(), p.size(), &out).ok());
  EXPECT_EQ(out.version, kProtocolVersion);
  EXPECT_EQ(out.disk_bytes, in.disk_bytes);
  EXPECT_EQ(out.generation, in.generation);
  EXPECT_EQ(out.disk_id, in.disk_id);
  EXPECT_EQ(out.disk_name, "vm1");
  EXPECT_EQ(out.software_version, "0.2.0");
}

TEST(ReplWire, HelloRejectsShortFixedPart) {
  const Bytes p = EncodeHello(ExampleHello());
  Hello out;
  const Status st = DecodeHello(p.data(), 12, &out);
  EXPECT_EQ(st.code(), Status::Code::kProtocolError);
  EXPECT_EQ(st.message(), "HELLO: payload of 12 bytes is shorter than its fixed part (40)");
}

TEST(ReplWire, HelloRejectsStringPastEnd) {
  Bytes p = EncodeHello(ExampleHello());
  StoreLe16(p.data() + 40, 4);  // "vm1" claims 4 bytes: the name eats the version's count
  Hello out;
  EXPECT_FALSE(DecodeHello(p.data(), p.size(), &out).ok());
  StoreLe16(p.data() + 40, 100);
  EXPECT_EQ(DecodeHello(p.data(), p.size(), &out).message(),
            "HELLO: disk name of 100 bytes at offset 42 runs past the end of the payload (52)");
}

TEST(ReplWire, HelloRejectsStringOverLimit) {
  Bytes p = EncodeHello(ExampleHello());
  p.resize(40);  // the fixed part, then a name of 1025 bytes and an empty version
  p.push_back(0x01);
  p.push_back(0x04);
  p.insert(p.end(), 1025, 'x');
  p.push_back(0);
  p.push_back(0);
  Hello out;
  EXPECT_EQ(DecodeHello(p.data(), p.size(), &out).message(),
            "HELLO: disk name of 1025 bytes is over the limit (1024)");
}

TEST(ReplWire, HelloRejectsNonzeroReserved) {
  Bytes p = EncodeHello(ExampleHello());
  p[4] = 1;
  Hello out;
  EXPECT_FALSE(DecodeHello(p.data(), p.size(), &out).ok());
}

TEST(ReplWire, HelloRejectsTrailingBytes) {
  Bytes p = EncodeHello(ExampleHello());
  p.push_back(0);
  Hello out;
  EXPECT_EQ(DecodeHello(p.data(), p.size(), &out).message(),
            "HELLO: 1 bytes left over after the message ends at offset 52");
}

TEST(ReplWire, HelloOfAnotherVersionDecodesItsVersionOnly) {
  Bytes p = Hex({0x02, 0, 0, 0, 0xde, 0xad});  // version 2, a layout this code cannot know
  Hello out;
  ASSERT_TRUE(DecodeHello(p.data(), p.size(), &out).ok());
  EXPECT_EQ(out.version, 2u);
  EXPECT_EQ(out.disk_name, "");
  EXPECT_FALSE(DecodeHello(p.data(), 3, &out).ok());
}

TEST(ReplWire, EncoderCutsOverlongStringAtCharacterBoundary) {
  // 1023 ASCII bytes then a 2-byte character straddling the limit: cut before it.
  Error in{.code = ErrorCode::kIoError, .message = std::string(1023, 'a') + "\xc3\xa9" + "zz"};
  const Bytes p = EncodeError(in);
  Error out;
  ASSERT_TRUE(DecodeError(p.data(), p.size(), &out).ok());
  EXPECT_EQ(out.message, std::string(1023, 'a'));
  in.message = std::string(2000, 'b');
  const Bytes q = EncodeError(in);
  ASSERT_TRUE(DecodeError(q.data(), q.size(), &out).ok());
  EXPECT_EQ(out.message, std::string(kMaxStringBytes, 'b'));
}

// ---- HELLO_REPLY -------------------------------------------------------------------------

TEST(ReplWire, HelloReplyRoundTrip) {
  const HelloReply in{.status = ErrorCode::kSizeMismatch,
                      .state = ReplicaState::kResync,
                      .durable_through = 41,
                      .sync_cursor = 3 * kChunkBytes,
                      .generation = 2,
                      .disk_id = ExampleDiskId(),
                      .message = "replica is 2 GiB"};
  const Bytes p = EncodeHelloReply(in);
  EXPECT_EQ(p.size(), 48u + 2 + in.message.size());
  HelloReply out;
  ASSERT_TRUE(DecodeHelloReply(p.data(), p.size(), &out).ok());
  EXPECT_EQ(out.status, in.status);
  EXPECT_EQ(out.state, in.state);
  EXPECT_EQ(out.durable_through, 41u);
  EXPECT_EQ(out.sync_cursor, 3 * kChunkBytes);
  EXPECT_EQ(out.generation, 2u);
  EXPECT_EQ(out.disk_id, in.disk_id);
  EXPECT_EQ(out.message, in.message);
}

TEST(ReplWire, HelloReplyRejectsUnknownStatus) {
  Bytes p = EncodeHelloReply(HelloReply{});
  StoreLe32(p.data(), 13);
  HelloReply out;
  EXPECT_EQ(DecodeHelloReply(p.data(), p.size(), &out).message(), "HELLO_REPLY: unknown status 13");
}

TEST(ReplWire, HelloReplyRejectsUnknownState) {
  Bytes p = EncodeHelloReply(HelloReply{});
  StoreLe32(p.data() + 4, 5);
  HelloReply out;
  EXPECT_EQ(DecodeHelloReply(p.data(), p.size(), &out).message(), "HELLO_REPLY: unknown replica state 5");
}

TEST(ReplWire, HelloReplyCarriesChangedStateWithItsReason) {
  const HelloReply in{.state = ReplicaState::kChanged, .message = "replica.img changed"};
  const Bytes p = EncodeHelloReply(in);
  HelloReply out;
  ASSERT_TRUE(DecodeHelloReply(p.data(), p.size(), &out).ok());
  EXPECT_EQ(out.state, ReplicaState::kChanged);
  EXPECT_EQ(out.message, "replica.img changed");
}

TEST(ReplWire, HelloReplyRejectsTrailingBytes) {
  Bytes p = EncodeHelloReply(HelloReply{.message = "m"});
  p.push_back('x');
  HelloReply out;
  EXPECT_FALSE(DecodeHelloReply(p.data(), p.size(), &out).ok());
}

TEST(ReplWire, DecoderLeavesMessageUnchangedOnError) {
  Bytes p = EncodeHelloReply(HelloReply{.durable_through = 9, .message = "m"});
  p.push_back('x');
  HelloReply out{.durable_through = 1, .message = "before"};
  EXPECT_FALSE(DecodeHelloReply(p.data(), p.size(), &out).ok());
  EXPECT_EQ(out.durable_through, 1u);
  EXPECT_EQ(out.message, "before");
}

// ---- START -------------------------------------------------------------------------------

TEST(ReplWire, StartRoundTrip) {
  for (StartMode mode : {StartMode::kDelta, StartMode::kInitial, StartMode::kInitialResume,
                         StartMode::kResync, StartMode::kResyncResume}) {
    const bool resumes = mode == StartMode::kInitialResume || mode == StartMode::kResyncResume;
    const Start in{.mode = mode, .first_seq = 5, .sync_cursor = resumes ? kChunkBytes : 0};
    const Bytes p = EncodeStart(in);
    ASSERT_EQ(p.size(), 24u);
    Start out;
    ASSERT_TRUE(DecodeStart(p.data(), p.size(), &out).ok()) << StartModeName(mode);
    EXPECT_EQ(out.mode, mode);
    EXPECT_EQ(out.first_seq, 5u);
    EXPECT_EQ(out.sync_cursor, in.sync_cursor);
  }
}

TEST(ReplWire, StartRejectsUnknownMode) {
  for (uint32_t mode : {0u, 6u}) {
    Bytes p = EncodeStart(Start{});
    StoreLe32(p.data(), mode);
    Start out;
    EXPECT_FALSE(DecodeStart(p.data(), p.size(), &out).ok()) << mode;
  }
}

TEST(ReplWire, StartRejectsNonzeroReserved) {
  Bytes p = EncodeStart(Start{});
  p[7] = 0x80;
  Start out;
  EXPECT_FALSE(DecodeStart(p.data(), p.size(), &out).ok());
}

TEST(ReplWire, StartRejectsCursorInModeThatDoesNotResume) {
  const Bytes p = EncodeStart(Start{.mode = StartMode::kResync, .sync_cursor = kChunkBytes});
  Start out;
  EXPECT_EQ(DecodeStart(p.data(), p.size(), &out).message(),
            "START (resync): sync cursor 1048576, expected 0 in a mode that does not resume");
}

TEST(ReplWire, StartRejectsTrailingBytes) {
  Bytes p = EncodeStart(Start{});
  p.push_back(0);
  Start out;
  EXPECT_EQ(DecodeStart(p.data(), p.size(), &out).message(),
            "START: 1 bytes left over after the message ends at offset 24");
}

// ---- ACK ---------------------------------------------------------------------------------

TEST(ReplWire, AckRoundTrip) {
  const Ack in{.batch = 9, .durable_through = 39, .sync_cursor = 0, .state = ReplicaState::kInSync};
  const Bytes p = EncodeAck(in);
  ASSERT_EQ(p.size(), 32u);
  Ack out;
  ASSERT_TRUE(DecodeAck(p.data(), p.size(), &out).ok());
  EXPECT_EQ(out.batch, 9u);
  EXPECT_EQ(out.durable_through, 39u);
  EXPECT_EQ(out.sync_cursor, 0u);
  EXPECT_EQ(out.state, ReplicaState::kInSync);
}

TEST(ReplWire, AckRejectsUnknownState) {
  Bytes p = EncodeAck(Ack{});
  StoreLe32(p.data() + 24, 7);
  Ack out;
  EXPECT_FALSE(DecodeAck(p.data(), p.size(), &out).ok());
}

TEST(ReplWire, AckRejectsNonzeroReserved) {
  Bytes p = EncodeAck(Ack{});
  StoreLe32(p.data() + 28, 1);
  Ack out;
  EXPECT_EQ(DecodeAck(p.data(), p.size(), &out).message(),
            "ACK: reserved field at offset 28 is 1, expected 0");
}

TEST(ReplWire, AckRejectsTrailingBytes) {
  Bytes p = EncodeAck(Ack{});
  p.resize(40);
  Ack out;
  EXPECT_FALSE(DecodeAck(p.data(), p.size(), &out).ok());
}

// ---- HASHES, VERIFY_HASHES ---------------------------------------------------------------

TEST(ReplWire, HashesRoundTripDiffering) {
  const Hashes in{.chunk_offset = 3 * kChunkBytes,
                  .chunk_length = kChunkBytes,
                  .block_hashes = SomeHashes(256)};
  const Bytes p = EncodeHashes(in);
  ASSERT_EQ(p.size(), 24u + 256 * 8);
  Hashes out;
  ASSERT_TRUE(DecodeHashes(p.data(), p.size(), &out).ok());
  EXPECT_EQ(out.chunk_offset, in.chunk_offset);
  EXPECT_EQ(out.chunk_length, in.chunk_length);
  EXPECT_FALSE(out.equal);
  EXPECT_EQ(out.block_hashes, in.block_hashes);
}

TEST(ReplWire, HashesRoundTripEqual) {
  const Bytes p = EncodeHashes(EqualHashes(kChunkBytes));
  ASSERT_EQ(p.size(), 24u);
  EXPECT_EQ(LoadLe32(p.data() + 12), 0u);  // 0: equal
  Hashes out;
  ASSERT_TRUE(DecodeHashes(p.data(), p.size(), &out).ok());
  EXPECT_TRUE(out.equal);
  EXPECT_TRUE(out.block_hashes.empty());
}

TEST(ReplWire, HashesOfShortLastChunk) {
  // A chunk of 5000 bytes has two blocks, the second one 904 bytes.
  const Hashes in{.chunk_offset = kChunkBytes, .chunk_length = 5000, .block_hashes = SomeHashes(2)};
  const Bytes p = EncodeHashes(in);
  Hashes out;
  ASSERT_TRUE(DecodeHashes(p.data(), p.size(), &out).ok());
  EXPECT_EQ(out.block_hashes, in.block_hashes);
}

TEST(ReplWire, HashesRejectsWrongCount) {
  Bytes p = EncodeHashes(Hashes{.chunk_length = kChunkBytes, .block_hashes = SomeHashes(256)});
  StoreLe32(p.data() + 16, 255);
  Hashes out;
  EXPECT_EQ(DecodeHashes(p.data(), p.size(), &out).message(),
            "HASHES: 255 block hashes for a differing chunk of 1048576 bytes, expected 256");
  // A huge count is rejected from the header, before anything is reserved.
  StoreLe32(p.data() + 16, 0xffffffffu);
  EXPECT_FALSE(DecodeHashes(p.data(), p.size(), &out).ok());
}

TEST(ReplWire, HashesRejectsHashesWhenEqual) {
  Bytes p = EncodeHashes(Hashes{.chunk_length = 4096, .block_hashes = SomeHashes(1)});
  StoreLe32(p.data() + 12, 0);  // "equal", yet one hash follows
  Hashes out;
  EXPECT_FALSE(DecodeHashes(p.data(), p.size(), &out).ok());
}

TEST(ReplWire, HashesRejectsCountPastPayload) {
  Bytes p = EncodeHashes(Hashes{.chunk_length = kChunkBytes, .block_hashes = SomeHashes(256)});
  p.resize(24 + 10 * 8);  // the count says 256, the payload holds 10
  Hashes out;
  EXPECT_EQ(DecodeHashes(p.data(), p.size(), &out).message(),
            "HASHES: 256 block hashes need 2072 bytes, the payload has 104");
}

TEST(ReplWire, HashesRejectsBadChunkLength) {
  for (uint32_t length : {0u, static_cast<uint32_t>(kChunkBytes) + 1}) {
    Bytes p = EncodeHashes(EqualHashes(4096));
    StoreLe32(p.data() + 8, length);
    Hashes out;
    EXPECT_FALSE(DecodeHashes(p.data(), p.size(), &out).ok()) << length;
  }
}

TEST(ReplWire, HashesRejectsUnalignedOffset) {
  Bytes p = EncodeHashes(EqualHashes(4096));
  StoreLe64(p.data(), 4096);
  Hashes out;
  EXPECT_FALSE(DecodeHashes(p.data(), p.size(), &out).ok());
}

TEST(ReplWire, HashesRejectsUnknownComparison) {
  Bytes p = EncodeHashes(EqualHashes(4096));
  StoreLe32(p.data() + 12, 2);
  Hashes out;
  EXPECT_FALSE(DecodeHashes(p.data(), p.size(), &out).ok());
}

TEST(ReplWire, HashesRejectsNonzeroReserved) {
  Bytes p = EncodeHashes(EqualHashes(4096));
  StoreLe32(p.data() + 20, 1);
  Hashes out;
  EXPECT_FALSE(DecodeHashes(p.data(), p.size(), &out).ok());
}

TEST(ReplWire, HashesRejectsTrailingBytes) {
  Bytes p = EncodeHashes(Hashes{.chunk_length = 4096, .block_hashes = SomeHashes(1)});
  p.insert(p.end(), 8, 0);
  Hashes out;
  EXPECT_FALSE(DecodeHashes(p.data(), p.size(), &out).ok());
}

TEST(ReplWire, VerifyHashesRoundTrip) {
  const VerifyHashes in{
      .chunk_offset = 7 * kChunkBytes, .chunk_length = 8192 + 1, .block_hashes = SomeHashes(3)};
  const Bytes p = EncodeVerifyHashes(in);
  ASSERT_EQ(p.size(), 16u + 3 * 8);
  VerifyHashes out;
  ASSERT_TRUE(DecodeVerifyHashes(p.data(), p.size(), &out).ok());
  EXPECT_EQ(out.chunk_offset, in.chunk_offset);
  EXPECT_EQ(out.chunk_length, in.chunk_length);
  EXPECT_EQ(out.block_hashes, in.block_hashes);
}

TEST(ReplWire, VerifyHashesRejectsWrongCount) {
  Bytes p = EncodeVerifyHashes(VerifyHashes{.chunk_length = 8192, .block_hashes = SomeHashes(2)});
  StoreLe32(p.data() + 12, 1);
  VerifyHashes out;
  EXPECT_FALSE(DecodeVerifyHashes(p.data(), p.size(), &out).ok());
  StoreLe32(p.data() + 12, 3);
  EXPECT_FALSE(DecodeVerifyHashes(p.data(), p.size(), &out).ok());
}

// ---- ERROR -------------------------------------------------------------------------------

TEST(ReplWire, ErrorRoundTrip) {
  const Bytes p = EncodeError(Error{.code = ErrorCode::kNoSpace, .message = "ENOSPC"});
  EXPECT_EQ(p, Hex({0x06, 0, 0, 0, 0x06, 0x00, 'E', 'N', 'O', 'S', 'P', 'C'}));
  Error out;
  ASSERT_TRUE(DecodeError(p.data(), p.size(), &out).ok());
  EXPECT_EQ(out.code, ErrorCode::kNoSpace);
  EXPECT_EQ(out.message, "ENOSPC");
}

TEST(ReplWire, ErrorUnknownCodeDecodes) {
  const Bytes p = Hex({99, 0, 0, 0, 0, 0});
  Error out;
  ASSERT_TRUE(DecodeError(p.data(), p.size(), &out).ok());
  EXPECT_EQ(static_cast<uint32_t>(out.code), 99u);
  EXPECT_FALSE(IsFatal(out.code));  // unknown codes are transient
  EXPECT_STREQ(ErrorCodeName(out.code), "?");
}

TEST(ReplWire, ErrorRejectsCodeZero) {
  const Bytes p = EncodeError(Error{.code = ErrorCode::kOk, .message = ""});
  Error out;
  EXPECT_FALSE(DecodeError(p.data(), p.size(), &out).ok());
}

TEST(ReplWire, ErrorRejectsMessagePastEnd) {
  Bytes p = EncodeError(Error{.code = ErrorCode::kBusy, .message = "busy"});
  StoreLe16(p.data() + 4, 5);
  Error out;
  EXPECT_FALSE(DecodeError(p.data(), p.size(), &out).ok());
}

// ---- enums -------------------------------------------------------------------------------

TEST(ReplWire, IsFatalFollowsSpecTable) {
  EXPECT_TRUE(IsFatal(ErrorCode::kUnknownDisk));
  EXPECT_TRUE(IsFatal(ErrorCode::kIdentityNotAllowed));
  EXPECT_TRUE(IsFatal(ErrorCode::kSizeMismatch));
  EXPECT_TRUE(IsFatal(ErrorCode::kGenerationMismatch));
  EXPECT_TRUE(IsFatal(ErrorCode::kDiskIdMismatch));
  EXPECT_FALSE(IsFatal(ErrorCode::kNoSpace));
  EXPECT_FALSE(IsFatal(ErrorCode::kBusy));
  EXPECT_TRUE(IsFatal(ErrorCode::kVersion));
  EXPECT_FALSE(IsFatal(ErrorCode::kIoError));
  EXPECT_FALSE(IsFatal(ErrorCode::kBadMessage));
  EXPECT_FALSE(IsFatal(ErrorCode::kBadStream));
  EXPECT_FALSE(IsFatal(ErrorCode::kShutdown));
  EXPECT_FALSE(IsFatal(ErrorCode::kOk));
}

TEST(ReplWire, NamesFollowSpec) {
  const char* msg_types[] = {"HELLO",  "HELLO_REPLY",   "START", "BATCH", "ACK",
                             "HASHES", "VERIFY_HASHES", "ERROR", "PING",  "PONG"};
  for (uint16_t v = 1; v <= 10; ++v) {
    EXPECT_STREQ(MsgTypeName(static_cast<MsgType>(v)), msg_types[v - 1]);
  }
  const char* codes[] = {"ok",
                         "unknown-disk",
                         "identity-not-allowed",
                         "size-mismatch",
                         "generation-mismatch",
                         "disk-id-mismatch",
                         "no-space",
                         "busy",
                         "version",
                         "io-error",
                         "bad-message",
                         "bad-stream",
                         "shutdown"};
  for (uint32_t v = 0; v <= 12; ++v) {
    EXPECT_STREQ(ErrorCodeName(static_cast<ErrorCode>(v)), codes[v]);
  }
  const char* states[] = {"new", "initial-copy", "resync", "in-sync", "changed"};
  for (uint32_t v = 0; v <= 4; ++v) {
    EXPECT_STREQ(ReplicaStateName(static_cast<ReplicaState>(v)), states[v]);
  }
  const char* modes[] = {"delta", "initial", "initial-resume", "resync", "resync-resume"};
  for (uint32_t v = 1; v <= 5; ++v) {
    EXPECT_STREQ(StartModeName(static_cast<StartMode>(v)), modes[v - 1]);
  }
  const char* items[] = {"WRITE",       "ZERO",         "TRIM",     "SYNC_WRITE",    "SYNC_ZERO",
                         "SYNC_CURSOR", "HASH_REQUEST", "SYNC_END", "VERIFY_REQUEST"};
  for (uint8_t v = 1; v <= 9; ++v) {
    EXPECT_STREQ(ItemTypeName(static_cast<ItemType>(v)), items[v - 1]);
  }
  // Values a newer peer might send have no name.
  EXPECT_STREQ(MsgTypeName(static_cast<MsgType>(0)), "?");
  EXPECT_STREQ(MsgTypeName(static_cast<MsgType>(11)), "?");
  EXPECT_STREQ(ReplicaStateName(static_cast<ReplicaState>(5)), "?");
  EXPECT_STREQ(StartModeName(static_cast<StartMode>(0)), "?");
  EXPECT_STREQ(ItemTypeName(static_cast<ItemType>(10)), "?");
}

// ---- BATCH -------------------------------------------------------------------------------

// A batch holding one item of every type, valid on a disk of kDiskBytes.
BatchBuilder EveryItemType(uint64_t batch, const Bytes& data) {
  BatchBuilder b;
  b.Reset(batch);
  const uint8_t hash[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const uint32_t n = static_cast<uint32_t>(data.size());
  b.Add({.type = ItemType::kWrite,
         .flags = kItemFlagFua,
         .data_bytes = n,
         .seq = 10,
         .offset = 0,
         .length = n,
         .timestamp_ns = 123},
        data.data());
  b.Add({.type = ItemType::kZero, .seq = 11, .offset = 4096, .length = 8192}, nullptr);
  b.Add({.type = ItemType::kTrim, .seq = 12, .offset = kDiskBytes - 512, .length = 512}, nullptr);
  b.Add({.type = ItemType::kSyncWrite,
         .data_bytes = n,
         .seq = 13,
         .offset = kChunkBytes,
         .length = n},
        data.data());
  b.Add({.type = ItemType::kSyncZero, .seq = 13, .offset = kChunkBytes + n, .length = 4096},
        nullptr);
  b.Add({.type = ItemType::kSyncCursor, .offset = 2 * kChunkBytes}, nullptr);
  b.Add({.type = ItemType::kHashRequest,
         .data_bytes = 8,
         .seq = 14,
         .offset = 2 * kChunkBytes,
         .length = kChunkBytes},
        hash);
  b.Add({.type = ItemType::kSyncEnd, .seq = 15}, nullptr);
  b.Add({.type = ItemType::kVerifyRequest, .offset = 7 * kChunkBytes, .length = kChunkBytes},
        nullptr);
  return b;
}

void ExpectEveryItemType(const Bytes& raw, uint32_t count, const Bytes& data) {
  ItemReader reader(raw.data(), raw.size(), count, kDiskBytes);
  std::vector<ItemHeader> items;
  std::vector<const uint8_t*> datas;
  ItemHeader h;
  const uint8_t* d;
  while (reader.Next(&h, &d)) {
    items.push_back(h);
    datas.push_back(d);
  }
  ASSERT_TRUE(reader.status().ok()) << reader.status().ToString();
  ASSERT_EQ(items.size(), 9u);
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(items[i].type, static_cast<ItemType>(i + 1)) << i;
  }
  EXPECT_EQ(items[0].flags, kItemFlagFua);
  EXPECT_EQ(items[0].seq, 10u);
  EXPECT_EQ(items[0].timestamp_ns, 123u);
  EXPECT_EQ(Bytes(datas[0], datas[0] + data.size()), data);
  EXPECT_EQ(items[2].offset, kDiskBytes - 512);
  EXPECT_EQ(Bytes(datas[3], datas[3] + data.size()), data);
  EXPECT_EQ(items[5].offset, 2 * kChunkBytes);
  EXPECT_EQ(LoadLe64(datas[6]), 0x0807060504030201ull);
  EXPECT_EQ(items[7].seq, 15u);
}

TEST(ReplWire, BatchRoundTripRaw) {
  const Bytes data = RandomBytes(3 * 4096, 1);
  BatchBuilder b = EveryItemType(4, data);
  EXPECT_EQ(b.item_count(), 9u);
  EXPECT_EQ(b.raw_bytes(), 9 * kItemHeaderBytes + 2 * data.size() + 8);
  auto p = b.Finish(15, 0);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->size(), kBatchHeaderBytes + b.raw_bytes());
  BatchHeader h;
  Bytes raw;
  ASSERT_TRUE(DecodeBatch(p->data(), p->size(), &h, &raw).ok());
  EXPECT_EQ(h.batch, 4u);
  EXPECT_EQ(h.through_seq, 15u);
  EXPECT_EQ(h.codec, 0u);
  EXPECT_EQ(h.raw_bytes, b.raw_bytes());
  EXPECT_EQ(h.item_count, 9u);
  ExpectEveryItemType(raw, h.item_count, data);
}

TEST(ReplWire, BatchRoundTripCompressed) {
  const Bytes data(64 * 1024, 0x11);
  BatchBuilder b = EveryItemType(5, data);
  auto p = b.Finish(15, 3);
  ASSERT_TRUE(p.ok());
  EXPECT_LT(p->size(), b.raw_bytes() / 10);
  BatchHeader h;
  Bytes raw = RandomBytes(100, 2);  // reused buffer with old content
  ASSERT_TRUE(DecodeBatch(p->data(), p->size(), &h, &raw).ok());
  EXPECT_EQ(h.codec, 1u);
  EXPECT_EQ(h.raw_bytes, b.raw_bytes());
  ExpectEveryItemType(raw, h.item_count, data);
}

TEST(ReplWire, BatchItemsViewPointsIntoAnUncompressedPayload) {
  const Bytes data = RandomBytes(2 * 4096, 7);
  BatchBuilder b = EveryItemType(6, data);
  auto p = b.Finish(15, 0);
  ASSERT_TRUE(p.ok());
  BatchHeader h;
  Bytes raw = RandomBytes(100, 8);
  std::span<const uint8_t> items;
  ASSERT_TRUE(DecodeBatch(p->data(), p->size(), &h, &raw, &items).ok());
  EXPECT_TRUE(raw.empty());
  EXPECT_EQ(items.data(), p->data() + kBatchHeaderBytes);  // not copied
  EXPECT_EQ(items.size(), b.raw_bytes());
  ExpectEveryItemType(Bytes(items.begin(), items.end()), h.item_count, data);
}

TEST(ReplWire, BatchItemsViewOfACompressedPayloadIsTheDecodedBuffer) {
  const Bytes data(64 * 1024, 0x22);
  BatchBuilder b = EveryItemType(7, data);
  auto p = b.Finish(15, 3);
  ASSERT_TRUE(p.ok());
  BatchHeader h;
  Bytes raw;
  std::span<const uint8_t> items;
  ASSERT_TRUE(DecodeBatch(p->data(), p->size(), &h, &raw, &items).ok());
  EXPECT_EQ(h.codec, 1u);
  EXPECT_EQ(items.data(), raw.data());
  EXPECT_EQ(items.size(), raw.size());
  ExpectEveryItemType(raw, h.item_count, data);
}

TEST(ReplWire, BatchIncompressibleDataSentRaw) {
  const Bytes data = RandomBytes(256 * 1024, 3);
  BatchBuilder b;
  b.Reset(1);
  b.Add({.type = ItemType::kWrite, .data_bytes = 256 * 1024, .seq = 1, .length = 256 * 1024},
        data.data());
  auto p = b.Finish(1, 19);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(LoadLe32(p->data() + 16), 0u);  // codec none
  EXPECT_EQ(p->size(), kBatchHeaderBytes + b.raw_bytes());
  BatchHeader h;
  Bytes raw;
  ASSERT_TRUE(DecodeBatch(p->data(), p->size(), &h, &raw).ok());
  EXPECT_EQ(Bytes(raw.begin() + kItemHeaderBytes, raw.end()), data);
}

TEST(ReplWire, BatchLevelZeroOrBelowSentRaw) {
  for (int level : {0, -1}) {
    BatchBuilder b = EveryItemType(1, Bytes(64 * 1024, 0));
    auto p = b.Finish(1, level);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(LoadLe32(p->data() + 16), 0u) << level;
    EXPECT_EQ(p->size(), kBatchHeaderBytes + b.raw_bytes());
  }
}

TEST(ReplWire, BatchCodecWorksFromSeveralThreadsAtOnce) {
  // The zstd contexts are per thread: concurrent sessions do not share one.
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &failures] {
      for (int i = 0; i < 20; ++i) {
        const Bytes data(32 * 1024, static_cast<uint8_t>(t * 20 + i));
        BatchBuilder b = EveryItemType(i + 1, data);
        auto p = b.Finish(15, 1 + (i % 3));
        BatchHeader h;
        Bytes raw;
        if (!p.ok() || !DecodeBatch(p->data(), p->size(), &h, &raw).ok() || h.codec != 1 ||
            !ReadItems(raw, h.item_count, kDiskBytes).ok() ||
            Bytes(raw.begin() + kItemHeaderBytes, raw.begin() + kItemHeaderBytes + data.size()) !=
                data) {
          ++failures[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

TEST(ReplWire, BatchEmptyRoundTrip) {
  BatchBuilder b;
  b.Reset(2);
  EXPECT_TRUE(b.empty());
  auto p = b.Finish(0, 3);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->size(), kBatchHeaderBytes);
  BatchHeader h;
  Bytes raw(10);
  ASSERT_TRUE(DecodeBatch(p->data(), p->size(), &h, &raw).ok());
  EXPECT_TRUE(raw.empty());
  EXPECT_TRUE(ReadItems(raw, 0, kDiskBytes).ok());
}

TEST(ReplWire, BatchBuilderResetClears) {
  BatchBuilder b = EveryItemType(1, Bytes(4096, 1));
  b.Reset(2);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.raw_bytes(), 0u);
  auto p = b.Finish(0, 0);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(LoadLe64(p->data()), 2u);
}

TEST(ReplWire, BatchFitsUpToRawLimit) {
  BatchBuilder b;
  b.Reset(1);
  const uint32_t biggest = kMaxBatchRawBytes - kItemHeaderBytes;
  EXPECT_TRUE(b.Fits(biggest));
  EXPECT_FALSE(b.Fits(biggest + 1));
  EXPECT_TRUE(b.Fits(32u << 20));  // the journal's largest record
  b.Add({.type = ItemType::kZero, .length = 1}, nullptr);
  EXPECT_FALSE(b.Fits(biggest - kItemHeaderBytes + 1));
  EXPECT_TRUE(b.Fits(biggest - kItemHeaderBytes));
}

TEST(ReplWire, BatchFitsUpToItemLimit) {
  BatchBuilder b;
  b.Reset(1);
  for (uint32_t i = 0; i < kMaxBatchItems; ++i) {
    ASSERT_TRUE(b.Fits(0));
    b.Add({.type = ItemType::kSyncEnd}, nullptr);
  }
  EXPECT_FALSE(b.Fits(0));
  auto p = b.Finish(0, 1);
  ASSERT_TRUE(p.ok());
  BatchHeader h;
  Bytes raw;
  ASSERT_TRUE(DecodeBatch(p->data(), p->size(), &h, &raw).ok());
  EXPECT_EQ(h.item_count, kMaxBatchItems);
  EXPECT_TRUE(ReadItems(raw, h.item_count, kDiskBytes).ok());
}

TEST(ReplWire, BatchRejectsShortHeader) {
  const Bytes p = BatchHeaderBytes(1, 1, 0, 0, 0);
  BatchHeader h;
  Bytes raw;
  EXPECT_EQ(DecodeBatch(p.data(), 31, &h, &raw).message(),
            "BATCH: payload of 31 bytes is shorter than its fixed part (32)");
}

TEST(ReplWire, BatchRejectsUnknownCodec) {
  const Bytes p = BatchHeaderBytes(1, 1, 2, 0, 0);
  BatchHeader h;
  Bytes raw;
  EXPECT_EQ(DecodeBatch(p.data(), p.size(), &h, &raw).message(), "BATCH 1: unknown codec 2");
}

TEST(ReplWire, BatchRejectsNonzeroReserved) {
  const Bytes p = BatchHeaderBytes(1, 1, 0, 0, 0, 1);
  BatchHeader h;
  Bytes raw;
  EXPECT_FALSE(DecodeBatch(p.data(), p.size(), &h, &raw).ok());
}

TEST(ReplWire, BatchRejectsRawBytesOverLimit) {
  // Codec 0 with the bytes all there, and codec 1: rejected from the header either way.
  const Bytes items(kMaxBatchRawBytes + 1, 0);
  const Bytes p = Concat(BatchHeaderBytes(1, 1, 0, kMaxBatchRawBytes + 1, 1), items);
  BatchHeader h;
  Bytes raw;
  EXPECT_EQ(DecodeBatch(p.data(), p.size(), &h, &raw).message(),
            "BATCH 1: raw bytes 35651585 is over the limit (35651584)");
  const Bytes z = Concat(BatchHeaderBytes(1, 1, 1, 0xffffffffu, 1), Zstd(Bytes(100, 0)));
  EXPECT_FALSE(DecodeBatch(z.data(), z.size(), &h, &raw).ok());
  EXPECT_TRUE(raw.empty());  // nothing was allocated for it
}

TEST(ReplWire, BatchRejectsItemCountOverLimit) {
  const Bytes p = BatchHeaderBytes(1, 1, 0, 0, kMaxBatchItems + 1);
  BatchHeader h;
  Bytes raw;
  EXPECT_FALSE(DecodeBatch(p.data(), p.size(), &h, &raw).ok());
}

TEST(ReplWire, BatchRejectsMoreItemsThanRawBytesHold) {
  const Bytes p = Concat(BatchHeaderBytes(1, 1, 0, 79, 2), Bytes(79, 0));
  BatchHeader h;
  Bytes raw;
  EXPECT_EQ(DecodeBatch(p.data(), p.size(), &h, &raw).message(),
            "BATCH 1: 2 items do not fit in raw bytes 79");
}

TEST(ReplWire, BatchRejectsRawSizeMismatch) {
  const Bytes p = Concat(BatchHeaderBytes(1, 1, 0, 41, 1), Bytes(40, 0));
  BatchHeader h;
  Bytes raw;
  EXPECT_EQ(DecodeBatch(p.data(), p.size(), &h, &raw).message(),
            "BATCH 1: 40 bytes of items, the header says raw bytes 41");
}

TEST(ReplWire, BatchRejectsZstdFrameOfWrongSize) {
  const Bytes items(400, 7);
  BatchHeader h;
  Bytes raw;
  for (uint32_t claimed : {399u, 401u}) {
    const Bytes p = Concat(BatchHeaderBytes(1, 1, 1, claimed, 0), Zstd(items));
    EXPECT_EQ(DecodeBatch(p.data(), p.size(), &h, &raw).message(),
              "BATCH 1: zstd frame holds 400 bytes, the header says raw bytes " +
                  std::to_string(claimed));
  }
  const Bytes ok = Concat(BatchHeaderBytes(1, 1, 1, 400, 0), Zstd(items));
  ASSERT_TRUE(DecodeBatch(ok.data(), ok.size(), &h, &raw).ok());
  EXPECT_EQ(raw, items);
}

TEST(ReplWire, BatchRejectsUnsizedZstdFrameDecodingToAnotherSize) {
  // A frame that does not declare its size is decoded into raw bytes at most.
  const Bytes items(400, 7);
  BatchHeader h;
  Bytes raw;
  const Bytes larger = Concat(BatchHeaderBytes(1, 1, 1, 399, 0), Zstd(items, false));
  EXPECT_FALSE(DecodeBatch(larger.data(), larger.size(), &h, &raw).ok());
  const Bytes smaller = Concat(BatchHeaderBytes(1, 1, 1, 401, 0), Zstd(items, false));
  EXPECT_EQ(DecodeBatch(smaller.data(), smaller.size(), &h, &raw).message(),
            "BATCH 1: zstd frame decodes to 400 bytes, the header says raw bytes 401");
  const Bytes exact = Concat(BatchHeaderBytes(1, 1, 1, 400, 0), Zstd(items, false));
  ASSERT_TRUE(DecodeBatch(exact.data(), exact.size(), &h, &raw).ok());
  EXPECT_EQ(raw, items);
}

TEST(ReplWire, BatchRejectsBytesAfterZstdFrame) {
  const Bytes items(400, 7);
  // A second frame, then a lone byte.
  const Bytes two = Concat(Concat(BatchHeaderBytes(1, 1, 1, 400, 0), Zstd(items)), Zstd({}));
  BatchHeader h;
  Bytes raw;
  EXPECT_FALSE(DecodeBatch(two.data(), two.size(), &h, &raw).ok());
  const Bytes tail = Concat(Concat(BatchHeaderBytes(1, 1, 1, 400, 0), Zstd(items)), {0});
  EXPECT_FALSE(DecodeBatch(tail.data(), tail.size(), &h, &raw).ok());
}

TEST(ReplWire, BatchRejectsGarbageAsZstdFrame) {
  const Bytes p = Concat(BatchHeaderBytes(1, 1, 1, 40, 1), RandomBytes(200, 4));
  BatchHeader h;
  Bytes raw;
  EXPECT_FALSE(DecodeBatch(p.data(), p.size(), &h, &raw).ok());
}

// ---- items -------------------------------------------------------------------------------

TEST(ReplWire, ItemReaderRejectsUnknownType) {
  for (uint8_t type : {0, 10, 255}) {
    RawItem it;
    it.type = type;
    EXPECT_FALSE(ReadOne(it).ok()) << int{type};
  }
}

TEST(ReplWire, ItemReaderRejectsNonzeroReservedByte) {
  RawItem it = Of(ItemType::kZero, 0, 4096);
  it.reserved = 1;
  EXPECT_EQ(ReadOne(it).message(), "BATCH item 0 (ZERO): reserved byte is 1, expected 0");
}

TEST(ReplWire, ItemReaderRejectsUnknownFlags) {
  RawItem it = Of(ItemType::kZero, 0, 4096);
  it.flags = kItemFlagFua;
  EXPECT_TRUE(ReadOne(it).ok());
  it.flags = 2;
  EXPECT_EQ(ReadOne(it).message(), "BATCH item 0 (ZERO): unknown flags 0x0002");
}

TEST(ReplWire, ItemReaderRejectsRangePastDisk) {
  EXPECT_TRUE(ReadOne(Write(4096, 4096), 8192).ok());
  EXPECT_EQ(ReadOne(Write(4096, 8192), 8192).message(),
            "BATCH item 0 (WRITE): range 4096+8192 ends past the disk (8192 bytes)");
  EXPECT_FALSE(ReadOne(Of(ItemType::kTrim, 8192, 1), 8192).ok());
  EXPECT_FALSE(ReadOne(Of(ItemType::kSyncZero, 0, 8193), 8192).ok());
}

TEST(ReplWire, ItemReaderRejectsOverflowingRange) {
  // offset + length wraps to 4096, which a naive check would accept on this disk.
  const uint64_t disk = 1ull << 62;
  const uint64_t offset = std::numeric_limits<uint64_t>::max() - 4095;
  EXPECT_FALSE(ReadOne(Of(ItemType::kZero, offset, 8192), disk).ok());
  EXPECT_FALSE(ReadOne(Of(ItemType::kTrim, 4096, std::numeric_limits<uint64_t>::max()), disk).ok());
}

TEST(ReplWire, ItemReaderRejectsEmptyRange) {
  for (ItemType t : {ItemType::kZero, ItemType::kTrim, ItemType::kSyncZero}) {
    EXPECT_FALSE(ReadOne(Of(t, 4096, 0)).ok()) << ItemTypeName(t);
  }
  EXPECT_EQ(ReadOne(Write(4096, 0)).message(), "BATCH item 0 (WRITE): empty range at 4096");
  RawItem sync = Write(4096, 0);
  sync.type = static_cast<uint8_t>(ItemType::kSyncWrite);
  EXPECT_FALSE(ReadOne(sync).ok());
}

TEST(ReplWire, ItemReaderRejectsWriteWithShortData) {
  RawItem it = Write(0, 8192);
  it.data_bytes = 4096;  // says less data than its length
  EXPECT_EQ(ReadOne(it).message(), "BATCH item 0 (WRITE): 4096 data bytes, expected 8192");
  it.type = static_cast<uint8_t>(ItemType::kSyncWrite);
  EXPECT_FALSE(ReadOne(it).ok());
}

TEST(ReplWire, ItemReaderRejectsDataPastEnd) {
  Bytes raw;
  AppendItem(&raw, Write(0, 8192), 8191);  // the header is right, the bytes are missing
  EXPECT_EQ(ReadItems(raw, 1, kDiskBytes).message(),
            "BATCH item 0 (WRITE): data of 8192 bytes runs past the end of the batch (8191 "
            "bytes left)");
}

TEST(ReplWire, ItemReaderRejectsDataOnItemsWithout) {
  for (ItemType t : {ItemType::kZero, ItemType::kTrim, ItemType::kSyncZero, ItemType::kSyncCursor,
                     ItemType::kSyncEnd, ItemType::kVerifyRequest}) {
    RawItem it =
        Of(t, 0, t == ItemType::kSyncCursor || t == ItemType::kSyncEnd ? 0 : kChunkBytes, 8);
    EXPECT_FALSE(ReadOne(it).ok()) << ItemTypeName(t);
  }
}

TEST(ReplWire, ItemReaderRejectsWriteOverBatchLimit) {
  // A huge length with data_bytes wrapped to match its low 32 bits.
  RawItem it = Write(0, (1ull << 32) + 16);
  it.data_bytes = 16;
  EXPECT_EQ(ReadOne(it, 1ull << 40).message(),
            "BATCH item 0 (WRITE): length 4294967312 is over the batch limit (35651584)");
}

TEST(ReplWire, ItemReaderRejectsHashRequestWithoutItsHash) {
  EXPECT_TRUE(ReadOne(Of(ItemType::kHashRequest, 0, kChunkBytes, 8)).ok());
  EXPECT_FALSE(ReadOne(Of(ItemType::kHashRequest, 0, kChunkBytes, 0)).ok());
  EXPECT_FALSE(ReadOne(Of(ItemType::kHashRequest, 0, kChunkBytes, 16)).ok());
}

TEST(ReplWire, ItemReaderRejectsUnalignedHashRequest) {
  EXPECT_EQ(ReadOne(Of(ItemType::kHashRequest, 4096, kChunkBytes, 8)).message(),
            "BATCH item 0 (HASH_REQUEST): range 4096+1048576 is not one chunk of the disk "
            "(8388608 bytes)");
  EXPECT_FALSE(ReadOne(Of(ItemType::kVerifyRequest, 4096, kChunkBytes)).ok());
}

TEST(ReplWire, ItemReaderRejectsPartialChunkRequest) {
  EXPECT_FALSE(ReadOne(Of(ItemType::kHashRequest, 0, 4096, 8)).ok());
  EXPECT_FALSE(ReadOne(Of(ItemType::kVerifyRequest, kChunkBytes, kChunkBytes - 1)).ok());
}

TEST(ReplWire, ItemReaderLastChunkShorter) {
  const uint64_t disk = 2 * kChunkBytes + kChunkBytes / 2;
  EXPECT_TRUE(ReadOne(Of(ItemType::kHashRequest, 2 * kChunkBytes, kChunkBytes / 2, 8), disk).ok());
  EXPECT_TRUE(ReadOne(Of(ItemType::kVerifyRequest, 2 * kChunkBytes, kChunkBytes / 2), disk).ok());
  EXPECT_FALSE(ReadOne(Of(ItemType::kVerifyRequest, 2 * kChunkBytes, kChunkBytes), disk).ok());
  EXPECT_EQ(ChunkLength(2 * kChunkBytes, disk), kChunkBytes / 2);
  EXPECT_EQ(ChunkLength(kChunkBytes, disk), kChunkBytes);
}

TEST(ReplWire, ItemReaderRejectsChunkRequestAtDiskEnd) {
  // offset == disk size: ChunkLength is 0, and an empty "chunk" is none.
  EXPECT_FALSE(ReadOne(Of(ItemType::kVerifyRequest, kDiskBytes, 0)).ok());
  EXPECT_FALSE(ReadOne(Of(ItemType::kHashRequest, kDiskBytes, 0, 8)).ok());
}

TEST(ReplWire, ItemReaderSyncCursorUpToDiskEnd) {
  EXPECT_TRUE(ReadOne(Of(ItemType::kSyncCursor, kDiskBytes, 0)).ok());
  EXPECT_FALSE(ReadOne(Of(ItemType::kSyncCursor, kDiskBytes + 1, 0)).ok());
  EXPECT_EQ(ReadOne(Of(ItemType::kSyncCursor, 0, 4096)).message(),
            "BATCH item 0 (SYNC_CURSOR): length 4096, expected 0");
}

TEST(ReplWire, ItemReaderRejectsTrailingBytes) {
  Bytes raw;
  AppendItem(&raw, Write(0, 4096));
  raw.push_back(0);
  EXPECT_EQ(ReadItems(raw, 1, kDiskBytes).message(),
            "BATCH: 1 bytes left over after the last of 1 items");
}

TEST(ReplWire, ItemReaderRejectsFewerItemsThanCount) {
  Bytes raw;
  AppendItem(&raw, Write(0, 4096));
  EXPECT_EQ(ReadItems(raw, 2, kDiskBytes).message(),
            "BATCH item 1: header of 40 bytes at raw offset 4136 runs past the end (0 bytes left)");
}

TEST(ReplWire, ItemReaderNamesTheFailingItem) {
  Bytes raw;
  AppendItem(&raw, Write(0, 4096));
  AppendItem(&raw, Of(ItemType::kZero, 0, 4096));
  AppendItem(&raw, Of(ItemType::kTrim, kDiskBytes, 4096));
  std::vector<ItemHeader> items;
  const Status st = ReadItems(raw, 3, kDiskBytes, &items);
  EXPECT_EQ(items.size(), 2u);
  EXPECT_EQ(st.message(),
            "BATCH item 2 (TRIM): range 8388608+4096 ends past the disk (8388608 bytes)");
}

TEST(ReplWire, ItemReaderStopsAfterAnError) {
  Bytes raw;
  AppendItem(&raw, Of(ItemType::kZero, 0, 0));
  AppendItem(&raw, Of(ItemType::kZero, 0, 4096));
  ItemReader reader(raw.data(), raw.size(), 2, kDiskBytes);
  ItemHeader h;
  const uint8_t* d;
  EXPECT_FALSE(reader.Next(&h, &d));
  const std::string first = reader.status().message();
  EXPECT_FALSE(reader.Next(&h, &d));
  EXPECT_EQ(reader.status().message(), first);
}

// ---- hashes ------------------------------------------------------------------------------

TEST(ReplWire, BlockHashIsXxh3Seed0) {
  const Bytes block = RandomBytes(4096, 5);
  EXPECT_EQ(BlockHash(block.data(), block.size()), XXH3_64bits_withSeed(block.data(), 4096, 0));
}

TEST(ReplWire, ChunkHashMatchesSpec) {
  const std::vector<uint64_t> hashes = SomeHashes(256);
  // The spec's definition, spelled out: each hash as 8 little-endian bytes, then XXH3-64.
  Bytes serialized;
  for (uint64_t h : hashes) {
    for (int i = 0; i < 8; ++i) serialized.push_back(static_cast<uint8_t>(h >> (8 * i)));
  }
  EXPECT_EQ(ChunkHash(hashes.data(), hashes.size()),
            XXH3_64bits_withSeed(serialized.data(), serialized.size(), 0));
  EXPECT_EQ(ChunkHash(hashes.data(), 1), XXH3_64bits(serialized.data(), 8));
  EXPECT_EQ(ChunkHash(nullptr, 0), XXH3_64bits(nullptr, 0));
}

TEST(ReplWire, ChunkHashOfMoreThanAChunkOfHashes) {
  const std::vector<uint64_t> hashes = SomeHashes(600);
  Bytes serialized(600 * 8);
  for (size_t i = 0; i < hashes.size(); ++i) StoreLe64(serialized.data() + 8 * i, hashes[i]);
  EXPECT_EQ(ChunkHash(hashes.data(), hashes.size()),
            XXH3_64bits(serialized.data(), serialized.size()));
}

TEST(ReplWire, BlockHashesOfShortChunk) {
  const Bytes chunk = RandomBytes(5000, 6);
  std::vector<uint64_t> out = {1, 2, 3};  // replaced, not appended to
  BlockHashes(chunk.data(), chunk.size(), &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], XXH3_64bits(chunk.data(), 4096));
  EXPECT_EQ(out[1], XXH3_64bits(chunk.data() + 4096, 904));
  const Bytes full = RandomBytes(kChunkBytes, 7);
  BlockHashes(full.data(), full.size(), &out);
  EXPECT_EQ(out.size(), kBlocksPerChunk);
  BlockHashes(full.data(), 0, &out);
  EXPECT_TRUE(out.empty());
}

// ---- robustness --------------------------------------------------------------------------

// Every decoder, run on a buffer of exactly n bytes (so ASan sees any over-read).
struct NamedDecoder {
  const char* name;
  std::function<Status(const uint8_t*, size_t)> decode;
  Bytes valid;
};

std::vector<NamedDecoder> AllDecoders() {
  Hello hello = ExampleHello();
  const Bytes data(8192, 0x33);
  BatchBuilder raw_batch = EveryItemType(3, data);
  BatchBuilder zstd_batch = EveryItemType(4, data);
  const Bytes raw_payload = raw_batch.Finish(5, 0).value();
  return {
      {"HELLO",
       [](const uint8_t* p, size_t n) {
         Hello m;
         return DecodeHello(p, n, &m);
       },
       EncodeHello(hello)},
      {"HELLO_REPLY",
       [](const uint8_t* p, size_t n) {
         HelloReply m;
         return DecodeHelloReply(p, n, &m);
       },
       EncodeHelloReply(HelloReply{.message = "why"})},
      {"START",
       [](const uint8_t* p, size_t n) {
         Start m;
         return DecodeStart(p, n, &m);
       },
       EncodeStart(Start{.mode = StartMode::kResyncResume, .first_seq = 3, .sync_cursor = 9})},
      {"ACK",
       [](const uint8_t* p, size_t n) {
         Ack m;
         return DecodeAck(p, n, &m);
       },
       EncodeAck(Ack{.batch = 1})},
      {"HASHES",
       [](const uint8_t* p, size_t n) {
         Hashes m;
         return DecodeHashes(p, n, &m);
       },
       EncodeHashes(Hashes{.chunk_length = 9000, .block_hashes = SomeHashes(3)})},
      {"HASHES equal",
       [](const uint8_t* p, size_t n) {
         Hashes m;
         return DecodeHashes(p, n, &m);
       },
       EncodeHashes(EqualHashes(9000))},
      {"VERIFY_HASHES",
       [](const uint8_t* p, size_t n) {
         VerifyHashes m;
         return DecodeVerifyHashes(p, n, &m);
       },
       EncodeVerifyHashes(VerifyHashes{.chunk_length = 4096, .block_hashes = SomeHashes(1)})},
      {"ERROR",
       [](const uint8_t* p, size_t n) {
         Error m;
         return DecodeError(p, n, &m);
       },
       EncodeError(Error{.code = ErrorCode::kBusy, .message = "busy"})},
      {"BATCH raw",
       [](const uint8_t* p, size_t n) {
         BatchHeader h;
         Bytes raw;
         return DecodeBatch(p, n, &h, &raw);
       },
       raw_payload},
      {"BATCH zstd",
       [](const uint8_t* p, size_t n) {
         BatchHeader h;
         Bytes raw;
         return DecodeBatch(p, n, &h, &raw);
       },
       zstd_batch.Finish(5, 3).value()},
      {"items",  // a decoded batch's items, read back with the count they were built with
       [](const uint8_t* p, size_t n) {
         ItemReader reader(p, n, 9, kDiskBytes);
         ItemHeader h;
         const uint8_t* d;
         while (reader.Next(&h, &d)) {
         }
         return reader.status();
       },
       Bytes(raw_payload.begin() + kBatchHeaderBytes, raw_payload.end())},
  };
}

TEST(ReplWire, EveryTruncationIsRejected) {
  for (const NamedDecoder& d : AllDecoders()) {
    ASSERT_TRUE(d.decode(d.valid.data(), d.valid.size()).ok()) << d.name;
    for (size_t len = 0; len < d.valid.size(); ++len) {
      const Bytes prefix(d.valid.begin(), d.valid.begin() + len);
      const Status st = d.decode(prefix.data(), prefix.size());
      EXPECT_EQ(st.code(), Status::Code::kProtocolError) << d.name << " cut to " << len;
      if (::testing::Test::HasFailure()) break;
    }
  }
}

TEST(ReplWire, CorruptedMessagesNeverCrashDecoders) {
  std::mt19937 rng(12345);
  for (const NamedDecoder& d : AllDecoders()) {
    for (int round = 0; round < 2000; ++round) {
      Bytes b = d.valid;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < flips; ++i) b[rng() % b.size()] = static_cast<uint8_t>(rng());
      if (rng() % 4 == 0) b.resize(rng() % (b.size() + 1));
      d.decode(b.data(), b.size());  // any Status will do: the point is no crash or over-read
    }
    for (int round = 0; round < 200; ++round) {
      const Bytes b = RandomBytes(rng() % 200, static_cast<uint32_t>(rng()));
      d.decode(b.data(), b.size());
    }
  }
  for (int round = 0; round < 2000; ++round) {
    uint8_t header[kFrameHeaderBytes];
    EncodeFrameHeader(MsgType::kBatch, 100, header);
    header[rng() % kFrameHeaderBytes] = static_cast<uint8_t>(rng());
    FrameHeader h;
    DecodeFrameHeader(header, &h);
  }
}

// FinishFrame builds the same batch as Finish, as a whole frame, both raw and compressed,
// and the builder goes on building batches in the buffers handed back to it.
TEST(BatchBuilder, FinishFrameIsTheFrameOfFinishesPayload) {
  for (int level : {0, 1}) {
    SCOPED_TRACE(level);
    BatchBuilder b;
    std::vector<uint8_t> frame;
    for (uint64_t n = 1; n <= 3; ++n) {
      b.Reset(n);
      std::vector<uint8_t> data(4096 * n, static_cast<uint8_t>('a' + n));
      ItemHeader h;
      h.type = ItemType::kWrite;
      h.seq = n;
      h.offset = 4096;
      h.length = data.size();
      h.data_bytes = static_cast<uint32_t>(data.size());
      b.Add(h, data.data());
      auto payload = b.Finish(n, level);
      ASSERT_TRUE(payload.ok());
      ASSERT_TRUE(b.FinishFrame(n, level, &frame).ok());
      ASSERT_EQ(frame.size(), kFrameHeaderBytes + payload->size());
      FrameHeader fh;
      ASSERT_TRUE(DecodeFrameHeader(frame.data(), &fh).ok());
      EXPECT_EQ(fh.type, MsgType::kBatch);
      EXPECT_EQ(fh.payload_bytes, payload->size());
      EXPECT_TRUE(std::equal(payload->begin(), payload->end(), frame.begin() + kFrameHeaderBytes));
      EXPECT_TRUE(b.empty());
      b.Recycle(std::vector<uint8_t>(std::move(frame)));
      frame.clear();
    }
  }
}

}  // namespace
}  // namespace blockrep::repl
