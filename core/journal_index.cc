#include "core/journal_index.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <map>

#include "core/durable_file.h"
#include "core/endian.h"
#include "core/journal_reader.h"
#include "core/unique_fd.h"

namespace blockrep::journal {
namespace {

constexpr size_t kHeaderChecksumOffset = 56;

Result<uint64_t> FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
  return static_cast<uint64_t>(st.st_size);
}

}  // namespace

IndexEntry IndexEntryOf(const RecordView& r) {
  IndexEntry e;
  e.seq = r.header.seq;
  e.offset = r.header.offset;
  e.length = r.header.length;
  e.payload_offset = r.header.kind == RecordKind::kWrite ? r.file_offset + kRecordHeaderBytes : 0;
  e.kind = r.header.kind;
  e.flags = r.header.flags;
  e.marker = r.header.marker;
  e.timestamp_ns = r.header.timestamp_ns;
  return e;
}

std::string IndexNameFor(const std::string& segment_name) {
  const size_t dot = segment_name.rfind('.');
  return (dot == std::string::npos ? segment_name : segment_name.substr(0, dot)) + ".idx";
}

Status WriteSegmentIndex(const std::string& journal_dir, const std::string& segment_name,
                         uint64_t journal_id, const SegmentIndex& index) {
  std::vector<uint8_t> b(kIndexHeaderBytes + index.entries.size() * kIndexEntryBytes + 8, 0);
  StoreLe32(b.data(), kIndexMagic);
  StoreLe32(b.data() + 4, kIndexVersion);
  StoreLe64(b.data() + 8, journal_id);
  StoreLe64(b.data() + 16, index.first_seq);
  StoreLe64(b.data() + 24, index.entries.size());
  StoreLe64(b.data() + 32, index.segment_bytes);
  StoreLe64(b.data() + kHeaderChecksumOffset, XXH3_64bits_withSeed(b.data(), kHeaderChecksumOffset, journal_id));
  uint8_t* p = b.data() + kIndexHeaderBytes;
  for (const IndexEntry& e : index.entries) {
    StoreLe64(p, e.seq);
    StoreLe64(p + 8, e.offset);
    StoreLe64(p + 16, e.length);
    StoreLe64(p + 24, e.payload_offset);
    StoreLe16(p + 32, static_cast<uint16_t>(e.kind));
    StoreLe16(p + 34, e.flags);
    StoreLe32(p + 36, static_cast<uint32_t>(e.marker));
    StoreLe64(p + 40, e.timestamp_ns);
    p += kIndexEntryBytes;
  }
  const size_t entry_bytes = index.entries.size() * kIndexEntryBytes;
  StoreLe64(p, XXH3_64bits_withSeed(b.data() + kIndexHeaderBytes, entry_bytes, journal_id));
  return WriteFileDurably(journal_dir + "/" + IndexNameFor(segment_name), b.data(), b.size());
}

Result<SegmentIndex> ReadSegmentIndex(const std::string& journal_dir, const std::string& segment_name,
                                      uint64_t journal_id) {
  const std::string path = journal_dir + "/" + IndexNameFor(segment_name);
  std::vector<uint8_t> b;
  BLOCKREP_RETURN_IF_ERROR(ReadWholeFile(path, &b));
  auto bad = [&](const std::string& why) { return Status::Corruption(path + ": " + why); };
  if (b.size() < kIndexHeaderBytes + 8) return bad("shorter than a header");
  if (LoadLe32(b.data()) != kIndexMagic) return bad("bad magic");
  if (LoadLe64(b.data() + kHeaderChecksumOffset) !=
      XXH3_64bits_withSeed(b.data(), kHeaderChecksumOffset, journal_id)) {
    return bad("header checksum (or another journal's index)");
  }
  if (LoadLe32(b.data() + 4) != kIndexVersion) return bad("version " + std::to_string(LoadLe32(b.data() + 4)));
  if (LoadLe64(b.data() + 8) != journal_id) return bad("another journal's index");
  SegmentIndex index;
  index.first_seq = LoadLe64(b.data() + 16);
  const uint64_t count = LoadLe64(b.data() + 24);
  index.segment_bytes = LoadLe64(b.data() + 32);
  uint64_t name_seq = 0;
  if (!ParseSegmentName(segment_name, &name_seq) || name_seq != index.first_seq) {
    return bad("indexes the segment of seq " + std::to_string(index.first_seq));
  }
  auto size = FileSize(journal_dir + "/" + segment_name);
  if (!size.ok()) return size.status();
  if (size.value() != index.segment_bytes) {
    return bad("stale: the segment has " + std::to_string(size.value()) + " bytes, the index " +
               std::to_string(index.segment_bytes));
  }
  if (count > (b.size() - kIndexHeaderBytes - 8) / kIndexEntryBytes ||
      b.size() != kIndexHeaderBytes + count * kIndexEntryBytes + 8) {
    return bad(std::to_string(count) + " entries do not fit its " + std::to_string(b.size()) + " bytes");
  }
  const uint8_t* entries = b.data() + kIndexHeaderBytes;
  const size_t entry_bytes = count * kIndexEntryBytes;
  if (LoadLe64(entries + entry_bytes) != XXH3_64bits_withSeed(entries, entry_bytes, journal_id)) {
    return bad("entries checksum");
  }
  index.entries.resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    const uint8_t* p = entries + i * kIndexEntryBytes;
    IndexEntry& e = index.entries[i];
    e.seq = LoadLe64(p);
    e.offset = LoadLe64(p + 8);
    e.length = LoadLe64(p + 16);
    e.payload_offset = LoadLe64(p + 24);
    e.kind = static_cast<RecordKind>(LoadLe16(p + 32));
    e.flags = LoadLe16(p + 34);
    e.marker = static_cast<MarkerType>(LoadLe32(p + 36));
    e.timestamp_ns = LoadLe64(p + 40);
  }
  return index;
}

Result<int> IndexSealedSegments(const std::string& journal_dir, uint64_t journal_id) {
  auto list = ListSegments(journal_dir);
  if (!list.ok()) return list.status();
  const auto& segments = list.value();
  if (segments.size() < 2) return 0;
  // The sealed segments without a valid index, and where the scan must start.
  std::map<std::string, SegmentIndex> wanted;
  uint64_t from_seq = 0;
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    auto existing = ReadSegmentIndex(journal_dir, segments[i].second, journal_id);
    if (existing.ok()) continue;
    auto size = FileSize(journal_dir + "/" + segments[i].second);
    if (!size.ok()) return size.status();
    SegmentIndex& idx = wanted[segments[i].second];
    idx.first_seq = segments[i].first;
    idx.segment_bytes = size.value();
    if (from_seq == 0) from_seq = segments[i].first;
  }
  if (wanted.empty()) return 0;
  ScanOptions scan;
  scan.journal_id = journal_id;
  scan.visit_from_seq = from_seq;
  scan.skip_segments_below_visit = true;
  scan.visitor = [&](const RecordView& r) -> Status {
    auto it = wanted.find(*r.segment);
    if (it == wanted.end()) return Status::Ok();
    it->second.entries.push_back(IndexEntryOf(r));
    return Status::Ok();
  };
  auto summary = ScanJournal(journal_dir, scan);
  if (!summary.ok()) return summary.status();
  if (summary->corruption) {
    return Status::Corruption("journal " + journal_dir + " is corrupt, not indexed: " + *summary->corruption);
  }
  int written = 0;
  for (const auto& [name, idx] : wanted) {
    BLOCKREP_RETURN_IF_ERROR(WriteSegmentIndex(journal_dir, name, journal_id, idx));
    ++written;
  }
  return written;
}

}  // namespace blockrep::journal
