#include "nbd/request.h"

#include <cerrno>

#include "core/endian.h"
#include "nbd/protocol.h"

namespace blockrep::nbd {

static_assert(kCmdWrite == 1, "PayloadBytes hard-codes NBD_CMD_WRITE");

bool ParseRequestHeader(const uint8_t* h, Request* out) {
  if (LoadBe32(h) != kRequestMagic) return false;
  out->flags = LoadBe16(h + 4);
  out->type = LoadBe16(h + 6);
  out->cookie = LoadBe64(h + 8);
  out->offset = LoadBe64(h + 16);
  out->length = LoadBe32(h + 24);
  return true;
}

const char* CommandName(uint16_t type) {
  switch (type) {
    case kCmdRead: return "READ";
    case kCmdWrite: return "WRITE";
    case kCmdDisc: return "DISC";
    case kCmdFlush: return "FLUSH";
    case kCmdTrim: return "TRIM";
    case kCmdCache: return "CACHE";
    case kCmdWriteZeroes: return "WRITE_ZEROES";
    case kCmdBlockStatus: return "BLOCK_STATUS";
    default: return "unknown";
  }
}

uint32_t ValidateRequest(const Request& r, const Session& session, uint64_t export_bytes) {
  const uint16_t tflags = session.transmission_flags;
  // FUA is valid on every command once advertised (the spec: the server MUST accept it).
  uint16_t allowed = (tflags & kFlagSendFua) ? kCmdFlagFua : 0;
  bool writes = false;     // modifies the export
  bool ranged = true;      // carries an offset and length into the export
  // A change to a read-only export is refused as such (EPERM), even though we never
  // advertise trim or zeroes there.
  if ((r.type == kCmdWrite || r.type == kCmdTrim || r.type == kCmdWriteZeroes) &&
      (tflags & kFlagReadOnly)) {
    return kEperm;
  }
  switch (r.type) {
    case kCmdRead:
      if (tflags & kFlagSendDf) allowed |= kCmdFlagDf;
      break;
    case kCmdWrite:
      writes = true;
      break;
    case kCmdTrim:
      if (!(tflags & kFlagSendTrim)) return kEinval;
      writes = true;
      break;
    case kCmdWriteZeroes:
      if (!(tflags & kFlagSendWriteZeroes)) return kEinval;
      allowed |= kCmdFlagNoHole;
      if (tflags & kFlagSendFastZero) allowed |= kCmdFlagFastZero;
      writes = true;
      break;
    case kCmdBlockStatus:
      if (!session.base_allocation) return kEinval;
      allowed |= kCmdFlagReqOne;
      break;
    case kCmdFlush:
    case kCmdDisc:
      ranged = false;
      break;
    default:
      return kEinval;  // includes NBD_CMD_CACHE, which we do not advertise
  }
  if (r.flags & ~allowed) return kEinval;
  if (!ranged) return (r.offset != 0 || r.length != 0) ? kEinval : 0;
  if (r.length == 0) return kEinval;
  if ((r.type == kCmdRead || r.type == kCmdWrite) && r.length > kMaxRequestBytes) return kEinval;
  if (r.offset > export_bytes || r.length > export_bytes - r.offset) {
    return writes ? kEnospc : kEinval;
  }
  return 0;
}

uint32_t ErrnoToNbdError(int err) {
  if (err < 0) err = -err;
  switch (err) {
    case 0: return 0;
    case EPERM:
    case EROFS: return kEperm;
    case ENOMEM: return kEnomem;
    case EINVAL: return kEinval;
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return kEnospc;
    case EOVERFLOW: return kEoverflow;
    case ENOTSUP: return kEnotsup;
    case ESHUTDOWN: return kEshutdown;
    default: return kEio;
  }
}

}  // namespace blockrep::nbd
