// Benchmark: how long a recovery point of a 1 GiB disk with 100,000 retained journal
// records takes to bring up as a readable view (docs/formats/retention.md, "Views"), beside
// the peer a copy-based failover needs at the least: copying the 1 GiB base (cp).
//
// Builds, in a scratch directory: a 1 GiB base of random data, and a target journal of
// 100,000 random 4 KiB writes (about 400 MiB, 64 MiB segments) written as the target writes
// them; indexes the sealed segments; then times PointView::Open at the latest point and at
// the middle one, warm (page cache) and cold (caches dropped, as root), with and without
// the segment indexes, and a 1 MiB read from the view.
//
// Usage: point_bringup [SCRATCH_DIR] (default $TMPDIR or /var/tmp). Removes what it made.
// Not a test: it prints figures, and the target (under 1 s) beside them.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/journal_format.h"
#include "core/journal_index.h"
#include "core/journal_writer.h"
#include "target/point_view.h"

namespace {

using blockrep::PointView;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kDiskBytes = 1ull << 30;
constexpr uint64_t kRecords = 100000;
constexpr uint64_t kRecordBytes = 4096;
constexpr uint64_t kJournalId = 0xbe4c4;

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "point_bringup: %s\n", what.c_str());
  std::exit(1);
}

void Check(const blockrep::Status& st, const std::string& what) {
  if (!st.ok()) Die(what + ": " + st.ToString());
}

bool DropCaches() {
  ::sync();
  int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd < 0) return false;
  const bool ok = ::write(fd, "3\n", 2) == 2;
  ::close(fd);
  return ok;
}

void Pwrite(int fd, const uint8_t* data, size_t n, uint64_t offset) {
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::pwrite(fd, data + done, n - done, static_cast<off_t>(offset + done));
    if (w <= 0) Die("write: " + std::string(std::strerror(errno)));
    done += static_cast<size_t>(w);
  }
}

struct Opened {
  double seconds;
  uint64_t records;
  int indexed_segments;
  size_t extents;
};

Opened Open(const PointView::Options& o) {
  const auto t0 = Clock::now();
  auto v = PointView::Open(o);
  const double s = Seconds(t0);
  Check(v.ok() ? blockrep::Status::Ok() : v.status(), "open the view");
  return Opened{s, (*v)->records(), (*v)->indexed_segments(), (*v)->map().extent_count()};
}

}  // namespace

int main(int argc, char** argv) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string scratch_base = argc > 1 ? argv[1] : (tmp != nullptr ? tmp : "/var/tmp");
  std::string dir = scratch_base + "/blockrep-point-bringup.XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) Die("mkdtemp in " + scratch_base);
  const std::string base = dir + "/replica.img";
  const std::string journal_dir = dir + "/journal";
  ::mkdir(journal_dir.c_str(), 0700);

  std::printf("== bring-up of a recovery point: 1 GiB disk, %llu retained 4 KiB records\n",
              static_cast<unsigned long long>(kRecords));
  std::mt19937_64 rng(20261207);
  std::vector<uint8_t> noise(8u << 20);
  for (auto& b : noise) b = static_cast<uint8_t>(rng());

  // The base: 1 GiB of data (a copy-based failover has all of it to copy).
  {
    const int fd = ::open(base.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) Die("create " + base);
    for (uint64_t off = 0; off < kDiskBytes; off += noise.size()) Pwrite(fd, noise.data(), noise.size(), off);
    ::fdatasync(fd);
    ::close(fd);
  }
  // The journal, as the target writes it.
  auto w = blockrep::JournalWriter::Open(journal_dir, kJournalId, 1, {}, 8ull << 30);
  Check(w.ok() ? blockrep::Status::Ok() : w.status(), "open the journal");
  blockrep::JournalWriter& writer = *w.value();
  uint64_t middle = 0;
  uint64_t last = 0;
  const auto tw = Clock::now();
  for (uint64_t i = 0; i < kRecords; ++i) {
    auto slot = writer.Reserve(kRecordBytes);
    Check(slot.ok() ? blockrep::Status::Ok() : slot.status(), "reserve");
    blockrep::journal::RecordHeader h;
    h.kind = blockrep::journal::RecordKind::kWrite;
    h.seq = slot->seq;
    h.offset = (rng() % (kDiskBytes / kRecordBytes)) * kRecordBytes;
    h.length = kRecordBytes;
    h.payload_bytes = kRecordBytes;
    h.lowest_pending_seq = slot->lowest_pending;
    const uint8_t* payload = noise.data() + (rng() % (noise.size() / kRecordBytes)) * kRecordBytes;
    uint8_t header[blockrep::journal::kRecordHeaderBytes];
    blockrep::journal::EncodeRecord(kJournalId, h, payload, header);
    Pwrite(slot->segment->fd.get(), header, sizeof(header), slot->file_offset);
    Pwrite(slot->segment->fd.get(), payload, kRecordBytes, slot->file_offset + sizeof(header));
    writer.Complete(slot->seq);
    last = slot->seq;
    if (i == kRecords / 2) middle = slot->seq;
  }
  ::sync();
  std::printf("   journal: %zu segments, %.0f MiB, written in %.2f s\n", writer.segment_count(),
              static_cast<double>(writer.bytes()) / (1 << 20), Seconds(tw));

  const auto ti = Clock::now();
  auto indexed = blockrep::journal::IndexSealedSegments(journal_dir, kJournalId);
  Check(indexed.ok() ? blockrep::Status::Ok() : indexed.status(), "index the segments");
  std::printf("   indexing the %d sealed segments (done once, as each seals): %.2f s\n", indexed.value(),
              Seconds(ti));

  PointView::Options o;
  o.base_path = base;
  o.journal_dir = journal_dir;
  o.journal_id = kJournalId;
  o.disk_bytes = kDiskBytes;
  o.from_seq = 1;
  o.through_seq = last;

  const Opened warm = Open(o);
  std::printf("   open at the latest point, warm: %.3f s (%llu records, %d segments from their indexes, %zu extents)\n",
              warm.seconds, static_cast<unsigned long long>(warm.records), warm.indexed_segments, warm.extents);
  const bool cold_ok = DropCaches();
  const Opened cold = Open(o);
  std::printf("   open at the latest point, %s: %.3f s\n", cold_ok ? "cold (caches dropped)" : "caches NOT dropped (not root)",
              cold.seconds);
  PointView::Options mid = o;
  mid.through_seq = middle;
  const Opened half = Open(mid);
  std::printf("   open at the middle point (seq %llu), warm: %.3f s (%llu records)\n",
              static_cast<unsigned long long>(middle), half.seconds, static_cast<unsigned long long>(half.records));
  {
    auto v = PointView::Open(o);
    Check(v.ok() ? blockrep::Status::Ok() : v.status(), "open");
    std::vector<uint8_t> buf(1 << 20);
    const auto tr = Clock::now();
    Check((*v)->Read(kDiskBytes / 2, buf.size(), buf.data()), "read");
    std::printf("   first 1 MiB read from the view: %.4f s\n", Seconds(tr));
  }
  // Without indexes: every record header and payload read and verified.
  for (const auto& e : std::filesystem::directory_iterator(journal_dir)) {
    if (e.path().extension() == ".idx") std::filesystem::remove(e.path());
  }
  DropCaches();
  const Opened scan = Open(o);
  std::printf("   open at the latest point without indexes (a verifying scan), cold: %.3f s\n", scan.seconds);

  // The peer: copying the base, the least a copy-based bring-up does.
  DropCaches();
  const auto tc = Clock::now();
  const std::string cmd = "cp --sparse=never '" + base + "' '" + dir + "/copy.img' && sync";
  if (std::system(cmd.c_str()) != 0) Die("cp failed");
  const double copy_s = Seconds(tc);
  std::printf("   peer: cp of the 1 GiB base, cold, with sync: %.2f s\n", copy_s);
  std::printf("== point bring-up: %.3f s cold with indexes (target: under 1 s: %s); %.0fx faster than copying the base\n",
              cold.seconds, cold.seconds < 1.0 ? "met" : "NOT met", copy_s / cold.seconds);
  std::filesystem::remove_all(dir);
  return 0;
}
