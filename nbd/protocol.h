// NBD protocol constants (fixed newstyle handshake, transmission phase) and this server's
// limits. The protocol is specified in doc/proto.md of NetworkBlockDevice/nbd; our subset,
// choices and limits are written down in docs/formats/nbd.md. All integers on the wire are
// big-endian.
#pragma once

#include <cstddef>
#include <cstdint>

namespace blockrep::nbd {

// ---- Magic numbers -------------------------------------------------------------------
inline constexpr uint64_t kNbdMagic = 0x4e42444d41474943ULL;       // "NBDMAGIC"
inline constexpr uint64_t kIHaveOpt = 0x49484156454F5054ULL;       // "IHAVEOPT"
inline constexpr uint64_t kOptionReplyMagic = 0x0003e889045565a9ULL;
inline constexpr uint32_t kRequestMagic = 0x25609513;
inline constexpr uint32_t kSimpleReplyMagic = 0x67446698;
inline constexpr uint32_t kStructuredReplyMagic = 0x668e33ef;

// ---- Handshake flags (server) and client flags -----------------------------------------
inline constexpr uint16_t kFlagFixedNewstyle = 1 << 0;
inline constexpr uint16_t kFlagNoZeroes = 1 << 1;
inline constexpr uint32_t kClientFlagFixedNewstyle = 1 << 0;
inline constexpr uint32_t kClientFlagNoZeroes = 1 << 1;

// ---- Options ----------------------------------------------------------------------------
inline constexpr uint32_t kOptExportName = 1;
inline constexpr uint32_t kOptAbort = 2;
inline constexpr uint32_t kOptList = 3;
inline constexpr uint32_t kOptStartTls = 5;
inline constexpr uint32_t kOptInfo = 6;
inline constexpr uint32_t kOptGo = 7;
inline constexpr uint32_t kOptStructuredReply = 8;
inline constexpr uint32_t kOptListMetaContext = 9;
inline constexpr uint32_t kOptSetMetaContext = 10;

// ---- Option replies ---------------------------------------------------------------------
inline constexpr uint32_t kRepAck = 1;
inline constexpr uint32_t kRepServer = 2;
inline constexpr uint32_t kRepInfo = 3;
inline constexpr uint32_t kRepMetaContext = 4;
inline constexpr uint32_t kRepErrBit = 0x80000000u;
inline constexpr uint32_t kRepErrUnsup = kRepErrBit | 1;
inline constexpr uint32_t kRepErrPolicy = kRepErrBit | 2;
inline constexpr uint32_t kRepErrInvalid = kRepErrBit | 3;
inline constexpr uint32_t kRepErrPlatform = kRepErrBit | 4;
inline constexpr uint32_t kRepErrTlsReqd = kRepErrBit | 5;
inline constexpr uint32_t kRepErrUnknown = kRepErrBit | 6;
inline constexpr uint32_t kRepErrShutdown = kRepErrBit | 7;
inline constexpr uint32_t kRepErrBlockSizeReqd = kRepErrBit | 8;
inline constexpr uint32_t kRepErrTooBig = kRepErrBit | 9;

// ---- NBD_REP_INFO types -----------------------------------------------------------------
inline constexpr uint16_t kInfoExport = 0;
inline constexpr uint16_t kInfoName = 1;
inline constexpr uint16_t kInfoDescription = 2;
inline constexpr uint16_t kInfoBlockSize = 3;

// ---- Transmission flags -----------------------------------------------------------------
inline constexpr uint16_t kFlagHasFlags = 1 << 0;
inline constexpr uint16_t kFlagReadOnly = 1 << 1;
inline constexpr uint16_t kFlagSendFlush = 1 << 2;
inline constexpr uint16_t kFlagSendFua = 1 << 3;
inline constexpr uint16_t kFlagRotational = 1 << 4;
inline constexpr uint16_t kFlagSendTrim = 1 << 5;
inline constexpr uint16_t kFlagSendWriteZeroes = 1 << 6;
inline constexpr uint16_t kFlagSendDf = 1 << 7;
inline constexpr uint16_t kFlagCanMultiConn = 1 << 8;
inline constexpr uint16_t kFlagSendCache = 1 << 10;
inline constexpr uint16_t kFlagSendFastZero = 1 << 11;

// ---- Commands and command flags -----------------------------------------------------------
inline constexpr uint16_t kCmdRead = 0;
inline constexpr uint16_t kCmdWrite = 1;
inline constexpr uint16_t kCmdDisc = 2;
inline constexpr uint16_t kCmdFlush = 3;
inline constexpr uint16_t kCmdTrim = 4;
inline constexpr uint16_t kCmdCache = 5;
inline constexpr uint16_t kCmdWriteZeroes = 6;
inline constexpr uint16_t kCmdBlockStatus = 7;

inline constexpr uint16_t kCmdFlagFua = 1 << 0;
inline constexpr uint16_t kCmdFlagNoHole = 1 << 1;
inline constexpr uint16_t kCmdFlagDf = 1 << 2;
inline constexpr uint16_t kCmdFlagReqOne = 1 << 3;
inline constexpr uint16_t kCmdFlagFastZero = 1 << 4;

// ---- Structured reply ---------------------------------------------------------------------
inline constexpr uint16_t kReplyFlagDone = 1 << 0;
inline constexpr uint16_t kReplyTypeNone = 0;
inline constexpr uint16_t kReplyTypeOffsetData = 1;
inline constexpr uint16_t kReplyTypeOffsetHole = 2;
inline constexpr uint16_t kReplyTypeBlockStatus = 5;
inline constexpr uint16_t kReplyTypeError = (1 << 15) | 1;
inline constexpr uint16_t kReplyTypeErrorOffset = (1 << 15) | 2;

// ---- base:allocation ------------------------------------------------------------------------
inline constexpr uint32_t kStateHole = 1 << 0;
inline constexpr uint32_t kStateZero = 1 << 1;
inline constexpr char kMetaContextBaseAllocation[] = "base:allocation";
// The id we give base:allocation in NBD_REP_META_CONTEXT; any non-zero value would do.
inline constexpr uint32_t kBaseAllocationContextId = 1;

// ---- Error values (the protocol's own numbering, equal to Linux errno) ------------------------
inline constexpr uint32_t kEperm = 1;
inline constexpr uint32_t kEio = 5;
inline constexpr uint32_t kEnomem = 12;
inline constexpr uint32_t kEinval = 22;
inline constexpr uint32_t kEnospc = 28;
inline constexpr uint32_t kEoverflow = 75;
inline constexpr uint32_t kEnotsup = 95;
inline constexpr uint32_t kEshutdown = 108;

// ---- Wire sizes ---------------------------------------------------------------------------
inline constexpr size_t kRequestHeaderBytes = 28;       // magic, flags, type, cookie, offset, length
inline constexpr size_t kSimpleReplyHeaderBytes = 16;   // magic, error, cookie
inline constexpr size_t kStructuredReplyHeaderBytes = 20;  // magic, flags, type, cookie, length
inline constexpr size_t kOptionHeaderBytes = 16;        // IHAVEOPT, option, length
inline constexpr size_t kOptionReplyHeaderBytes = 20;   // magic, option, type, length

// ---- This server's limits (see docs/formats/nbd.md) -------------------------------------------
// Largest READ or WRITE payload we accept, and advertise as the maximum block size. 32 MiB is
// what qemu and nbdkit use, so every client already splits its I/O to fit; larger buffers would
// only raise the memory one request can pin.
inline constexpr uint32_t kMaxRequestBytes = 32u << 20;
// Preferred block size advertised in NBD_INFO_BLOCK_SIZE: the page size, so clients align
// to the page cache. The minimum is 1: we serve any byte offset and length.
inline constexpr uint32_t kPreferredBlockBytes = 4096;
inline constexpr uint32_t kMinBlockBytes = 1;
// Longest option payload we read during the handshake. The largest legitimate option is a
// meta-context query list: a name (<= kMaxStringBytes) plus a few queries; anything past this
// is refused with NBD_REP_ERR_TOO_BIG after its bytes are skipped, never allocated.
inline constexpr uint32_t kMaxOptionBytes = 64 * 1024;
// The spec's limit for any string (export names, queries, descriptions): 4096 bytes.
inline constexpr uint32_t kMaxStringBytes = 4096;
// Options one client may send before it must choose an export. Real clients send a handful;
// the cap stops a peer from holding a handshake slot forever.
inline constexpr uint32_t kMaxOptions = 128;
// Meta-context queries in one LIST/SET option. libnbd and qemu send one or two.
inline constexpr uint32_t kMaxMetaQueries = 128;
// Extents in one NBD_REPLY_TYPE_BLOCK_STATUS chunk. The spec lets a server return fewer than the
// whole range; clients loop. 1024 keeps the reply under 8 KiB and each lseek walk short.
inline constexpr uint32_t kMaxBlockStatusExtents = 1024;

static_assert(kMaxRequestBytes <= (1u << 31), "payload lengths must fit an int32 io_uring result");
static_assert(kMaxOptionBytes >= 4 + kMaxStringBytes + 4 + 4 + kMaxStringBytes,
              "an option must fit one maximal name and one maximal query");

// NBD error value for an errno from a failed backing operation (spec: "Error values").
uint32_t ErrnoToNbdError(int err);

}  // namespace blockrep::nbd
