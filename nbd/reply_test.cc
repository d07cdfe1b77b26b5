// Checks the byte layout of simple replies, structured chunk headers and the error and
// block-status chunk payloads by encoding known values and decoding them field by field.
#include "nbd/reply.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/endian.h"
#include "nbd/protocol.h"

namespace blockrep::nbd {
namespace {

const uint8_t* Bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

TEST(EncodeSimpleReply, LayoutIsMagicErrorCookie) {
  uint8_t out[kSimpleReplyHeaderBytes + 1];
  out[kSimpleReplyHeaderBytes] = 0xEE;  // canary: exactly 16 bytes are written
  EncodeSimpleReply(out, kEnospc, 0x0102030405060708ULL);
  const uint8_t want[kSimpleReplyHeaderBytes] = {
      0x67, 0x44, 0x66, 0x98,                          // magic
      0x00, 0x00, 0x00, 0x1c,                          // error 28
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // cookie
  };
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), kSimpleReplyHeaderBytes),
            std::string(reinterpret_cast<const char*>(want), sizeof(want)));
  EXPECT_EQ(out[kSimpleReplyHeaderBytes], 0xEE);
}

TEST(EncodeSimpleReply, SuccessHasZeroError) {
  uint8_t out[kSimpleReplyHeaderBytes];
  EncodeSimpleReply(out, 0, 1);
  EXPECT_EQ(LoadBe32(out), kSimpleReplyMagic);
  EXPECT_EQ(LoadBe32(out + 4), 0u);
  EXPECT_EQ(LoadBe64(out + 8), 1u);
}

TEST(EncodeChunkHeader, LayoutIsMagicFlagsTypeCookieLength) {
  uint8_t out[kStructuredReplyHeaderBytes + 1];
  out[kStructuredReplyHeaderBytes] = 0xEE;
  EncodeChunkHeader(out, kReplyFlagDone, kReplyTypeError, 0xA1A2A3A4A5A6A7A8ULL, 0x00010203);
  const uint8_t want[kStructuredReplyHeaderBytes] = {
      0x66, 0x8e, 0x33, 0xef,                          // magic
      0x00, 0x01,                                      // flags: DONE
      0x80, 0x01,                                      // type: ERROR
      0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8,  // cookie
      0x00, 0x01, 0x02, 0x03,                          // payload length
  };
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), kStructuredReplyHeaderBytes),
            std::string(reinterpret_cast<const char*>(want), sizeof(want)));
  EXPECT_EQ(out[kStructuredReplyHeaderBytes], 0xEE);
}

TEST(EncodeChunkHeader, OffsetDataWithoutDoneFlag) {
  uint8_t out[kStructuredReplyHeaderBytes];
  EncodeChunkHeader(out, 0, kReplyTypeOffsetData, 5, 8 + 4096);
  EXPECT_EQ(LoadBe16(out + 4), 0);
  EXPECT_EQ(LoadBe16(out + 6), 1);
  EXPECT_EQ(LoadBe32(out + 16), 8u + 4096u);
}

TEST(ErrorChunkPayload, LayoutIsErrorLengthMessage) {
  std::string p = ErrorChunkPayload(kEio, "disk0 read failed");
  ASSERT_EQ(p.size(), 6u + 17u);
  EXPECT_EQ(LoadBe32(Bytes(p)), 5u);
  EXPECT_EQ(LoadBe16(Bytes(p) + 4), 17);
  EXPECT_EQ(p.substr(6), "disk0 read failed");
}

TEST(ErrorChunkPayload, EmptyMessage) {
  std::string p = ErrorChunkPayload(kEinval, "");
  ASSERT_EQ(p.size(), 6u);
  EXPECT_EQ(LoadBe32(Bytes(p)), kEinval);
  EXPECT_EQ(LoadBe16(Bytes(p) + 4), 0);
}

TEST(ErrorChunkPayload, MessageOfExactlyMaxStringBytesIsKept) {
  std::string msg(kMaxStringBytes, 'm');
  std::string p = ErrorChunkPayload(kEio, msg);
  ASSERT_EQ(p.size(), 6u + kMaxStringBytes);
  EXPECT_EQ(LoadBe16(Bytes(p) + 4), kMaxStringBytes);
  EXPECT_EQ(p.substr(6), msg);
}

TEST(ErrorChunkPayload, LongMessageIsTruncatedToMaxStringBytes) {
  std::string msg(kMaxStringBytes, 'a');
  msg += std::string(1000, 'b');
  std::string p = ErrorChunkPayload(kEio, msg);
  ASSERT_EQ(p.size(), 6u + kMaxStringBytes);
  EXPECT_EQ(LoadBe16(Bytes(p) + 4), kMaxStringBytes);
  EXPECT_EQ(p.substr(6), std::string(kMaxStringBytes, 'a'));
}

TEST(ErrorChunkPayload, MessageOver64KiBIsTruncatedNotWrapped) {
  // A 16-bit length field would wrap at 65536; the truncation must come first.
  std::string p = ErrorChunkPayload(kEio, std::string(65536 + 10, 'x'));
  EXPECT_EQ(LoadBe16(Bytes(p) + 4), kMaxStringBytes);
  EXPECT_EQ(p.size(), 6u + kMaxStringBytes);
}

TEST(BlockStatusPayload, LayoutIsContextIdThenLengthFlagsPairs) {
  std::vector<Extent> extents = {
      {4096, kStateHole | kStateZero},
      {0x10000, 0},
      {0xFFFFF000u, kStateHole | kStateZero},
  };
  std::string p = BlockStatusPayload(kBaseAllocationContextId, extents);
  ASSERT_EQ(p.size(), 4u + 8u * 3);
  const uint8_t* u = Bytes(p);
  EXPECT_EQ(LoadBe32(u), 1u);
  EXPECT_EQ(LoadBe32(u + 4), 4096u);
  EXPECT_EQ(LoadBe32(u + 8), 3u);
  EXPECT_EQ(LoadBe32(u + 12), 0x10000u);
  EXPECT_EQ(LoadBe32(u + 16), 0u);
  EXPECT_EQ(LoadBe32(u + 20), 0xFFFFF000u);
  EXPECT_EQ(LoadBe32(u + 24), 3u);
}

TEST(BlockStatusPayload, NoExtentsIsJustTheContextId) {
  std::string p = BlockStatusPayload(0xDEADBEEF, {});
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(LoadBe32(Bytes(p)), 0xDEADBEEFu);
}

}  // namespace
}  // namespace blockrep::nbd
