// FuseFront: the FUSE front door (contract in fuse_front.h).
//
// Why libfuse's low-level API (fuse_lowlevel.h) rather than the high-level one (fuse.h):
//  - The tree is fixed (a root directory and one file per disk), so inode numbers are all the
//    naming we need; the high-level API's path strings, node table and its locks buy nothing.
//  - Replies are explicit (fuse_reply_*): a handler answers exactly when its Backend call has
//    completed, with the Backend's errno.
//  - The request loop is ours (fuse_session_receive_buf/process_buf). libfuse's
//    fuse_session_loop_mt blocks its threads in read(2) on /dev/fuse and ends only when the
//    connection ends (or a signal libfuse handles interrupts it); when a loop device keeps a
//    file open the mount can only be detached lazily, the connection lives on, and ending that
//    loop would mean aborting the connection under requests a worker is still answering. And
//    its threads could not drive an IoRing while idle (below).
//
// Threads: `threads` workers, started by Start(). Each owns an IoRing (created on the thread, as
// IORING_SETUP_SINGLE_ISSUER requires, and published in a thread_local for the handlers) and a
// read buffer. The ring is the worker's only wait point: /dev/fuse (non-blocking) and a stop
// eventfd are watched with IORING_OP_POLL_ADD, so work the WritePath leaves on the ring after
// answering (or sends to it from other threads with IORING_OP_MSG_RING) is dispatched while
// the worker is idle too. A worker takes one request at a time and drives its ring until that
// request's Backend call completes; the kernel keeps many requests in flight (async direct
// I/O, max_background), so the workers run in parallel. Stop() makes each finish the request
// in hand and exit.
//
// Request sizes: libfuse 3.14 reads each request into a buffer of FUSE_MAX_MAX_PAGES (256)
// pages, so max_write is at most 1 MiB on 4 KiB pages; we ask for kMaxFuseIoBytes (1 MiB) and
// libfuse advertises max_pages to match, which also caps direct-I/O reads at 1 MiB. No read or
// write reaches nbd::kMaxRequestBytes, but the handlers split at it anyway.
//
// Not used: parallel_direct_writes (FOPEN_PARALLEL_DIRECT_WRITES) needs libfuse 3.15; with 3.14
// the kernel serialises direct writes to one file while it submits them (async direct I/O
// still keeps several in flight). allow_other: the files are mode 0600 and owned by the daemon's
// user (root), so other users gain nothing from it, and it would need /etc/fuse.conf changes
// for a non-root daemon; loop devices set up by root work without it.
#define FUSE_USE_VERSION 314
#include "daemon/fuse_front.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/falloc.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>

#include "core/check.h"
#include "core/io_ring.h"
#include "core/log.h"
#include "core/unique_fd.h"
#include "daemon/fuse_mount_dir.h"
#include "nbd/protocol.h"

namespace blockrep {
namespace {

// Largest READ or WRITE we let the kernel send (see the top comment); each worker's read
// buffer has this size.
constexpr uint32_t kMaxFuseIoBytes = 1u << 20;
// Largest piece of one fallocate passed to Backend::Trim/WriteZeroes. NBD clients can ask for at
// most 4 GiB - 1 in one request; staying under that keeps FUSE inside what the Backend already
// sees from NBD, and bounds how long one piece of a slow (written) zeroing takes.
constexpr uint64_t kMaxRangeBytes = 1ull << 30;
// Attributes never change (the size is fixed; times are the mount's), so the kernel may cache
// them and the names for a while.
constexpr double kAttrTimeoutSeconds = 60.0;
// Each worker waits on one Backend call at a time, which needs a few SQEs at most.
constexpr unsigned kWorkerRingEntries = 64;
// Asynchronous direct-I/O requests the kernel may queue for us (libfuse's default is 12); a
// loop device keeps many in flight. The kernel marks the connection congested at 3/4 of it.
constexpr unsigned kMaxBackgroundRequests = 64;
// How long Start() waits for the kernel's INIT, and Stop() retries a plain unmount that is
// busy because a closed file's release is still on its way (losetup -d returns before the
// loop device's file is released).
constexpr auto kInitTimeout = std::chrono::seconds(10);
constexpr auto kBusyUnmountRetry = std::chrono::milliseconds(1000);
constexpr auto kBusyUnmountStep = std::chrono::milliseconds(50);
// Largest readdir reply we build; the kernel asks for a page.
constexpr size_t kMaxDirReplyBytes = 64 * 1024;
// The first disk's inode number; the root is FUSE_ROOT_ID (1).
constexpr fuse_ino_t kFirstFileIno = 2;
// fi->fh: the disk index in the low 32 bits, plus these bits: opened with O_DSYNC or O_SYNC
// (writes, zeroes and trims through it are then FUA); opened for writing (its close flushes).
constexpr uint64_t kFhDsync = 1ull << 32;
constexpr uint64_t kFhWritable = 1ull << 33;

// fsname and subtype name the mount "blockrep" of type fuse.blockrep (kFuseFsType: findmnt, the
// stale-mount check); default_permissions has the kernel enforce the files' 0600 mode.
constexpr char kMountOptions[] = "fsname=blockrep,subtype=blockrep,default_permissions";

// The worker's ring and read buffer, for the handlers it runs (set by FuseMount::RunWorker).
thread_local IoRing* t_ring = nullptr;
thread_local uint8_t* t_read_buf = nullptr;

// ---- libfuse's log -----------------------------------------------------------------------------

std::mutex g_libfuse_error_mu;
std::string g_libfuse_last_error;  // guarded by g_libfuse_error_mu

// libfuse logs through this instead of writing to stderr itself; its last error is kept so
// that a failed mount can say why.
void LogFromLibfuse(enum fuse_log_level level, const char* fmt, va_list ap) {
  char line[512];
  std::vsnprintf(line, sizeof(line), fmt, ap);
  size_t n = std::strlen(line);
  while (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
  if (level <= FUSE_LOG_ERR) {
    {
      std::lock_guard<std::mutex> lock(g_libfuse_error_mu);
      g_libfuse_last_error = line;
    }
    LOG_ERROR("libfuse: %s", line);
  } else if (level <= FUSE_LOG_WARNING) {
    LOG_WARN("libfuse: %s", line);
  } else {
    LOG_DEBUG("libfuse: %s", line);
  }
}

std::string TakeLibfuseError() {
  std::lock_guard<std::mutex> lock(g_libfuse_error_mu);
  std::string e = std::move(g_libfuse_last_error);
  g_libfuse_last_error.clear();
  return e.empty() ? "no message from libfuse" : e;
}

// ---- waiting for a Backend call ----------------------------------------------------------------

// Submits what is queued, waits for at least one completion and dispatches every ready one.
void DispatchOrDie(IoRing& ring) {
  auto dispatched = ring.SubmitAndDispatch(1);
  if (!dispatched.ok()) {
    // As in nbd::Worker: a failing io_uring_enter is not retryable, and giving up on a wait
    // would let the kernel write into buffers that are reused.
    LOG_ERROR("FUSE worker: %s", dispatched.status().ToString().c_str());
    std::abort();
  }
}

// A one-shot IORING_OP_POLL_ADD's completion: the fd is readable (or in error, which the read
// that follows reports).
struct Readiness final : IoCompletion {
  bool fired = false;
  void OnIoComplete(int32_t) override { fired = true; }
};

void ArmPoll(IoRing& ring, int fd, Readiness* ready) {
  ready->fired = false;
  io_uring_prep_poll_add(ring.GetSqe(ready), fd, POLLIN);
}

class BackendWait final : public nbd::BackendDone {
 public:
  void OnDone(int err) override {
    err_ = err;
    done_ = true;
  }

  // Dispatches the ring's completions until this call's own has run, and returns its error (0
  // or -errno). Completions for other operations (the WritePath may wake any operation waiting
  // on this ring, from another thread, with IORING_OP_MSG_RING) are dispatched on the way.
  int Wait(IoRing& ring) {
    while (!done_) DispatchOrDie(ring);
    return err_;
  }

 private:
  bool done_ = false;
  int err_ = 0;
};

// An errno for fuse_reply_err from a Backend result. ENOSYS is never passed on: the kernel
// would take it to mean "never send this request again" (fallocate, flush, fsync).
int ReplyErrno(int err) {
  int e = err < 0 ? -err : err;
  if (e <= 0 || e >= 4096 || e == ENOSYS) e = EIO;
  return e;
}

// ---- the file system ---------------------------------------------------------------------------

class FuseMount {
 public:
  FuseMount(std::string dir, std::vector<FuseFront::File> files);
  ~FuseMount();

  Status Start(int threads);
  void Stop();

 private:
  struct Disk {
    std::string name;
    nbd::Backend* backend;
    uint64_t size_bytes;
    std::atomic<int> open_handles{0};  // open file handles (for Stop's warning)
  };

  static FuseMount* Self(fuse_req_t req) { return static_cast<FuseMount*>(fuse_req_userdata(req)); }
  static fuse_lowlevel_ops Ops();

  // Request handlers (worker threads).
  void Init(fuse_conn_info* conn);
  void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  void GetAttr(fuse_req_t req, fuse_ino_t ino);
  void SetAttr(fuse_req_t req, fuse_ino_t ino, const struct stat* attr, int to_set);
  void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off);
  void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info* fi);
  void Sync(fuse_req_t req, fuse_ino_t ino);
  void Release(fuse_req_t req, fuse_ino_t ino);
  void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                 fuse_file_info* fi);
  void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off);
  void StatFs(fuse_req_t req);

  Disk* DiskOf(fuse_ino_t ino) {
    if (ino < kFirstFileIno || ino - kFirstFileIno >= disks_.size()) return nullptr;
    return disks_[ino - kFirstFileIno].get();
  }
  struct stat AttrOf(fuse_ino_t ino) const;

  void RunWorker(int index, std::promise<Status>* started);
  void UnmountWhileServing();
  void StopWorkers();

  const std::string dir_;  // as given, for messages
  std::string mount_dir_;  // absolute, resolved
  std::vector<std::unique_ptr<Disk>> disks_;
  const uid_t uid_ = ::geteuid();
  const gid_t gid_ = ::getegid();
  struct timespec mount_time_ {};

  fuse_session* session_ = nullptr;
  bool mounted_ = false;
  UniqueFd stop_fd_;  // eventfd, readable once the workers must exit
  std::vector<std::thread> workers_;
  std::atomic<bool> stopping_{false};  // Stop() began: the connection may end
  bool stopped_ = false;

  std::mutex mu_;
  std::condition_variable init_cv_;
  bool init_done_ = false;         // guarded by mu_
  bool connection_ended_ = false;  // guarded by mu_

  std::atomic<uint64_t> reads_{0}, writes_{0}, largest_read_{0}, largest_write_{0};
};

FuseMount::FuseMount(std::string dir, std::vector<FuseFront::File> files) : dir_(std::move(dir)) {
  for (FuseFront::File& f : files) {
    auto d = std::make_unique<Disk>();
    d->name = std::move(f.name);
    d->backend = f.backend;
    d->size_bytes = f.backend->size_bytes();
    disks_.push_back(std::move(d));
  }
  ::clock_gettime(CLOCK_REALTIME, &mount_time_);
}

FuseMount::~FuseMount() { Stop(); }

fuse_lowlevel_ops FuseMount::Ops() {
  fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof(ops));
  ops.init = [](void* self, fuse_conn_info* conn) { static_cast<FuseMount*>(self)->Init(conn); };
  ops.lookup = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
    Self(req)->Lookup(req, parent, name);
  };
  ops.getattr = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    Self(req)->GetAttr(req, ino);
  };
  ops.setattr = [](fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
    Self(req)->SetAttr(req, ino, attr, to_set);
  };
  ops.open = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    Self(req)->Open(req, ino, fi);
  };
  ops.read = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    Self(req)->Read(req, ino, size, off);
  };
  ops.write = [](fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                 fuse_file_info* fi) { Self(req)->Write(req, ino, buf, size, off, fi); };
  // flush runs on every close(2) of a descriptor: a writer's close makes its writes durable
  // (close-to-open durability, as NBD clients get from a flush).
  ops.flush = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    if (!(fi->fh & kFhWritable)) return (void)fuse_reply_err(req, 0);  // nothing to make durable
    Self(req)->Sync(req, ino);
  };
  ops.fsync = [](fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
    Self(req)->Sync(req, ino);
  };
  ops.release = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    Self(req)->Release(req, ino);
  };
  ops.fallocate = [](fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                     fuse_file_info* fi) {
    Self(req)->Fallocate(req, ino, mode, offset, length, fi);
  };
  ops.readdir = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    Self(req)->ReadDir(req, ino, size, off);
  };
  ops.statfs = [](fuse_req_t req, fuse_ino_t) { Self(req)->StatFs(req); };
  // The directory holds exactly the disks: nothing is created, removed or renamed.
  ops.mknod = [](fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) {
    fuse_reply_err(req, EPERM);
  };
  ops.mkdir = [](fuse_req_t req, fuse_ino_t, const char*, mode_t) { fuse_reply_err(req, EPERM); };
  ops.unlink = [](fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EPERM); };
  ops.rmdir = [](fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EPERM); };
  ops.symlink = [](fuse_req_t req, const char*, fuse_ino_t, const char*) {
    fuse_reply_err(req, EPERM);
  };
  ops.rename = [](fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) {
    fuse_reply_err(req, EPERM);
  };
  ops.link = [](fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) {
    fuse_reply_err(req, EPERM);
  };
  ops.create = [](fuse_req_t req, fuse_ino_t, const char*, mode_t, fuse_file_info*) {
    fuse_reply_err(req, EPERM);
  };
  return ops;
}

// ---- request handlers --------------------------------------------------------------------------

void FuseMount::Init(fuse_conn_info* conn) {
  conn->max_write = std::min(conn->max_write, kMaxFuseIoBytes);
  conn->max_background = kMaxBackgroundRequests;
  conn->congestion_threshold = kMaxBackgroundRequests * 3 / 4;
  // The page cache stays out of it (direct_io): no writeback cache, no splicing.
  conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
                  FUSE_CAP_SPLICE_MOVE);
  LOG_INFO("FUSE on %s: protocol %u.%u, max_write %u bytes", mount_dir_.c_str(), conn->proto_major,
           conn->proto_minor, conn->max_write);
  std::lock_guard<std::mutex> lock(mu_);
  init_done_ = true;
  init_cv_.notify_all();
}

struct stat FuseMount::AttrOf(fuse_ino_t ino) const {
  struct stat st;
  std::memset(&st, 0, sizeof(st));
  st.st_ino = ino;
  st.st_uid = uid_;
  st.st_gid = gid_;
  st.st_atim = st.st_mtim = st.st_ctim = mount_time_;
  st.st_blksize = 4096;
  if (ino == FUSE_ROOT_ID) {
    st.st_mode = S_IFDIR | 0755;
    st.st_nlink = 2;
    return st;
  }
  const Disk& d = *disks_[ino - kFirstFileIno];
  st.st_mode = S_IFREG | 0600;
  st.st_nlink = 1;
  st.st_size = static_cast<off_t>(d.size_bytes);
  st.st_blocks = static_cast<blkcnt_t>((d.size_bytes + 511) / 512);
  return st;
}

void FuseMount::Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (parent != FUSE_ROOT_ID) return (void)fuse_reply_err(req, ENOTDIR);
  for (size_t i = 0; i < disks_.size(); ++i) {
    if (disks_[i]->name != name) continue;
    fuse_entry_param e;
    std::memset(&e, 0, sizeof(e));
    e.ino = kFirstFileIno + i;
    e.generation = 1;
    e.attr = AttrOf(e.ino);
    e.attr_timeout = kAttrTimeoutSeconds;
    e.entry_timeout = kAttrTimeoutSeconds;
    return (void)fuse_reply_entry(req, &e);
  }
  fuse_reply_err(req, ENOENT);
}

void FuseMount::GetAttr(fuse_req_t req, fuse_ino_t ino) {
  if (ino != FUSE_ROOT_ID && DiskOf(ino) == nullptr) return (void)fuse_reply_err(req, ENOENT);
  struct stat st = AttrOf(ino);
  fuse_reply_attr(req, &st, kAttrTimeoutSeconds);
}

// A disk's size is fixed: truncating to another size fails with EPERM (as for any file whose
// size may not change); truncating to its own size (mkfs, losetup and dd may) succeeds. The
// owner and mode are fixed too; setting the values they have succeeds. Time changes succeed
// and are not kept (times are the mount's).
void FuseMount::SetAttr(fuse_req_t req, fuse_ino_t ino, const struct stat* attr, int to_set) {
  if (ino != FUSE_ROOT_ID && DiskOf(ino) == nullptr) return (void)fuse_reply_err(req, ENOENT);
  const struct stat cur = AttrOf(ino);
  if ((to_set & FUSE_SET_ATTR_SIZE) && (ino == FUSE_ROOT_ID || attr->st_size != cur.st_size)) {
    return (void)fuse_reply_err(req, EPERM);
  }
  if ((to_set & FUSE_SET_ATTR_MODE) && (attr->st_mode & 07777) != (cur.st_mode & 07777)) {
    return (void)fuse_reply_err(req, EPERM);
  }
  if (((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != cur.st_uid) ||
      ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != cur.st_gid)) {
    return (void)fuse_reply_err(req, EPERM);
  }
  fuse_reply_attr(req, &cur, kAttrTimeoutSeconds);
}

void FuseMount::Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Disk* d = DiskOf(ino);
  if (d == nullptr) return (void)fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
  // With FUSE_CAP_ATOMIC_O_TRUNC, O_TRUNC arrives here rather than as a setattr.
  if (fi->flags & O_TRUNC) return (void)fuse_reply_err(req, EPERM);
  fi->fh = (ino - kFirstFileIno) | ((fi->flags & O_DSYNC) ? kFhDsync : 0) |
           ((fi->flags & O_ACCMODE) != O_RDONLY ? kFhWritable : 0);
  // No page cache for these files: every read and write comes here, so NBD clients of the
  // same disk and FUSE users see one disk.
  fi->direct_io = 1;
  fi->keep_cache = 0;
  d->open_handles.fetch_add(1);
  if (fuse_reply_open(req, fi) != 0) d->open_handles.fetch_sub(1);  // the open was interrupted
}

// Reads past the end return what is inside the disk (0 bytes at or after the end), like a
// regular file of fixed size.
void FuseMount::Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off) {
  Disk* d = DiskOf(ino);
  if (d == nullptr) return (void)fuse_reply_err(req, EBADF);
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  const uint64_t offset = static_cast<uint64_t>(off);
  if (offset >= d->size_bytes) return (void)fuse_reply_buf(req, nullptr, 0);
  // The kernel never asks for more than max_pages (= kMaxFuseIoBytes); a larger read would be
  // answered short, which read(2) allows.
  const uint64_t want = std::min<uint64_t>({size, d->size_bytes - offset, kMaxFuseIoBytes});
  uint64_t done = 0;
  while (done < want) {
    const uint32_t n =
        static_cast<uint32_t>(std::min<uint64_t>(want - done, nbd::kMaxRequestBytes));
    BackendWait wait;
    d->backend->Read(*t_ring, offset + done, n, t_read_buf + done, &wait);
    const int err = wait.Wait(*t_ring);
    if (err != 0) {
      if (done > 0) break;  // a short read of what succeeded
      return (void)fuse_reply_err(req, ReplyErrno(err));
    }
    done += n;
  }
  reads_.fetch_add(1, std::memory_order_relaxed);
  uint64_t largest = largest_read_.load(std::memory_order_relaxed);
  while (want > largest && !largest_read_.compare_exchange_weak(largest, want)) {
  }
  fuse_reply_buf(req, reinterpret_cast<const char*>(t_read_buf), done);
}

// Writes behave like writes to a block device: one that starts at or past the end fails with
// ENOSPC (the file cannot grow), one that crosses the end writes what fits and returns that
// (short) count. O_SYNC/O_DSYNC opens and RWF_DSYNC writes are FUA.
void FuseMount::Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                      fuse_file_info* fi) {
  Disk* d = DiskOf(ino);
  if (d == nullptr) return (void)fuse_reply_err(req, EBADF);
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  if (size == 0) return (void)fuse_reply_write(req, 0);
  const uint64_t offset = static_cast<uint64_t>(off);
  if (offset >= d->size_bytes) return (void)fuse_reply_err(req, ENOSPC);
  const uint64_t want = std::min<uint64_t>(size, d->size_bytes - offset);
  // fi->flags of a write is the file's flags plus O_DSYNC/O_SYNC for RWF_DSYNC/RWF_SYNC.
  const bool fua = (fi->flags & O_DSYNC) != 0 || (fi->fh & kFhDsync) != 0;
  const auto* data = reinterpret_cast<const uint8_t*>(buf);
  uint64_t done = 0;
  while (done < want) {
    const uint32_t n =
        static_cast<uint32_t>(std::min<uint64_t>(want - done, nbd::kMaxRequestBytes));
    BackendWait wait;
    d->backend->Write(*t_ring, offset + done, n, data + done, fua, &wait);
    const int err = wait.Wait(*t_ring);
    if (err != 0) {
      if (done > 0) break;  // a short write of what succeeded
      return (void)fuse_reply_err(req, ReplyErrno(err));
    }
    done += n;
  }
  writes_.fetch_add(1, std::memory_order_relaxed);
  uint64_t largest = largest_write_.load(std::memory_order_relaxed);
  while (want > largest && !largest_write_.compare_exchange_weak(largest, want)) {
  }
  fuse_reply_write(req, done);
}

void FuseMount::Sync(fuse_req_t req, fuse_ino_t ino) {
  Disk* d = DiskOf(ino);
  if (d == nullptr) return (void)fuse_reply_err(req, EBADF);
  BackendWait wait;
  d->backend->Flush(*t_ring, &wait);
  const int err = wait.Wait(*t_ring);
  fuse_reply_err(req, err == 0 ? 0 : ReplyErrno(err));
}

void FuseMount::Release(fuse_req_t req, fuse_ino_t ino) {
  if (Disk* d = DiskOf(ino)) d->open_handles.fetch_sub(1);
  fuse_reply_err(req, 0);
}

// PUNCH_HOLE|KEEP_SIZE -> Trim and ZERO_RANGE[|KEEP_SIZE] -> WriteZeroes (never deallocating),
// on the part of the range inside the disk; the file cannot grow, so a ZERO_RANGE without
// KEEP_SIZE that reaches past the end fails with ENOSPC before touching anything. Every other
// mode (plain allocation, COLLAPSE/INSERT_RANGE, ...) fails with EOPNOTSUPP.
void FuseMount::Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                          fuse_file_info* fi) {
  Disk* d = DiskOf(ino);
  if (d == nullptr) return (void)fuse_reply_err(req, EBADF);
  const bool trim = mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
  const bool zero =
      mode == FALLOC_FL_ZERO_RANGE || mode == (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE);
  if (!trim && !zero) return (void)fuse_reply_err(req, EOPNOTSUPP);
  if (off < 0 || len <= 0) return (void)fuse_reply_err(req, EINVAL);
  const uint64_t offset = static_cast<uint64_t>(off);
  const uint64_t length = static_cast<uint64_t>(len);
  if (length > UINT64_MAX - offset) return (void)fuse_reply_err(req, EINVAL);
  if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + length > d->size_bytes) {
    return (void)fuse_reply_err(req, ENOSPC);
  }
  if (offset >= d->size_bytes) return (void)fuse_reply_err(req, 0);
  const uint64_t end = std::min(offset + length, d->size_bytes);
  const bool fua = (fi->fh & kFhDsync) != 0;
  for (uint64_t at = offset; at < end;) {
    const uint64_t n = std::min(end - at, kMaxRangeBytes);
    BackendWait wait;
    if (trim) {
      d->backend->Trim(*t_ring, at, n, fua, &wait);
    } else {
      d->backend->WriteZeroes(*t_ring, at, n, /*may_trim=*/false, /*fast_only=*/false, fua, &wait);
    }
    const int err = wait.Wait(*t_ring);
    if (err != 0) return (void)fuse_reply_err(req, ReplyErrno(err));
    at += n;
  }
  fuse_reply_err(req, 0);
}

void FuseMount::ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off) {
  if (ino != FUSE_ROOT_ID) return (void)fuse_reply_err(req, ENOTDIR);
  std::vector<char> buf(std::min(size, kMaxDirReplyBytes));
  size_t used = 0;
  const size_t entries = 2 + disks_.size();  // ".", "..", the disks
  for (size_t i = off < 0 ? 0 : static_cast<size_t>(off); i < entries; ++i) {
    struct stat st;
    std::memset(&st, 0, sizeof(st));
    const char* name;
    if (i < 2) {
      name = i == 0 ? "." : "..";
      st.st_ino = FUSE_ROOT_ID;
      st.st_mode = S_IFDIR;
    } else {
      name = disks_[i - 2]->name.c_str();
      st.st_ino = kFirstFileIno + (i - 2);
      st.st_mode = S_IFREG;
    }
    const size_t need = fuse_add_direntry(req, nullptr, 0, name, nullptr, 0);
    if (used + need > buf.size()) break;
    fuse_add_direntry(req, buf.data() + used, buf.size() - used, name, &st,
                      static_cast<off_t>(i + 1));
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

// The disks fill the file system: no free space, no free inodes.
void FuseMount::StatFs(fuse_req_t req) {
  struct statvfs st;
  std::memset(&st, 0, sizeof(st));
  st.f_bsize = st.f_frsize = 4096;
  for (const auto& d : disks_) st.f_blocks += (d->size_bytes + 4095) / 4096;
  st.f_files = 1 + disks_.size();
  st.f_namemax = 255;
  fuse_reply_statfs(req, &st);
}

// ---- lifecycle ---------------------------------------------------------------------------------

Status FuseMount::Start(int threads) {
  auto abs = PrepareMountDir(dir_);
  if (!abs.ok()) return abs.status();
  mount_dir_ = std::move(abs.value());

  fuse_set_log_func(LogFromLibfuse);
  TakeLibfuseError();
  const fuse_lowlevel_ops ops = Ops();
  // No fuse_set_signal_handlers: main takes SIGTERM/SIGINT with sigwait.
  char arg0[] = "blockrep-source", arg1[] = "-o";
  std::string opts = kMountOptions;
  char* argv[] = {arg0, arg1, opts.data(), nullptr};
  fuse_args args = FUSE_ARGS_INIT(3, argv);
  session_ = fuse_session_new(&args, &ops, sizeof(ops), this);
  fuse_opt_free_args(&args);
  if (session_ == nullptr) return Status::IoError("fuse_session_new: " + TakeLibfuseError());
  if (fuse_session_mount(session_, mount_dir_.c_str()) != 0) {
    return Status::IoError("mounting FUSE on " + dir_ + ": " + TakeLibfuseError());
  }
  mounted_ = true;
  // Non-blocking, so a worker woken with the others for one request goes back to poll.
  const int fd = fuse_session_fd(session_);
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
    return Status::FromErrno(errno, "making /dev/fuse non-blocking for " + dir_);
  }
  stop_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_.valid()) return Status::FromErrno(errno, "eventfd");

  for (int i = 0; i < threads; ++i) {
    std::promise<Status> started;
    std::future<Status> result = started.get_future();
    workers_.emplace_back(&FuseMount::RunWorker, this, i, &started);
    Status st = result.get();
    if (!st.ok()) return st;
  }

  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!init_cv_.wait_for(lock, kInitTimeout, [&] { return init_done_ || connection_ended_; })) {
      return Status::IoError("FUSE on " + dir_ + ": the kernel sent no INIT within 10 s");
    }
    if (!init_done_) {
      return Status::IoError("FUSE on " + dir_ +
                             ": the connection ended during INIT: " + TakeLibfuseError());
    }
  }
  // Live: the kernel answers a look at the first file from our workers.
  const std::string first = mount_dir_ + "/" + disks_[0]->name;
  struct stat st;
  if (::stat(first.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + first);
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != disks_[0]->size_bytes) {
    return Status::IoError(first + " does not show the disk after mounting");
  }
  return Status::Ok();
}

void FuseMount::RunWorker(int index, std::promise<Status>* started) {
  auto created = IoRing::Create(kWorkerRingEntries);
  if (!created.ok()) {
    started->set_value(Status::IoError("FUSE worker " + std::to_string(index) + ": " +
                                       created.status().message()));
    return;
  }
  std::unique_ptr<IoRing> ring = std::move(created.value());
  std::unique_ptr<uint8_t, decltype(&std::free)> read_buf(
      static_cast<uint8_t*>(std::aligned_alloc(4096, kMaxFuseIoBytes)), &std::free);
  BLOCKREP_CHECK(read_buf != nullptr);
  t_ring = ring.get();
  t_read_buf = read_buf.get();
  started->set_value(Status::Ok());  // `started` is gone after this line

  // The ring is the worker's only wait point, as in nbd::Worker: /dev/fuse and the stop
  // eventfd are watched with IORING_OP_POLL_ADD, so completions the WritePath leaves on this
  // ring after a request was answered (or sends here from other threads) are dispatched while
  // the worker is idle too.
  Readiness fuse_ready, stop_ready;
  ArmPoll(*ring, fuse_session_fd(session_), &fuse_ready);
  ArmPoll(*ring, stop_fd_.get(), &stop_ready);
  fuse_buf buf;
  std::memset(&buf, 0, sizeof(buf));
  while (true) {
    while (!fuse_ready.fired && !stop_ready.fired) DispatchOrDie(*ring);
    if (stop_ready.fired) break;  // Stop(): every request this worker took is answered
    fuse_ready.fired = false;
    const int res = fuse_session_receive_buf(session_, &buf);
    if (res < 0 && res != -EAGAIN && res != -EINTR) {
      LOG_ERROR("FUSE worker %d: reading /dev/fuse: %s", index, std::strerror(-res));
      break;
    }
    if (fuse_session_exited(session_)) break;  // ENODEV: the file system was unmounted
    if (res > 0) fuse_session_process_buf(session_, &buf);
    if (fuse_session_exited(session_)) break;  // e.g. libfuse refused the kernel's INIT
    // Re-armed after the request: it fires at once if more are queued. -EAGAIN: another
    // worker, woken for the same request, took it.
    ArmPoll(*ring, fuse_session_fd(session_), &fuse_ready);
  }
  // A request's last completion may have queued SQEs that other rings wait for (an
  // IORING_OP_MSG_RING resuming another worker's operation): they must leave before the ring
  // goes.
  ring->Submit();
  std::free(buf.mem);
  t_ring = nullptr;
  t_read_buf = nullptr;
  ring.reset();

  std::lock_guard<std::mutex> lock(mu_);
  if (fuse_session_exited(session_) && !connection_ended_) {
    connection_ended_ = true;
    init_cv_.notify_all();
    if (!stopping_.load()) {
      LOG_WARN(
          "FUSE on %s ended (unmounted from outside?); the disk files are no longer served "
          "there until the daemon restarts",
          mount_dir_.c_str());
    }
  }
}

// A plain unmount while the workers still answer (an unmount may itself send requests). It is
// busy while something holds a file open, as a loop device does until `losetup -d` (and for a
// moment after: the loop device releases its file asynchronously, hence the retries). A mount
// still busy is detached lazily by Stop() once the workers are done; that is warned about here.
void FuseMount::UnmountWhileServing() {
  const auto deadline = std::chrono::steady_clock::now() + kBusyUnmountRetry;
  int err = 0;
  while (true) {
    if (::umount2(mount_dir_.c_str(), UMOUNT_NOFOLLOW) == 0) return;
    err = errno;
    if (err != EBUSY || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(kBusyUnmountStep);
  }
  if (err == EINVAL) return;  // no longer mounted: unmounted from outside already
  // Without CAP_SYS_ADMIN, fusermount3 (setuid root) unmounts for the mount's owner.
  if (err == EPERM && RunCommand({"fusermount3", "-u", "--", mount_dir_})) return;
  std::string holders;
  for (const auto& d : disks_) {
    if (d->open_handles.load() == 0) continue;
    const std::string path = mount_dir_ + "/" + d->name;
    std::vector<std::string> loops = LoopDevicesOf(path);
    holders += (holders.empty() ? "" : ", ") + path;
    for (size_t i = 0; i < loops.size(); ++i) holders += (i == 0 ? " (by " : ", ") + loops[i];
    if (!loops.empty()) holders += ")";
  }
  if (holders.empty()) holders = "something under " + mount_dir_ + " (a working directory?)";
  LOG_WARN(
      "FUSE: %s is still open (unmounting %s: %s); detaching it lazily: I/O to it fails from "
      "now on (detach loop devices with losetup -d before stopping the daemon)",
      holders.c_str(), mount_dir_.c_str(), std::strerror(err));
}

void FuseMount::StopWorkers() {
  if (stop_fd_.valid()) {
    const uint64_t one = 1;
    BLOCKREP_CHECK(::write(stop_fd_.get(), &one, sizeof(one)) == sizeof(one));
  }
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void FuseMount::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true);
  if (mounted_) UnmountWhileServing();
  StopWorkers();
  if (session_ != nullptr) {
    // Closes /dev/fuse, which ends the connection. If the mount is still attached (busy),
    // libfuse then detaches it lazily (umount2 MNT_DETACH, or fusermount3 -u -z without
    // privileges): whoever holds a file keeps it, but its requests, and those still queued in
    // the kernel (never acknowledged), fail with ENOTCONN. A mount already gone is left alone.
    fuse_session_unmount(session_);
    fuse_session_destroy(session_);
    session_ = nullptr;
  }
  if (mounted_) {
    LOG_INFO(
        "FUSE on %s stopped: %llu reads (largest %llu bytes), %llu writes (largest %llu "
        "bytes)",
        mount_dir_.c_str(), static_cast<unsigned long long>(reads_.load()),
        static_cast<unsigned long long>(largest_read_.load()),
        static_cast<unsigned long long>(writes_.load()),
        static_cast<unsigned long long>(largest_write_.load()));
  }
  mounted_ = false;
}

}  // namespace

struct FuseFront::Impl {
  explicit Impl(std::string dir, std::vector<File> files)
      : mount(std::move(dir), std::move(files)) {}
  FuseMount mount;
};

FuseFront::FuseFront(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FuseFront::~FuseFront() { Stop(); }

void FuseFront::Stop() { impl_->mount.Stop(); }

Result<std::unique_ptr<FuseFront>> FuseFront::Start(const std::string& dir, std::vector<File> files,
                                                    int threads) {
  if (files.empty()) return Status::InvalidArgument("--fuse " + dir + ": no disks to serve");
  if (threads < 1) return Status::InvalidArgument("--fuse " + dir + ": needs at least 1 thread");
  for (const File& f : files) BLOCKREP_CHECK(f.backend != nullptr && !f.name.empty());
  auto impl = std::make_unique<Impl>(dir, std::move(files));
  Status st = impl->mount.Start(threads);
  if (!st.ok()) return st;  // ~Impl stops what was started
  return std::unique_ptr<FuseFront>(new FuseFront(std::move(impl)));
}

}  // namespace blockrep
