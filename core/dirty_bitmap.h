// DirtyBitmap: which regions of a disk must be resynchronised, one bit per
// kRegionBytes-sized region. The persistent form is the file STATE_DIR/disks/NAME/bitmap,
// specified in docs/formats/bitmap.md (constants here; sizes pinned in dirty_bitmap.cc).
//
// The WritePath keeps two: the persistent resync bitmap (regions changed while the journal
// could not record them: after the journal passed its budget, or where a backing change
// failed after its record was written), and an in-memory one of the regions the journal's
// records touch (so that switching to the bitmap loses nothing the journal held).
//
// Thread-safety: none. REQUIRES: the caller serializes every call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace blockrep {

class DirtyBitmap {
 public:
  // Region size: small enough that a resync sends little beyond what changed, large enough
  // that the bitmap of a 1 TiB disk is 2 MiB.
  static constexpr uint64_t kRegionBytes = 64u << 10;
  static constexpr char kMagic[8] = {'B', 'R', 'B', 'I', 'T', 'M', 'A', 'P'};
  static constexpr uint32_t kVersion = 1;
  static constexpr size_t kHeaderBytes = 4096;
  // Bits are written back one page (4096 bytes = 32768 regions = 2 GiB of disk) at a time.
  static constexpr size_t kPageBytes = 4096;

  explicit DirtyBitmap(uint64_t disk_bytes);

  uint64_t disk_bytes() const { return disk_bytes_; }
  uint64_t regions() const { return regions_; }

  // Sets the bits of every region [offset, offset + length) touches. Returns true if any bit
  // was clear; appends the index of each page that changed (no duplicates) to *pages if
  // given.
  bool Mark(uint64_t offset, uint64_t length, std::vector<uint32_t>* pages = nullptr);
  void MarkAll();
  // True when every region [offset, offset + length) touches is set.
  bool AllSet(uint64_t offset, uint64_t length) const;
  // Appends the pages holding the bits of [offset, offset + length).
  void PagesOf(uint64_t offset, uint64_t length, std::vector<uint32_t>* pages) const;
  void Merge(const DirtyBitmap& other);  // REQUIRES same disk size
  // Clears every bit set in other. REQUIRES same disk size.
  void Subtract(const DirtyBitmap& other);
  void Clear();
  bool Test(uint64_t region) const;
  uint64_t dirty_regions() const { return dirty_; }
  bool empty() const { return dirty_ == 0; }
  // Dirty ranges, merged where adjacent, clipped to the disk: (offset, length).
  std::vector<std::pair<uint64_t, uint64_t>> Ranges() const;

  // The persistent form. Page p of the bits lives at file offset kHeaderBytes + p*kPageBytes.
  size_t pages() const { return bits_.size() / kPageBytes; }
  const uint8_t* page(uint32_t p) const { return bits_.data() + size_t{p} * kPageBytes; }
  static uint64_t PageFileOffset(uint32_t p) { return kHeaderBytes + uint64_t{p} * kPageBytes; }
  uint64_t FileBytes() const { return kHeaderBytes + bits_.size(); }
  void EncodeHeader(uint8_t out[kHeaderBytes]) const;
  // Writes header and bits in place into an open bitmap file (bits only ever get set between
  // resyncs, so a torn rewrite still holds every bit the old file held), then fdatasync.
  Status WriteTo(int fd, const std::string& path) const;

  // Writes the whole file (header and bits) to path, durably (temp file, fdatasync,
  // rename, directory fsync).
  Status Save(const std::string& path) const;
  // Reads a bitmap file; fails on a bad magic, version, checksum, region size or a disk size
  // other than disk_bytes.
  static Result<DirtyBitmap> Load(const std::string& path, uint64_t disk_bytes);

 private:
  uint64_t disk_bytes_;
  uint64_t regions_;
  uint64_t dirty_ = 0;
  std::vector<uint8_t> bits_;  // region r: byte r / 8, bit r % 8; padded to whole pages
};

}  // namespace blockrep
