// PointView: a replica disk as of a target-journal seq, read without copying the disk
// (docs/formats/retention.md, "Views"): the base image, overwritten by every record of the
// target journal from `from_seq` up to `through_seq`, in order. Opening builds an ExtentMap
// of where each byte reads from, out of the segments' indexes (core/journal_index.h) where
// they have one and a verifying scan of the rest; reads then come from the base, from
// record payloads in the journal segments, or are zero.
//
// Read-only: a view's writes (an overlay) and the retention index are later parts of
// issue 5. The journal segments the view reads must stay while it is open (the retention
// merge pins them).
//
// Thread-safety: Read() may run in several threads at once.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/extent_map.h"
#include "core/journal_format.h"
#include "core/status.h"
#include "core/unique_fd.h"

namespace blockrep {

class PointView {
 public:
  struct Options {
    std::string base_path;    // the base image (replica.img)
    std::string journal_dir;  // the target journal's segments
    uint64_t journal_id = 0;
    uint64_t disk_bytes = 0;
    uint64_t from_seq = 0;    // the first record not in the base (retention.md: base_through)
    uint64_t through_seq = 0; // the last record in the view
  };

  // Fails if the base cannot be opened (a base shorter than the disk is fine: the bytes past
  // its end read as zero), if the journal cannot be read, is corrupt, lacks a record up to
  // through_seq or ends before it (the view would not be the point's state), or holds a
  // record outside the disk.
  static Result<std::unique_ptr<PointView>> Open(const Options& options);

  // Reads [offset, offset + length) of the view into out. REQUIRES: inside the disk.
  Status Read(uint64_t offset, uint64_t length, uint8_t* out) const;

  uint64_t disk_bytes() const { return options_.disk_bytes; }
  uint64_t records() const { return records_; }  // records the view takes from the journal
  int indexed_segments() const { return indexed_segments_; }  // read from their indexes
  const ExtentMap& map() const { return map_; }

 private:
  explicit PointView(const Options& options) : options_(options) {}
  Status Add(uint64_t seq, journal::RecordKind kind, uint64_t offset, uint64_t length,
             const std::string& segment, uint64_t payload_offset);
  Status ReadFile(int fd, const std::string& what, uint64_t file_offset, uint64_t length,
                  uint8_t* out, bool zero_past_end) const;

  Options options_;
  UniqueFd base_fd_;
  std::vector<UniqueFd> segment_fds_;  // ExtentSource::file indexes it
  std::vector<std::string> segment_names_;
  std::map<std::string, uint32_t> file_of_;  // segment name -> index into segment_fds_
  ExtentMap map_;
  uint64_t records_ = 0;
  int indexed_segments_ = 0;
};

}  // namespace blockrep
