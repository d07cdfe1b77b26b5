// Checks request header decoding, every ValidateRequest rule documented in request.h, and
// the errno mapping, by calling them on hand-built requests and sessions.
#include "nbd/request.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <limits>

#include "core/endian.h"
#include "nbd/protocol.h"

namespace blockrep::nbd {
namespace {

constexpr uint64_t kExportBytes = 1 << 20;

// A session as the handshake would produce it for a backend with these capabilities.
Session Negotiated(BackendCapabilities caps = {}, bool structured = false,
                   bool base_allocation = false) {
  Session s;
  s.structured_replies = structured;
  s.base_allocation = base_allocation;
  s.transmission_flags = TransmissionFlags(caps, structured);
  return s;
}

BackendCapabilities ReadOnly() {
  BackendCapabilities caps;
  caps.read_only = true;
  return caps;
}

Request Req(uint16_t type, uint64_t offset, uint32_t length, uint16_t flags = 0) {
  Request r;
  r.type = type;
  r.offset = offset;
  r.length = length;
  r.flags = flags;
  r.cookie = 7;
  return r;
}

uint32_t Validate(const Request& r, const Session& s = Negotiated(),
                  uint64_t export_bytes = kExportBytes) {
  return ValidateRequest(r, s, export_bytes);
}

// ---- ParseRequestHeader -----------------------------------------------------------------------

TEST(ParseRequestHeader, GoodMagicDecodesAllFieldsBigEndian) {
  const uint8_t h[kRequestHeaderBytes] = {
      0x25, 0x60, 0x95, 0x13,                          // magic
      0x01, 0x02,                                      // flags
      0x03, 0x04,                                      // type
      0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,  // cookie
      0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,  // offset
      0x31, 0x32, 0x33, 0x34,                          // length
  };
  Request r;
  ASSERT_TRUE(ParseRequestHeader(h, &r));
  EXPECT_EQ(r.flags, 0x0102);
  EXPECT_EQ(r.type, 0x0304);
  EXPECT_EQ(r.cookie, 0x1112131415161718ULL);
  EXPECT_EQ(r.offset, 0x2122232425262728ULL);
  EXPECT_EQ(r.length, 0x31323334u);
}

TEST(ParseRequestHeader, BadMagicIsRejected) {
  uint8_t h[kRequestHeaderBytes] = {};
  StoreBe32(h, kRequestMagic ^ 1);
  Request r;
  EXPECT_FALSE(ParseRequestHeader(h, &r));
}

TEST(ParseRequestHeader, ReplyMagicIsRejected) {
  uint8_t h[kRequestHeaderBytes] = {};
  StoreBe32(h, kSimpleReplyMagic);
  Request r;
  EXPECT_FALSE(ParseRequestHeader(h, &r));
}

TEST(ParseRequestHeader, LittleEndianMagicIsRejected) {
  uint8_t h[kRequestHeaderBytes] = {0x13, 0x95, 0x60, 0x25};
  Request r;
  EXPECT_FALSE(ParseRequestHeader(h, &r));
}

// ---- ValidateRequest: commands ----------------------------------------------------------------

TEST(ValidateRequest, ValidReadIsAccepted) { EXPECT_EQ(Validate(Req(kCmdRead, 0, 4096)), 0u); }

TEST(ValidateRequest, ValidWriteIsAccepted) {
  EXPECT_EQ(Validate(Req(kCmdWrite, 4096, 4096)), 0u);
}

TEST(ValidateRequest, UnknownCommandIsEinval) {
  EXPECT_EQ(Validate(Req(99, 0, 4096)), kEinval);
  EXPECT_EQ(kEinval, 22u);
}

TEST(ValidateRequest, CacheIsEinvalBecauseNotAdvertised) {
  EXPECT_EQ(Validate(Req(kCmdCache, 0, 4096)), kEinval);
}

TEST(ValidateRequest, TrimNotAdvertisedIsEinval) {
  BackendCapabilities caps;
  caps.can_trim = false;
  EXPECT_EQ(Validate(Req(kCmdTrim, 0, 4096), Negotiated(caps)), kEinval);
}

TEST(ValidateRequest, WriteZeroesNotAdvertisedIsEinval) {
  BackendCapabilities caps;
  caps.can_zero = false;
  EXPECT_EQ(Validate(Req(kCmdWriteZeroes, 0, 4096), Negotiated(caps)), kEinval);
}

// ---- ValidateRequest: flags -------------------------------------------------------------------

TEST(ValidateRequest, FuaAllowedOnEveryCommandWhenAdvertised) {
  const Session s = Negotiated({}, /*structured=*/true, /*base_allocation=*/true);
  ASSERT_TRUE(s.transmission_flags & kFlagSendFua);
  for (uint16_t type : {kCmdRead, kCmdWrite, kCmdTrim, kCmdWriteZeroes, kCmdBlockStatus}) {
    EXPECT_EQ(Validate(Req(type, 0, 4096, kCmdFlagFua), s), 0u) << CommandName(type);
  }
  EXPECT_EQ(Validate(Req(kCmdFlush, 0, 0, kCmdFlagFua), s), 0u);
  EXPECT_EQ(Validate(Req(kCmdDisc, 0, 0, kCmdFlagFua), s), 0u);
}

TEST(ValidateRequest, FuaRefusedWhenNotAdvertised) {
  Session s = Negotiated();
  s.transmission_flags &= static_cast<uint16_t>(~kFlagSendFua);
  EXPECT_EQ(Validate(Req(kCmdWrite, 0, 4096, kCmdFlagFua), s), kEinval);
  EXPECT_EQ(Validate(Req(kCmdWrite, 0, 4096), s), 0u);
}

TEST(ValidateRequest, DfOnReadAllowedWithStructuredReplies) {
  EXPECT_EQ(Validate(Req(kCmdRead, 0, 4096, kCmdFlagDf), Negotiated({}, true)), 0u);
}

TEST(ValidateRequest, DfOnReadRefusedWithoutStructuredReplies) {
  EXPECT_EQ(Validate(Req(kCmdRead, 0, 4096, kCmdFlagDf), Negotiated({}, false)), kEinval);
}

TEST(ValidateRequest, DfOnWriteRefused) {
  EXPECT_EQ(Validate(Req(kCmdWrite, 0, 4096, kCmdFlagDf), Negotiated({}, true)), kEinval);
}

TEST(ValidateRequest, ReqOneAllowedOnBlockStatus) {
  EXPECT_EQ(Validate(Req(kCmdBlockStatus, 0, 4096, kCmdFlagReqOne), Negotiated({}, true, true)),
            0u);
}

TEST(ValidateRequest, ReqOneRefusedOnRead) {
  EXPECT_EQ(Validate(Req(kCmdRead, 0, 4096, kCmdFlagReqOne), Negotiated({}, true, true)),
            kEinval);
}

TEST(ValidateRequest, FastZeroAllowedOnWriteZeroes) {
  EXPECT_EQ(Validate(Req(kCmdWriteZeroes, 0, 4096, kCmdFlagFastZero)), 0u);
}

TEST(ValidateRequest, FastZeroRefusedWhenNotAdvertised) {
  BackendCapabilities caps;
  caps.can_fast_zero = false;
  EXPECT_EQ(Validate(Req(kCmdWriteZeroes, 0, 4096, kCmdFlagFastZero), Negotiated(caps)),
            kEinval);
}

TEST(ValidateRequest, FastZeroRefusedOnWrite) {
  EXPECT_EQ(Validate(Req(kCmdWrite, 0, 4096, kCmdFlagFastZero)), kEinval);
}

TEST(ValidateRequest, FastZeroRefusedOnTrim) {
  EXPECT_EQ(Validate(Req(kCmdTrim, 0, 4096, kCmdFlagFastZero)), kEinval);
}

TEST(ValidateRequest, NoHoleAllowedOnWriteZeroes) {
  EXPECT_EQ(Validate(Req(kCmdWriteZeroes, 0, 4096, kCmdFlagNoHole)), 0u);
}

TEST(ValidateRequest, NoHoleRefusedOnTrim) {
  EXPECT_EQ(Validate(Req(kCmdTrim, 0, 4096, kCmdFlagNoHole)), kEinval);
}

TEST(ValidateRequest, NoHoleRefusedOnWrite) {
  EXPECT_EQ(Validate(Req(kCmdWrite, 0, 4096, kCmdFlagNoHole)), kEinval);
}

TEST(ValidateRequest, UnknownFlagBitRefused) {
  EXPECT_EQ(Validate(Req(kCmdRead, 0, 4096, 1 << 9), Negotiated({}, true, true)), kEinval);
}

TEST(ValidateRequest, FlagOnFlushOtherThanFuaRefused) {
  EXPECT_EQ(Validate(Req(kCmdFlush, 0, 0, kCmdFlagNoHole)), kEinval);
}

// ---- ValidateRequest: block status ------------------------------------------------------------

TEST(ValidateRequest, BlockStatusWithBaseAllocationAccepted) {
  EXPECT_EQ(Validate(Req(kCmdBlockStatus, 0, kExportBytes), Negotiated({}, true, true)), 0u);
}

TEST(ValidateRequest, BlockStatusWithoutBaseAllocationIsEinval) {
  EXPECT_EQ(Validate(Req(kCmdBlockStatus, 0, 4096), Negotiated({}, true, false)), kEinval);
}

TEST(ValidateRequest, BlockStatusPastEndIsEinval) {
  EXPECT_EQ(Validate(Req(kCmdBlockStatus, kExportBytes - 4096, 8192), Negotiated({}, true, true)),
            kEinval);
}

// ---- ValidateRequest: flush and disconnect ----------------------------------------------------

TEST(ValidateRequest, FlushAccepted) { EXPECT_EQ(Validate(Req(kCmdFlush, 0, 0)), 0u); }

TEST(ValidateRequest, FlushWithNonzeroOffsetIsEinval) {
  EXPECT_EQ(Validate(Req(kCmdFlush, 4096, 0)), kEinval);
}

TEST(ValidateRequest, FlushWithNonzeroLengthIsEinval) {
  EXPECT_EQ(Validate(Req(kCmdFlush, 0, 4096)), kEinval);
}

TEST(ValidateRequest, DiscWithNonzeroOffsetIsEinval) {
  EXPECT_EQ(Validate(Req(kCmdDisc, 1, 0)), kEinval);
}

TEST(ValidateRequest, FlushOnReadOnlyExportAccepted) {
  EXPECT_EQ(Validate(Req(kCmdFlush, 0, 0), Negotiated(ReadOnly())), 0u);
}

// ---- ValidateRequest: lengths and ranges ------------------------------------------------------

TEST(ValidateRequest, ZeroLengthReadIsEinval) { EXPECT_EQ(Validate(Req(kCmdRead, 0, 0)), kEinval); }

TEST(ValidateRequest, ZeroLengthWriteIsEinval) {
  EXPECT_EQ(Validate(Req(kCmdWrite, 0, 0)), kEinval);
}

TEST(ValidateRequest, ZeroLengthTrimIsEinval) { EXPECT_EQ(Validate(Req(kCmdTrim, 0, 0)), kEinval); }

TEST(ValidateRequest, ReadOfExactlyMaxRequestBytesAccepted) {
  EXPECT_EQ(Validate(Req(kCmdRead, 0, kMaxRequestBytes), Negotiated(), 1ull << 30), 0u);
}

TEST(ValidateRequest, ReadOverMaxRequestBytesIsEinval) {
  EXPECT_EQ(Validate(Req(kCmdRead, 0, kMaxRequestBytes + 1), Negotiated(), 1ull << 30), kEinval);
}

TEST(ValidateRequest, WriteOverMaxRequestBytesIsEinval) {
  EXPECT_EQ(Validate(Req(kCmdWrite, 0, kMaxRequestBytes + 1), Negotiated(), 1ull << 30), kEinval);
}

TEST(ValidateRequest, WriteZeroesOverMaxRequestBytesAccepted) {
  // No payload, so the buffer limit does not apply.
  EXPECT_EQ(Validate(Req(kCmdWriteZeroes, 0, kMaxRequestBytes + 1), Negotiated(), 1ull << 30), 0u);
}

TEST(ValidateRequest, TrimOverMaxRequestBytesAccepted) {
  EXPECT_EQ(Validate(Req(kCmdTrim, 0, 0xFFFFFFFFu), Negotiated(), 1ull << 33), 0u);
}

TEST(ValidateRequest, WriteEndingExactlyAtEndAccepted) {
  EXPECT_EQ(Validate(Req(kCmdWrite, kExportBytes - 4096, 4096)), 0u);
}

TEST(ValidateRequest, ReadEndingExactlyAtEndAccepted) {
  EXPECT_EQ(Validate(Req(kCmdRead, kExportBytes - 1, 1)), 0u);
}

TEST(ValidateRequest, WritePastEndIsEnospc) {
  EXPECT_EQ(Validate(Req(kCmdWrite, kExportBytes - 4096, 4097)), kEnospc);
  EXPECT_EQ(kEnospc, 28u);
}

TEST(ValidateRequest, WriteStartingAtEndIsEnospc) {
  EXPECT_EQ(Validate(Req(kCmdWrite, kExportBytes, 1)), kEnospc);
}

TEST(ValidateRequest, TrimPastEndIsEnospc) {
  EXPECT_EQ(Validate(Req(kCmdTrim, kExportBytes, 4096)), kEnospc);
}

TEST(ValidateRequest, WriteZeroesPastEndIsEnospc) {
  EXPECT_EQ(Validate(Req(kCmdWriteZeroes, kExportBytes - 1, 2)), kEnospc);
}

TEST(ValidateRequest, ReadPastEndIsEinval) {
  EXPECT_EQ(Validate(Req(kCmdRead, kExportBytes - 4096, 4097)), kEinval);
}

TEST(ValidateRequest, ReadStartingPastEndIsEinval) {
  EXPECT_EQ(Validate(Req(kCmdRead, kExportBytes + 4096, 1)), kEinval);
}

TEST(ValidateRequest, ReadOffsetPlusLengthOverflowIsEinval) {
  const uint64_t huge = std::numeric_limits<uint64_t>::max();
  // offset + length wraps to a small number; a naive "offset + length > size" would pass it.
  EXPECT_EQ(Validate(Req(kCmdRead, huge - 10, 4096), Negotiated(), huge), kEinval);
  EXPECT_EQ(Validate(Req(kCmdRead, huge - 10, 4096), Negotiated(), kExportBytes), kEinval);
}

TEST(ValidateRequest, WriteOffsetPlusLengthOverflowIsEnospc) {
  const uint64_t huge = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(Validate(Req(kCmdWrite, huge - 10, 4096), Negotiated(), huge), kEnospc);
  EXPECT_EQ(Validate(Req(kCmdWrite, huge, 1), Negotiated(), kExportBytes), kEnospc);
}

// ---- ValidateRequest: read-only exports -------------------------------------------------------

TEST(ValidateRequest, ReadOnlyWriteIsEperm) {
  EXPECT_EQ(Validate(Req(kCmdWrite, 0, 4096), Negotiated(ReadOnly())), kEperm);
  EXPECT_EQ(kEperm, 1u);
}

TEST(ValidateRequest, ReadOnlyWritePastEndIsEperm) {
  EXPECT_EQ(Validate(Req(kCmdWrite, kExportBytes, 4096), Negotiated(ReadOnly())), kEperm);
}

TEST(ValidateRequest, ReadOnlyReadAccepted) {
  EXPECT_EQ(Validate(Req(kCmdRead, 0, 4096), Negotiated(ReadOnly())), 0u);
}

// The spec's SHOULD: a trim or write-zeroes on a read-only export is EPERM, even though
// TransmissionFlags never advertises either there (the read-only check comes first).
TEST(ValidateRequest, ReadOnlyTrimIsEperm) {
  EXPECT_EQ(Validate(Req(kCmdTrim, 0, 4096), Negotiated(ReadOnly())), kEperm);
}

// Same as ReadOnlyTrimIsEperm, for NBD_CMD_WRITE_ZEROES.
TEST(ValidateRequest, ReadOnlyWriteZeroesIsEperm) {
  EXPECT_EQ(Validate(Req(kCmdWriteZeroes, 0, 4096), Negotiated(ReadOnly())), kEperm);
}

// ---- PayloadBytes -----------------------------------------------------------------------------

TEST(PayloadBytes, WriteCarriesItsLength) {
  EXPECT_EQ(PayloadBytes(Req(kCmdWrite, 0, 12345)), 12345u);
}

TEST(PayloadBytes, RejectedWriteStillCarriesItsLength) {
  Request r = Req(kCmdWrite, 0, kMaxRequestBytes + 1);
  ASSERT_NE(Validate(r, Negotiated(), 1ull << 30), 0u);
  EXPECT_EQ(PayloadBytes(r), kMaxRequestBytes + 1u);
}

TEST(PayloadBytes, OtherCommandsCarryNothing) {
  for (uint16_t type : {kCmdRead, kCmdDisc, kCmdFlush, kCmdTrim, kCmdCache, kCmdWriteZeroes,
                        kCmdBlockStatus, uint16_t{99}}) {
    EXPECT_EQ(PayloadBytes(Req(type, 0, 4096)), 0u) << CommandName(type);
  }
}

// ---- CommandName ------------------------------------------------------------------------------

TEST(CommandName, NamesKnownAndUnknownCommands) {
  EXPECT_STREQ(CommandName(kCmdWriteZeroes), "WRITE_ZEROES");
  EXPECT_STREQ(CommandName(kCmdBlockStatus), "BLOCK_STATUS");
  EXPECT_STREQ(CommandName(1234), "unknown");
}

// ---- ErrnoToNbdError --------------------------------------------------------------------------

TEST(ErrnoToNbdError, ZeroIsSuccess) { EXPECT_EQ(ErrnoToNbdError(0), 0u); }

TEST(ErrnoToNbdError, NegativeAndPositiveErrnoMapAlike) {
  EXPECT_EQ(ErrnoToNbdError(-ENOSPC), ErrnoToNbdError(ENOSPC));
  EXPECT_EQ(ErrnoToNbdError(-EPERM), kEperm);
}

TEST(ErrnoToNbdError, PermissionErrorsMapToEperm) {
  EXPECT_EQ(ErrnoToNbdError(EPERM), 1u);
  EXPECT_EQ(ErrnoToNbdError(EROFS), 1u);
}

TEST(ErrnoToNbdError, SpaceErrorsMapToEnospc) {
  EXPECT_EQ(ErrnoToNbdError(ENOSPC), 28u);
  EXPECT_EQ(ErrnoToNbdError(EDQUOT), 28u);
  EXPECT_EQ(ErrnoToNbdError(EFBIG), 28u);
}

TEST(ErrnoToNbdError, ProtocolValuesMapToThemselves) {
  EXPECT_EQ(ErrnoToNbdError(ENOMEM), 12u);
  EXPECT_EQ(ErrnoToNbdError(EINVAL), 22u);
  EXPECT_EQ(ErrnoToNbdError(EOVERFLOW), 75u);
  EXPECT_EQ(ErrnoToNbdError(ENOTSUP), 95u);
  EXPECT_EQ(ErrnoToNbdError(EOPNOTSUPP), 95u);
  EXPECT_EQ(ErrnoToNbdError(ESHUTDOWN), 108u);
  EXPECT_EQ(ErrnoToNbdError(EIO), 5u);
}

TEST(ErrnoToNbdError, UnlistedErrnoMapsToEio) {
  EXPECT_EQ(ErrnoToNbdError(EBADF), kEio);
  EXPECT_EQ(ErrnoToNbdError(-ENXIO), kEio);
  EXPECT_EQ(ErrnoToNbdError(EAGAIN), kEio);
}

}  // namespace
}  // namespace blockrep::nbd
