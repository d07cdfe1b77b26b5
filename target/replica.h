// Replica: one disk as blockrep-target keeps it (docs/formats/replica.md): the replica
// image, its state file, and the target journal that makes what the target acknowledges
// durable and lets a resync keep the last consistent image untouched until it completes.
//
// A ReplicaSession (target/replica_session.h) drives it: Check() and Start() for the
// handshake, then for each group of batches Item() for every item in stream order and
// Commit() to make the group durable (then it is acknowledged) and apply it.
//
// Thread-safety: none; one session at a time owns a Replica (ReplicaSet hands it over).
// Status() may be called from other threads: it reads a snapshot under its own lock.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/repl_wire.h"
#include "core/status.h"
#include "core/unique_fd.h"
#include "core/journal_writer.h"

namespace blockrep {

class Replica {
 public:
  struct Config {
    std::string name;
    std::string source_identity;  // the certificate CN allowed to send this disk
    std::string dir;              // STATE_DIR/replicas/NAME
    std::string image_path;       // empty: dir/replica.img
  };
  // Locks the directory and recovers what is there (journal replay, unless held). A replica
  // that was never created stays "new" until Start().
  static Result<std::unique_ptr<Replica>> Open(const Config& config);
  ~Replica();

  const std::string& name() const { return config_.name; }
  const Config& config() const { return config_; }
  repl::ReplicaState state() const { return state_; }
  uint64_t durable_through() const { return durable_through_; }
  uint64_t sync_cursor() const { return sync_cursor_; }
  uint64_t generation() const { return generation_; }
  const repl::DiskId& disk_id() const { return disk_id_; }
  uint64_t disk_bytes() const { return disk_bytes_; }
  // Set when the target's own files are damaged: the replica refuses sources until fixed.
  const std::string& error() const { return error_; }

  // HELLO: may this source send this disk? kOk, or the code and *why.
  repl::ErrorCode Check(const repl::Hello& hello, const std::string& identity, std::string* why) const;
  // START: sets the replica up for the mode (creating it for kInitial). Errors carry the
  // protocol's code in *code (kBadStream for a START that does not fit, kNoSpace, kIoError).
  Status Start(const repl::Start& start, const repl::Hello& hello, const std::string& identity,
               repl::ErrorCode* code);

  // One item of the stream, in order (validated by repl::ItemReader). data stays valid until
  // Commit() returns. *commit_first: the item (a verify request) must be answered after
  // everything before it is applied: call Commit() and then Item() again with it.
  Status Item(const repl::ItemHeader& h, const uint8_t* data, bool* commit_first);
  // Makes everything since the last commit durable, with `through` as the durable source
  // seq, then applies it and acts on SYNC_END. Errors carry a protocol code in *code.
  Status Commit(uint64_t through, repl::ErrorCode* code);
  // Frames to send back (HASHES, VERIFY_HASHES), in order; taken by the session.
  std::vector<std::pair<repl::MsgType, std::vector<uint8_t>>> TakeReplies();
  // True when the group holds something to commit.
  bool group_open() const { return group_items_ > 0; }
  // Forgets a group that will not be committed (its session ended): nothing of it was
  // acknowledged, and the source sends it again.
  void AbandonGroup();

  // Periodic: fdatasync the image, checkpoint, delete applied journal segments.
  Status Checkpoint();
  // At a clean stop, after the last session: makes the image durable and records its
  // stamp (inode, size, mtime, ctime) as "closed cleanly" in replica.json, so that the next
  // Open finds an image changed by hand meanwhile (docs/formats/replica.md, "Changed by
  // hand"). Open clears the mark, so a crash leaves none.
  Status Close();
  // Why the replica is in state "changed" (empty otherwise).
  const std::string& changed_why() const { return changed_why_; }

  // For `blockrep status` on the target (thread-safe).
  nlohmann::json StatusJson() const;

  // Stream counters, updated by the session.
  void CountReceived(uint64_t wire_bytes);

 private:
  explicit Replica(Config config) : config_(std::move(config)) {}
  Status Recover();
  Status LoadState();
  // closing: also record the image's stamp as closed cleanly (Close()).
  Status SaveState(bool closing = false);
  // Compares the image with the stamp LoadState read: a different inode always means
  // "changed"; a different mtime or ctime does when the target closed cleanly. Returns
  // how it changed, or "".
  std::string CheckImageStamp() const;
  Status OpenImage(bool create);
  Status OpenJournal(bool fresh);
  // Reserves and encodes a record of the target journal; its bytes are written by the next
  // FlushAppends (payload must stay valid until then; a marker's body is copied).
  Result<uint64_t> Append(journal::RecordKind kind, uint16_t flags, uint64_t offset,
                          uint64_t length, const uint8_t* payload, uint32_t payload_bytes,
                          journal::MarkerType marker, uint64_t timestamp_ns);
  // Writes every appended record: one pwritev per run of records that lie back to back in
  // one segment (a batch of 4 KiB writes costs a handful of system calls, not one each).
  Status FlushAppends();
  // Gives up what was appended and not written (a failed group): void markers for the seqs.
  void DropAppends();
  Status SyncJournal();
  // Applies one change to the image.
  Status ApplyToImage(journal::RecordKind kind, uint64_t offset, uint64_t length, const uint8_t* data);
  // Applies every committed record with a target seq in [from, below) (not voided) to the
  // image, in order.
  Status Replay(uint64_t from, uint64_t below, uint64_t* applied);
  Status HashChunk(uint64_t offset, uint64_t length, std::vector<uint64_t>* hashes);
  void Publish();  // copies the fields Status() shows under status_mu_

  Config config_;
  UniqueFd lock_fd_;
  UniqueFd image_fd_;
  bool image_is_block_device_ = false;
  std::unique_ptr<JournalWriter> journal_;
  uint64_t journal_id_ = 0;
  std::string journal_dir_;

  bool exists_ = false;
  repl::ReplicaState state_ = repl::ReplicaState::kNew;
  uint64_t durable_through_ = 0;
  uint64_t sync_cursor_ = 0;
  uint64_t generation_ = 0;
  repl::DiskId disk_id_{};
  uint64_t disk_bytes_ = 0;
  std::string source_;
  uint64_t hold_from_ = 0;
  std::string created_;
  std::string error_;
  std::string changed_why_;
  // The image's stamp as replica.json recorded it (LoadState).
  struct ImageStamp {
    uint64_t inode = 0, size = 0, mtime_ns = 0, ctime_ns = 0;
  };
  bool stamp_known_ = false;
  bool closed_cleanly_ = false;
  ImageStamp stamp_;

  // The open group.
  struct Pending {
    journal::RecordKind kind;
    uint64_t offset;
    uint64_t length;
    const uint8_t* data;
    bool direct;  // initial copy: applied straight to the image
  };
  std::vector<Pending> pending_;  // to apply after the commit, in order
  struct Appended {
    JournalWriter::Slot slot;
    uint8_t header[journal::kRecordHeaderBytes];
    const uint8_t* payload;
    uint32_t payload_bytes;
    std::string body;  // a marker's body, owned here
  };
  std::deque<Appended> appended_;  // reserved and encoded, not yet written
  uint64_t group_first_seq_ = 0;
  uint32_t group_items_ = 0;
  bool group_wrote_image_ = false;
  bool sync_end_ = false;
  uint64_t group_cursor_ = 0;     // a SYNC_CURSOR in the open group: durable at its commit
  bool group_has_cursor_ = false;
  std::vector<std::pair<repl::MsgType, std::vector<uint8_t>>> replies_;
  std::vector<uint64_t> scratch_hashes_;
  std::vector<uint8_t> scratch_;

  uint64_t applied_below_ = 1;        // target seqs below this are in the image
  // In sync: a committed group failed to reach the image (ENOSPC, EIO) from this target seq
  // on (0: none). The next commit applies it from the journal first: it is durable and
  // acknowledged-to-be, and the source will not send it again.
  uint64_t unapplied_from_ = 0;
  uint64_t image_synced_below_ = 1;   // ... and the image was fdatasync'ed since

  mutable std::mutex status_mu_;
  nlohmann::json status_;             // guarded by status_mu_
  uint64_t received_wire_bytes_ = 0;  // guarded by status_mu_
  uint64_t applied_bytes_ = 0;
  uint64_t held_bytes_ = 0;
};

}  // namespace blockrep
