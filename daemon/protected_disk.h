// ProtectedDisk: one protected disk as blockrep-source holds it: the backing file or device,
// its state directory, and the WritePath every change goes through.
//
// Open() does everything that must happen before the disk is served:
//   - opens and locks the backing disk, and locks STATE_DIR/disks/NAME (one daemon per disk);
//   - on first use creates the state (journal.meta with a random journal id, journal/,
//     state.json, bitmap); later checks the disk still has the size the journal was made for;
//   - recovers the journal (daemon/journal_recovery.h): verified, and replayed into the disk
//     from the last checkpoint. A corrupt journal is moved aside to journal.corrupt-TIME/ for
//     inspection, the disk goes to the error state (state.json "error", every region dirty:
//     a full resync is required) and is still served;
//   - a disk in bitmap mode loads its bitmap (a journal left behind by a crash during the
//     switch is folded into it);
//   - marks the state "not cleanly shut down" until Close().
//
// Layout of STATE_DIR/disks/NAME/: journal.meta, journal/*.hrl (docs/formats/journal.md),
// state.json (docs/formats/disk-state.md), bitmap (docs/formats/bitmap.md), lock.
//
// Thread-safety: Open and Close from one thread; write_path() is thread-safe.
#pragma once

#include <memory>
#include <string>

#include "core/byte_size.h"
#include "core/file_io.h"
#include "core/status.h"
#include "core/unique_fd.h"
#include "daemon/backing_disk.h"
#include "daemon/write_path.h"

namespace blockrep {

class ProtectedDisk {
 public:
  struct Options {
    std::string state_dir;
    ByteSize journal_max;  // resolved against the disk's size once it is open
    FileIo* io = nullptr;  // FileIo::Direct() unless a test injects faults
    uint64_t segment_bytes_target = journal::kSegmentBytesTarget;
  };

  static Result<std::unique_ptr<ProtectedDisk>> Open(const std::string& name,
                                                     const std::string& path,
                                                     const Options& options);
  ~ProtectedDisk();

  const std::string& name() const { return disk_.name(); }
  BackingDisk& backing() { return disk_; }
  WritePath& write_path() { return *write_path_; }
  const std::string& dir() const { return dir_; }

  // Clean stop: see WritePath::Close. REQUIRES: nothing in flight.
  Status Close();

  // STATE_DIR/disks/NAME
  static std::string DiskDir(const std::string& state_dir, const std::string& name);

 private:
  ProtectedDisk(BackingDisk disk, std::string dir) : disk_(std::move(disk)), dir_(std::move(dir)) {}

  BackingDisk disk_;
  std::string dir_;
  UniqueFd lock_fd_;
  std::unique_ptr<WritePath> write_path_;
  bool closed_ = false;
};

}  // namespace blockrep
