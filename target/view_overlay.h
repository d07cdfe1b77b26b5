// ViewOverlay: the private, writable layer of a brought-up view (docs/formats/retention.md,
// "Views"): writes to a failed-over or test-failed-over disk land in overlay.img (sparse,
// the disk's size), whole 4 KiB blocks at a time, and overlay.map records which blocks hold
// data. Reads take those blocks from the overlay and the rest from the view underneath
// (a PointView), so the base, the journal and every other point stay untouched; the set of
// written blocks is what failback sends home.
//
// overlay.map: a 64-byte header (u64 magic "BROVMAP1", u32 version 1, u32 block bytes 4096,
// u64 disk bytes, 32 reserved bytes, u64 XXH3-64 of bytes 0..55), then one bit per block
// (bit b of byte b / 8 for block b), written a 4 KiB page at a time.
//
// Durability: Flush() makes the overlay's data durable before the map that points at it,
// so after a crash every block the map names holds what was written to it; writes after
// the last Flush() may be lost (as on any disk without a flush).
//
// Thread-safety: none; the view's owner serializes calls.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/unique_fd.h"

namespace blockrep {

class PointView;

class ViewOverlay {
 public:
  static constexpr uint64_t kBlockBytes = 4096;
  static constexpr size_t kMapHeaderBytes = 64;
  static constexpr size_t kMapPageBytes = 4096;

  // Opens the overlay in dir (created with empty overlay.img and overlay.map when new).
  // A map of another disk size, or one that does not verify, is an error.
  static Result<std::unique_ptr<ViewOverlay>> Open(const std::string& dir, uint64_t disk_bytes);

  // REQUIRES for all: [offset, offset + length) inside the disk.
  Status Read(const PointView& below, uint64_t offset, uint64_t length, uint8_t* out) const;
  // Partial blocks at either edge are completed from what the view reads there first.
  Status Write(const PointView& below, uint64_t offset, uint64_t length, const uint8_t* data);
  Status Flush();

  bool Written(uint64_t block) const;
  uint64_t written_blocks() const { return written_blocks_; }

 private:
  ViewOverlay(std::string dir, uint64_t disk_bytes) : dir_(std::move(dir)), disk_bytes_(disk_bytes) {}
  void Mark(uint64_t block);
  Status ReadOverlay(uint64_t offset, uint64_t length, uint8_t* out) const;
  Status WriteOverlay(uint64_t offset, uint64_t length, const uint8_t* data);

  std::string dir_;
  uint64_t disk_bytes_;
  UniqueFd data_fd_;
  UniqueFd map_fd_;
  std::vector<uint8_t> bits_;
  std::set<size_t> dirty_pages_;  // pages of bits_ changed since the last Flush()
  uint64_t written_blocks_ = 0;
};

}  // namespace blockrep
