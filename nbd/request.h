// Request parsing and validation for the transmission phase (nbdkit's validate_request
// split: parse the fixed header, decide once whether the request may run, and only then
// hand it to the backend, which asserts instead of re-checking).
#pragma once

#include <cstdint>

#include "nbd/handshake.h"

namespace blockrep::nbd {

struct Request {
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t cookie = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
};

// Decodes a kRequestHeaderBytes header. False when the magic is wrong: the stream is out of
// sync and the connection must be dropped (a hard disconnect).
bool ParseRequestHeader(const uint8_t* header, Request* out);

// 0 when the request may run, otherwise the NBD error value to reply with:
//   unknown command, a flag not allowed for the command, BLOCK_STATUS without
//   base:allocation, FLUSH/DISC with non-zero offset or length, a zero length, or a READ/
//   WRITE over kMaxRequestBytes: EINVAL;
//   a write, trim or zero on a read-only export: EPERM;
//   a write, trim or zero past the end: ENOSPC (the spec's SHOULD); a read or block status
//   past the end: EINVAL.
uint32_t ValidateRequest(const Request& r, const Session& session, uint64_t export_bytes);

// Payload bytes that follow the header on the wire: a write's data, whether or not the
// write is valid (a rejected write's payload must still be read to stay in sync).
inline uint64_t PayloadBytes(const Request& r) { return r.type == 1 /*kCmdWrite*/ ? r.length : 0; }

const char* CommandName(uint16_t type);

}  // namespace blockrep::nbd
