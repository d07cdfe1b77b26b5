// ExtentMap: which bytes of a disk read from where, for a view of a replica at a recovery
// point (docs/formats/retention.md, "Views"): the base image, overwritten by the retained
// journal's records in order. Each Set() says "this range now reads from there", the later
// call winning where ranges overlap; Lookup() splits a range into pieces that read from one
// place each (or from the base, where nothing was set).
//
// Kept as non-overlapping extents in an ordered map; neighbours that continue each other
// (the same file, contiguous in it; or both zero) are joined, so a sequential stream of
// writes stays one extent. Set() and Lookup() cost O(log n + extents touched).
//
// Thread-safety: none. Lookup() is const and may run in several threads at once while no
// Set() runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace blockrep {

struct ExtentSource {
  enum class Kind : uint8_t {
    kData,  // bytes at file_offset.. in file `file` (e.g. a journal segment's payload)
    kZero,  // reads as zeros (a zero or trim record)
  };
  Kind kind = Kind::kData;
  uint32_t file = 0;         // kData: which file (the caller's numbering)
  uint64_t file_offset = 0;  // kData: where the extent's first byte is in that file

  bool operator==(const ExtentSource&) const = default;
};

class ExtentMap {
 public:
  // One piece of a looked-up range: [offset, offset + length) reads from `source` (its
  // file_offset already advanced to the piece's first byte), or from the base when !mapped.
  struct Piece {
    uint64_t offset = 0;
    uint64_t length = 0;
    bool mapped = false;
    ExtentSource source;
  };

  // From now on [offset, offset + length) reads from `source`. length 0 does nothing.
  void Set(uint64_t offset, uint64_t length, const ExtentSource& source);

  // Appends to *out the pieces of [offset, offset + length), in order, covering it exactly
  // (unmapped gaps included as pieces with mapped = false).
  void Lookup(uint64_t offset, uint64_t length, std::vector<Piece>* out) const;

  size_t extent_count() const { return extents_.size(); }
  uint64_t mapped_bytes() const { return mapped_bytes_; }
  void Clear();

 private:
  struct Extent {
    uint64_t end;  // one past the last byte
    ExtentSource source;
  };
  using Map = std::map<uint64_t, Extent>;  // keyed by the first byte

  // The source of the bytes from `delta` bytes into an extent whose first byte reads from s.
  // The first extent that ends after offset: the one containing it, or the next one.
  Map::const_iterator FirstEndingAfter(uint64_t offset) const;
  static ExtentSource Advance(const ExtentSource& s, uint64_t delta);
  // True if an extent reading from `a` and ending where one reading from `b` starts can be
  // one extent (a then continues into b).
  static bool Continues(const ExtentSource& a, uint64_t a_length, const ExtentSource& b);

  Map extents_;
  uint64_t mapped_bytes_ = 0;
};

}  // namespace blockrep
