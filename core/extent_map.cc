#include "core/extent_map.h"

#include <algorithm>
#include <iterator>

namespace blockrep {

ExtentSource ExtentMap::Advance(const ExtentSource& s, uint64_t delta) {
  ExtentSource out = s;
  if (out.kind == ExtentSource::Kind::kData) out.file_offset += delta;
  return out;
}

ExtentMap::Map::const_iterator ExtentMap::FirstEndingAfter(uint64_t offset) const {
  auto it = extents_.upper_bound(offset);
  if (it != extents_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end > offset) it = prev;
  }
  return it;
}

bool ExtentMap::Continues(const ExtentSource& a, uint64_t a_length, const ExtentSource& b) {
  if (a.kind != b.kind) return false;
  if (a.kind == ExtentSource::Kind::kZero) return true;
  return a.file == b.file && a.file_offset + a_length == b.file_offset;
}

void ExtentMap::Set(uint64_t offset, uint64_t length, const ExtentSource& source) {
  if (length == 0) return;
  const uint64_t end = offset + length;

  const auto first = FirstEndingAfter(offset);
  auto it = extents_.erase(first, first);  // erases nothing: the same position, non-const
  // Cut away everything in [offset, end), keeping the parts of the extents at its edges.
  while (it != extents_.end() && it->first < end) {
    const uint64_t start = it->first;
    const Extent e = it->second;
    it = extents_.erase(it);
    mapped_bytes_ -= e.end - start;
    if (start < offset) {  // the head stays
      extents_.emplace(start, Extent{offset, e.source});
      mapped_bytes_ += offset - start;
    }
    if (e.end > end) {  // the tail stays
      it = extents_.emplace(end, Extent{e.end, Advance(e.source, end - start)}).first;
      mapped_bytes_ += e.end - end;
      break;
    }
  }

  // Insert, joined with a neighbour it continues or that continues it.
  uint64_t new_start = offset;
  uint64_t new_end = end;
  ExtentSource new_source = source;
  auto next = extents_.lower_bound(end);
  if (next != extents_.end() && next->first == end && Continues(source, length, next->second.source)) {
    new_end = next->second.end;
    mapped_bytes_ -= next->second.end - next->first;
    extents_.erase(next);
  }
  auto after = extents_.lower_bound(offset);
  if (after != extents_.begin()) {
    auto prev = std::prev(after);
    if (prev->second.end == offset && Continues(prev->second.source, offset - prev->first, source)) {
      new_start = prev->first;
      new_source = prev->second.source;
      mapped_bytes_ -= prev->second.end - prev->first;
      extents_.erase(prev);
    }
  }
  extents_.emplace(new_start, Extent{new_end, new_source});
  mapped_bytes_ += new_end - new_start;
}

void ExtentMap::Lookup(uint64_t offset, uint64_t length, std::vector<Piece>* out) const {
  if (length == 0) return;
  const uint64_t end = offset + length;
  auto it = FirstEndingAfter(offset);
  uint64_t pos = offset;
  for (; it != extents_.end() && it->first < end; ++it) {
    const uint64_t start = std::max(it->first, pos);
    if (start > pos) out->push_back(Piece{pos, start - pos, false, {}});
    const uint64_t stop = std::min(it->second.end, end);
    out->push_back(Piece{start, stop - start, true, Advance(it->second.source, start - it->first)});
    pos = stop;
  }
  if (pos < end) out->push_back(Piece{pos, end - pos, false, {}});
}

void ExtentMap::Clear() {
  extents_.clear();
  mapped_bytes_ = 0;
}

}  // namespace blockrep
