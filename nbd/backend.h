// Backend: the storage behind one NBD export, as the transmission phase sees it.
//
// The NBD layer validates every request before calling a Backend (offsets and lengths are in
// range, flags are allowed), so implementations only assert those conditions. Operations are
// asynchronous on the calling worker's IoRing: each call eventually invokes done->OnDone(err)
// exactly once, on that worker's thread, with err 0 or a negative errno. Buffers passed in
// stay valid until then.
//
// Thread-safety: one Backend is shared by every worker thread serving its export, so
// implementations must be safe to call concurrently (each call with its own thread's ring).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/io_ring.h"
#include "core/status.h"

namespace blockrep::nbd {

class BackendDone {
 public:
  virtual void OnDone(int err) = 0;

 protected:
  ~BackendDone() = default;
};

struct Extent {
  uint64_t length;
  uint32_t flags;  // kStateHole | kStateZero for base:allocation
};

struct BackendCapabilities {
  bool read_only = false;
  bool can_trim = true;
  bool can_zero = true;
  bool can_fast_zero = true;
  // True when all connections share one cache, so a flush on one covers writes completed on
  // all (NBD_FLAG_CAN_MULTI_CONN).
  bool can_multi_conn = true;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual uint64_t size_bytes() const = 0;
  virtual BackendCapabilities capabilities() const = 0;

  virtual void Read(IoRing& ring, uint64_t offset, uint32_t length, uint8_t* buf,
                    BackendDone* done) = 0;
  // fua: the data is durable before done runs.
  virtual void Write(IoRing& ring, uint64_t offset, uint32_t length, const uint8_t* buf,
                     bool fua, BackendDone* done) = 0;
  // may_trim: the range may be deallocated (NBD_CMD_FLAG_NO_HOLE clear). fast_only: fail with
  // -ENOTSUP rather than write zeroes slowly (NBD_CMD_FLAG_FAST_ZERO).
  virtual void WriteZeroes(IoRing& ring, uint64_t offset, uint64_t length, bool may_trim,
                           bool fast_only, bool fua, BackendDone* done) = 0;
  virtual void Trim(IoRing& ring, uint64_t offset, uint64_t length, bool fua,
                    BackendDone* done) = 0;
  // Makes every write that completed before the call durable.
  virtual void Flush(IoRing& ring, BackendDone* done) = 0;

  // base:allocation extents covering a prefix of [offset, offset+length), at most
  // max_extents of them, in order. Synchronous: it only asks the filesystem's extent map.
  virtual Status BlockStatus(uint64_t offset, uint64_t length, uint32_t max_extents,
                             std::vector<Extent>* extents) = 0;
};

}  // namespace blockrep::nbd
