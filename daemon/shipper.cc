#include "daemon/shipper.h"

#include <ctime>

#include "core/clock.h"
#include "core/byte_size.h"
#include "core/log.h"
#include "core/retry_schedule.h"
#include "daemon/journal_tail.h"
#include "daemon/ship_session.h"

namespace blockrep {
namespace {

const char* PhaseName(Shipper::Phase p) {
  switch (p) {
    case Shipper::Phase::kConnecting: return "connecting";
    case Shipper::Phase::kInitialCopy: return "initial-replication";
    case Shipper::Phase::kResyncing: return "resyncing";
    case Shipper::Phase::kProtected: return "protected";
    case Shipper::Phase::kRetryWait: return "disconnected";
    case Shipper::Phase::kPaused: return "paused";
    case Shipper::Phase::kError: return "error";
    case Shipper::Phase::kStopped: return "stopped";
  }
  return "?";
}


std::string Seconds(uint64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

}  // namespace

Shipper::Shipper(ProtectedDisk& disk, ReplicationOptions options)
    : disk_(disk), options_(std::move(options)), shared_(std::make_unique<Shared>()) {}

Shipper::~Shipper() { Stop(); }

const std::string& Shipper::name() const { return disk_.name(); }

void Shipper::Start() { thread_ = std::thread([this] { Run(); }); }

void Shipper::Stop() {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->stop = true;
    shared_->cv.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void Shipper::WaitUntil(uint64_t deadline_ms) {
  std::unique_lock<std::mutex> lock(shared_->mu);
  while (!shared_->stop && !shared_->retry_now && !shared_->resync_requested) {
    const uint64_t now = MonotonicMs();
    if (now >= deadline_ms) break;
    // Wake every lag sample period: the lag grows while the target is away.
    shared_->cv.wait_for(lock, std::chrono::milliseconds(
                                   std::min<uint64_t>(deadline_ms - now, LagTracker::kSampleMs)));
    lock.unlock();
    SampleLag();
    lock.lock();
  }
  shared_->retry_now = false;
}

// The lag while no session runs: the age of the oldest write the target does not have,
// read from the journal (the record after the last one the target acknowledged).
void Shipper::SampleLag() {
  uint64_t acked;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (!shared_->acked_known || shared_->connected) return;
    acked = shared_->acked_through;
  }
  const WritePath::JournalPosition pos = disk_.write_path().Position();
  uint64_t oldest = 0;
  if (pos.mode == DiskMode::kJournaling && pos.lowest_pending > acked + 1) {
    JournalTail tail(pos.journal_dir, pos.journal_id,
                     [this](uint64_t s) { return disk_.write_path().IsVoided(s); });
    JournalTail::Record rec;
    if (tail.Seek(acked + 1).ok()) {
      auto got = tail.Next(pos.lowest_pending, &rec);
      if (got.ok() && got.value() == JournalTail::Got::kRecord) oldest = rec.header.timestamp_ns;
    }
  }
  const uint64_t now_ns = WallClockNs();
  std::lock_guard<std::mutex> lock(shared_->mu);
  shared_->oldest_unacked_ns = oldest;
  if (shared_->replica_state == repl::ReplicaState::kInSync) {
    shared_->lag.Sample(MonotonicMs(), oldest != 0 && now_ns > oldest ? (now_ns - oldest) / 1000000 : 0);
  }
}

void Shipper::Run() {
  auto ring = IoRing::Create(64);
  if (!ring.ok()) {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->phase = Phase::kError;
    shared_->error = "cannot create an io_uring: " + ring.status().message();
    LOG_ERROR("disk %s: %s", name().c_str(), shared_->error.c_str());
    return;
  }
  while (true) {
    {
      std::unique_lock<std::mutex> lock(shared_->mu);
      while (!shared_->stop && (shared_->paused || shared_->phase == Phase::kError)) {
        if (shared_->paused) shared_->phase = Phase::kPaused;
        shared_->cv.wait_for(lock, std::chrono::milliseconds(LagTracker::kSampleMs));
        lock.unlock();
        SampleLag();
        lock.lock();
      }
      if (shared_->stop) break;
      shared_->resync_requested = false;
      shared_->retry_now = false;
      shared_->phase = Phase::kConnecting;
      ++shared_->connect_attempts;
    }
    bool fatal = false;
    Status st;
    {
      ShipSession session(disk_, options_, *shared_, *ring.value());
      st = session.Run(&fatal);
    }
    std::unique_lock<std::mutex> lock(shared_->mu);
    shared_->connected = false;
    if (shared_->stop) break;
    if (st.ok() || st.code() == Status::Code::kAborted || st.code() == Status::Code::kShutdown) {
      // Ended on purpose (pause, resync, a switch of the disk to its bitmap): go on at once.
      if (!st.ok()) LOG_INFO("disk %s: %s", name().c_str(), st.message().c_str());
      continue;
    }
    if (fatal) {
      shared_->phase = Phase::kError;
      shared_->error = st.message();
      LOG_ERROR("disk %s: replication to %s stopped: %s; fix the cause, then run `blockrep "
                "resume %s`", name().c_str(), options_.target.c_str(), st.message().c_str(),
                name().c_str());
      shared_->cv.notify_all();
      continue;
    }
    ++shared_->failures;
    const uint64_t delay = RetryDelayUnits(static_cast<uint32_t>(shared_->failures)) * options_.retry_unit_ms;
    shared_->last_error = st.message();
    shared_->phase = Phase::kRetryWait;
    shared_->retry_at_ms = MonotonicMs() + delay;
    LOG_WARN("disk %s: replication to %s: %s; retry %lu in %lu ms", name().c_str(),
             options_.target.c_str(), st.message().c_str(),
             static_cast<unsigned long>(shared_->failures), static_cast<unsigned long>(delay));
    shared_->cv.notify_all();
    const uint64_t until = shared_->retry_at_ms;
    lock.unlock();
    WaitUntil(until);
  }
  std::lock_guard<std::mutex> lock(shared_->mu);
  shared_->phase = Phase::kStopped;
  shared_->cv.notify_all();
}

Status Shipper::Pause() {
  std::lock_guard<std::mutex> lock(shared_->mu);
  shared_->paused = true;
  shared_->cv.notify_all();
  LOG_INFO("disk %s: replication paused", name().c_str());
  return Status::Ok();
}

Status Shipper::Resume() {
  std::lock_guard<std::mutex> lock(shared_->mu);
  const bool was_error = shared_->phase == Phase::kError;
  shared_->paused = false;
  if (was_error) {
    shared_->phase = Phase::kConnecting;
    shared_->error.clear();
  }
  shared_->failures = 0;
  shared_->retry_now = true;
  shared_->cv.notify_all();
  LOG_INFO("disk %s: replication resumed%s", name().c_str(), was_error ? " after an error" : "");
  return Status::Ok();
}

Status Shipper::Resync() {
  BLOCKREP_RETURN_IF_ERROR(disk_.write_path().MarkAllForResync("an operator asked for a resync"));
  std::lock_guard<std::mutex> lock(shared_->mu);
  shared_->resync_requested = true;
  shared_->fresh_resync = true;
  shared_->cv.notify_all();
  return Status::Ok();
}

Result<nlohmann::json> Shipper::Drain(int timeout_ms) {
  const uint64_t start = MonotonicMs();
  WritePath& wp = disk_.write_path();
  const WritePath::JournalPosition pos = wp.Position();
  // Every write acknowledged to a client before now has a seq below lowest_pending; in
  // bitmap mode writes get no seq, and the resync that must follow covers them.
  const uint64_t below = pos.mode == DiskMode::kJournaling ? pos.lowest_pending : pos.next_seq;
  const uint64_t want = below > 0 ? below - 1 : 0;
  std::unique_lock<std::mutex> lock(shared_->mu);
  auto done = [&] {
    return shared_->acked_known && shared_->covered_through >= want &&
           shared_->replica_state == repl::ReplicaState::kInSync &&
           shared_->phase == Phase::kProtected && !wp.Position().resync_pending;
  };
  const bool ok = shared_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    return done() || shared_->stop || shared_->phase == Phase::kError;
  });
  if (!ok || !done()) {
    std::string why = std::string("state ") + PhaseName(shared_->phase);
    if (shared_->phase == Phase::kError) why += ": " + shared_->error;
    else if (!shared_->last_error.empty() && !shared_->connected) why += ": " + shared_->last_error;
    if (pos.mode != DiskMode::kJournaling) why += "; the disk tracks changes in its bitmap (resync pending)";
    return Status::IoError("disk " + name() + ": not drained after " + std::to_string(timeout_ms) +
                           " ms (" + why + "; the target holds seq " +
                           std::to_string(shared_->acked_through) + " of " + std::to_string(want) + ")");
  }
  nlohmann::json j;
  j["disk"] = name();
  j["drained_through_seq"] = want;
  j["acked_seq"] = shared_->acked_through;
  j["waited_ms"] = MonotonicMs() - start;
  return j;
}

Result<nlohmann::json> Shipper::Verify(int timeout_ms) {
  auto job = std::make_shared<Shared::VerifyJob>();
  std::unique_lock<std::mutex> lock(shared_->mu);
  if (!shared_->connected || shared_->phase != Phase::kProtected) {
    return Status::Unsupported("disk " + name() + " is not protected right now (state " +
                               PhaseName(shared_->phase) +
                               "): verify needs the replica in sync and the target connected");
  }
  if (shared_->verify && !shared_->verify->done) {
    return Status::Unsupported("disk " + name() + ": a verify is already running");
  }
  job->pending = true;
  shared_->verify = job;
  shared_->cv.notify_all();
  const bool ok = shared_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                       [&] { return job->done || shared_->stop; });
  if (!ok || !job->done) {
    job->pending = false;
    return Status::IoError("disk " + name() + ": verify did not finish within " +
                           std::to_string(timeout_ms) + " ms");
  }
  if (!job->status.ok()) return job->status;
  return job->result;
}

nlohmann::json Shipper::StatusJson() const {
  const WritePath::Stats ws = disk_.write_path().stats();
  const uint64_t now = MonotonicMs();
  const LagTracker::Summary lag = shared_->lag.Summarize(now);
  std::lock_guard<std::mutex> lock(shared_->mu);
  nlohmann::json j;
  j["name"] = name();
  j["state"] = PhaseName(shared_->phase);
  j["target"] = options_.target;
  j["connected"] = shared_->connected;
  j["replica_state"] = repl::ReplicaStateName(shared_->replica_state);
  j["mode"] = DiskModeName(ws.mode);
  j["resync_required"] = ws.resync_required;
  j["journal_bytes"] = ws.journal_bytes;
  j["journal_max_bytes"] = ws.journal_max_bytes;
  j["journal_used_percent"] =
      ws.journal_max_bytes > 0 ? static_cast<double>(ws.journal_bytes) * 100.0 / static_cast<double>(ws.journal_max_bytes) : 0.0;
  j["next_seq"] = ws.next_seq;
  j["acked_seq"] = shared_->acked_known ? nlohmann::json(shared_->acked_through) : nlohmann::json();
  const bool in_sync = shared_->replica_state == repl::ReplicaState::kInSync &&
                       (shared_->phase == Phase::kProtected || shared_->phase == Phase::kRetryWait ||
                        shared_->phase == Phase::kConnecting || shared_->phase == Phase::kPaused);
  auto opt = [](const std::optional<uint64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
  j["rpo_ms"] = in_sync ? opt(lag.lag_ms) : nlohmann::json();
  j["rpo_p50_ms"] = in_sync ? opt(lag.lag_p50_ms) : nlohmann::json();
  j["rpo_p99_ms"] = in_sync ? opt(lag.lag_p99_ms) : nlohmann::json();
  j["rpo_samples"] = lag.samples;
  j["throughput_bytes_per_s"] = lag.bytes_per_s;
  if (shared_->phase == Phase::kInitialCopy || shared_->phase == Phase::kResyncing) {
    nlohmann::json p;
    const uint64_t done = shared_->sync_done_bytes, total = shared_->sync_total_bytes;
    const uint64_t elapsed_ms = std::max<uint64_t>(now - shared_->sync_start_ms, 1);
    p["done_bytes"] = done;
    p["total_bytes"] = total;
    p["percent"] = total > 0 ? static_cast<double>(done) * 100.0 / static_cast<double>(total) : 0.0;
    p["sent_bytes"] = shared_->sync_sent_bytes;
    const uint64_t rate = done * 1000 / elapsed_ms;
    p["rate_bytes_per_s"] = rate;
    p["eta_s"] = rate > 0 ? nlohmann::json((total - done) / rate) : nlohmann::json();
    j["progress"] = p;
  } else {
    j["progress"] = nullptr;
  }
  j["error"] = shared_->error;
  j["last_error"] = shared_->last_error;
  j["failures_in_row"] = shared_->failures;
  j["connect_attempts"] = shared_->connect_attempts;
  j["retry_in_ms"] = shared_->phase == Phase::kRetryWait && shared_->retry_at_ms > now
                         ? nlohmann::json(shared_->retry_at_ms - now)
                         : nlohmann::json();
  j["wire_bytes_sent"] = shared_->wire_bytes;
  j["record_bytes_sent"] = shared_->record_bytes;
  j["sync_bytes_sent"] = shared_->sync_sent_bytes;
  j["resyncs_completed"] = shared_->resyncs_completed;
  std::string detail;
  switch (shared_->phase) {
    case Phase::kInitialCopy:
    case Phase::kResyncing: {
      const double pct = shared_->sync_total_bytes > 0
                             ? static_cast<double>(shared_->sync_done_bytes) * 100.0 /
                                   static_cast<double>(shared_->sync_total_bytes)
                             : 0.0;
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%s %.0f%%",
                    shared_->phase == Phase::kInitialCopy ? "initial replication" : "resyncing", pct);
      detail = buf;
      break;
    }
    case Phase::kRetryWait:
      detail = "retrying in " + Seconds(shared_->retry_at_ms > now ? shared_->retry_at_ms - now : 0) +
               ": " + shared_->last_error;
      break;
    case Phase::kError:
      detail = "error: " + shared_->error;
      break;
    default:
      detail = PhaseName(shared_->phase);
  }
  j["detail"] = detail;
  return j;
}

}  // namespace blockrep
