#include "tools/journal_command.h"

#include <getopt.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>

#include "core/byte_size.h"
#include "core/dirty_bitmap.h"
#include "core/disk_state.h"
#include "core/journal_reader.h"
#include "tools/journal_view_check.h"

namespace blockrep {
namespace {

constexpr char kDefaultStateDir[] = "/var/lib/blockrep";

struct Args {
  std::string verb;
  std::string state_dir = kDefaultStateDir;
  std::string disk;
  std::string backing;
  uint64_t from = 0;
  uint64_t limit = UINT64_MAX;
  bool json = false;
};

int Usage(const std::string& why) {
  std::fprintf(stderr, "blockrep journal: %s\n\n%s", why.c_str(), JournalUsage());
  return 2;
}

bool ParseU64(const char* s, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (*s == '\0' || *end != '\0' || errno != 0 || *s == '-') return false;
  *out = v;
  return true;
}

std::string TimeText(uint64_t ns) {
  const time_t secs = static_cast<time_t>(ns / 1000000000ull);
  tm utc;
  gmtime_r(&secs, &utc);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03uZ", static_cast<unsigned>(ns / 1000000 % 1000));
  return buf;
}

std::string MarkerText(const journal::RecordView& r) {
  const journal::RecordHeader& h = r.header;
  std::string text = journal::MarkerTypeName(h.marker);
  if (h.marker == journal::MarkerType::kFlushCheckpoint) {
    uint64_t below = 0;
    if (journal::DecodeCheckpointBody(r.payload, h.payload_bytes, &below)) {
      text += " applied-below=" + std::to_string(below);
    }
  } else if (h.marker == journal::MarkerType::kVoid) {
    std::vector<uint64_t> seqs;
    if (journal::DecodeVoidBody(r.payload, h.payload_bytes, &seqs)) {
      text += " seqs=";
      for (size_t i = 0; i < seqs.size() && i < 8; ++i) text += (i ? "," : "") + std::to_string(seqs[i]);
      if (seqs.size() > 8) text += ",... (" + std::to_string(seqs.size()) + ")";
    }
  } else if (h.marker == journal::MarkerType::kRecoveryPoint) {
    text += " label=" + std::string(reinterpret_cast<const char*>(r.payload), h.payload_bytes);
  }
  return text;
}

struct Opened {
  std::string disk_dir;
  std::string journal_dir;
  journal::JournalMeta meta;
  DiskState state;
};

Result<Opened> Open(const Args& a) {
  Opened o;
  o.disk_dir = a.state_dir + "/disks/" + a.disk;
  o.journal_dir = o.disk_dir + "/journal";
  auto meta = journal::ReadJournalMeta(o.disk_dir + "/journal.meta");
  if (!meta.ok()) {
    return Status::NotFound("disk " + a.disk + ": no journal in " + o.disk_dir + " (" +
                            meta.status().message() + ")");
  }
  o.meta = meta.value();
  auto state = DiskState::Load(o.disk_dir + "/state.json");
  if (!state.ok()) return state.status();
  o.state = std::move(state).value();
  return o;
}

int Dump(const Args& a) {
  auto opened = Open(a);
  if (!opened.ok()) {
    std::fprintf(stderr, "blockrep journal dump: %s\n", opened.status().message().c_str());
    return 1;
  }
  const Opened& o = opened.value();
  nlohmann::ordered_json records = nlohmann::ordered_json::array();
  uint64_t shown = 0;
  if (!a.json) {
    std::printf("disk %s: journal id %016" PRIx64 ", disk %s, mode %s\n", a.disk.c_str(),
                o.meta.journal_id, FormatBytes(o.meta.disk_bytes).c_str(),
                DiskModeName(o.state.mode));
    std::printf("%-10s %-7s %-14s %-10s %-10s %-24s %s\n", "SEQ", "KIND", "OFFSET", "LENGTH",
                "LOWEST", "TIME", "SEGMENT:OFFSET");
  }
  journal::ScanOptions opts;
  opts.journal_id = o.meta.journal_id;
  opts.visit_from_seq = a.from;
  opts.visitor = [&](const journal::RecordView& r) {
    if (shown >= a.limit) return Status::Ok();
    ++shown;
    const journal::RecordHeader& h = r.header;
    const bool marker = h.kind == journal::RecordKind::kMarker;
    if (a.json) {
      nlohmann::ordered_json j;
      j["seq"] = h.seq;
      j["kind"] = journal::RecordKindName(h.kind);
      if (marker) {
        j["marker"] = journal::MarkerTypeName(h.marker);
        j["detail"] = MarkerText(r);
      } else {
        j["offset"] = h.offset;
        j["length"] = h.length;
      }
      j["fua"] = (h.flags & journal::kRecordFlagFua) != 0;
      j["lowest_pending_seq"] = h.lowest_pending_seq;
      j["time"] = TimeText(h.timestamp_ns);
      j["segment"] = *r.segment;
      j["file_offset"] = r.file_offset;
      records.push_back(std::move(j));
    } else {
      std::printf("%-10" PRIu64 " %-7s %-14s %-10s %-10" PRIu64 " %-24s %s:%" PRIu64 "%s\n", h.seq,
                  journal::RecordKindName(h.kind),
                  marker ? "-" : std::to_string(h.offset).c_str(),
                  marker ? "-" : std::to_string(h.length).c_str(), h.lowest_pending_seq,
                  TimeText(h.timestamp_ns).c_str(), r.segment->c_str(), r.file_offset,
                  marker ? ("  " + MarkerText(r)).c_str()
                         : ((h.flags & journal::kRecordFlagFua) ? "  fua" : ""));
    }
    return Status::Ok();
  };
  auto scan = journal::ScanJournal(o.journal_dir, opts);
  if (!scan.ok()) {
    std::fprintf(stderr, "blockrep journal dump: %s\n", scan.status().message().c_str());
    return 1;
  }
  if (a.json) {
    nlohmann::ordered_json j;
    j["disk"] = a.disk;
    j["records"] = std::move(records);
    j["corruption"] = scan->corruption ? nlohmann::ordered_json(*scan->corruption) : nullptr;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%" PRIu64 " record(s) shown of %" PRIu64 " in %zu segment(s)%s\n", shown,
                scan->records, scan->segments.size(),
                scan->corruption ? (" -- CORRUPT: " + *scan->corruption).c_str() : "");
  }
  return scan->corruption ? 1 : 0;
}

int Verify(const Args& a) {
  auto opened = Open(a);
  if (!opened.ok()) {
    std::fprintf(stderr, "blockrep journal verify: %s\n", opened.status().message().c_str());
    return 1;
  }
  const Opened& o = opened.value();
  journal::ScanOptions opts;
  opts.journal_id = o.meta.journal_id;
  uint64_t data_bytes = 0;
  opts.visitor = [&](const journal::RecordView& r) {
    data_bytes += r.header.payload_bytes;
    return Status::Ok();
  };
  auto scan = journal::ScanJournal(o.journal_dir, opts);
  if (!scan.ok()) {
    std::fprintf(stderr, "blockrep journal verify: %s\n", scan.status().message().c_str());
    return 1;
  }
  uint64_t file_bytes = 0;
  for (const auto& s : scan->segments) file_bytes += s.file_bytes;
  auto bitmap = DirtyBitmap::Load(o.disk_dir + "/bitmap", o.meta.disk_bytes);

  bool bad = scan->corruption.has_value() || !o.state.error.empty();
  std::optional<ViewCheckResult> view;
  std::string view_error;
  if (!a.backing.empty() && !scan->corruption) {
    auto v = CheckJournalView(o.journal_dir, o.meta.journal_id, a.backing);
    if (v.ok()) {
      view = std::move(v).value();
      if (view->mismatch_count > 0) bad = true;
    } else {
      view_error = v.status().message();
      bad = true;
    }
  }

  if (a.json) {
    nlohmann::ordered_json j;
    j["disk"] = a.disk;
    j["mode"] = DiskModeName(o.state.mode);
    j["resync_required"] = o.state.resync_required();
    j["reason"] = o.state.reason;
    j["error"] = o.state.error;
    j["segments"] = scan->segments.size();
    j["records"] = scan->records;
    j["first_seq"] = scan->first_seq;
    j["last_seq"] = scan->last_seq;
    j["journal_bytes"] = file_bytes;
    j["payload_bytes"] = data_bytes;
    j["checkpoint_applied_below"] = scan->checkpoint_applied_below;
    j["torn_dropped"] = scan->dropped.size();
    j["voided"] = scan->voided.size();
    j["corruption"] = scan->corruption ? nlohmann::ordered_json(*scan->corruption) : nullptr;
    j["dirty_regions"] = bitmap.ok() ? bitmap->dirty_regions() : 0;
    if (view) {
      j["backing"] = {{"records_checked", view->records_checked},
                      {"bytes_checked", view->bytes_checked},
                      {"mismatches", view->mismatch_count}};
    } else if (!view_error.empty()) {
      j["backing"] = {{"error", view_error}};
    }
    j["ok"] = !bad;
    std::printf("%s\n", j.dump(2).c_str());
    return bad ? 1 : 0;
  }

  std::printf("disk %s: mode %s%s\n", a.disk.c_str(), DiskModeName(o.state.mode),
              o.state.resync_required() ? " (resync required)" : "");
  if (!o.state.reason.empty()) std::printf("  reason: %s (since %s)\n", o.state.reason.c_str(), o.state.since.c_str());
  if (!o.state.error.empty()) std::printf("  ERROR: %s\n", o.state.error.c_str());
  std::printf("journal: %zu segment(s), %s; %" PRIu64 " record(s)", scan->segments.size(),
              FormatBytes(file_bytes).c_str(), scan->records);
  if (scan->records > 0) std::printf(", seq %" PRIu64 "..%" PRIu64, scan->first_seq, scan->last_seq);
  std::printf(", %s of data\n", FormatBytes(data_bytes).c_str());
  std::printf("  last flush checkpoint: every seq below %" PRIu64 " is on the disk\n",
              scan->checkpoint_applied_below);
  if (!scan->dropped.empty()) {
    std::printf("  %zu torn record(s) from a crash, never acknowledged (dropped)\n", scan->dropped.size());
  }
  if (!scan->voided.empty()) std::printf("  %zu seq(s) voided (writes that failed)\n", scan->voided.size());
  if (bitmap.ok()) {
    std::printf("bitmap: %" PRIu64 " dirty region(s) of %s\n", bitmap->dirty_regions(),
                FormatBytes(DirtyBitmap::kRegionBytes).c_str());
  } else {
    std::printf("bitmap: %s\n", bitmap.status().message().c_str());
  }
  if (scan->corruption) {
    std::printf("CORRUPT: %s\n", scan->corruption->c_str());
  } else {
    std::printf("checksums: all %" PRIu64 " record(s) verify\n", scan->records);
  }
  if (view) {
    std::printf("backing %s: %" PRIu64 " record(s) decide %s; ", a.backing.c_str(),
                view->records_checked, FormatBytes(view->bytes_checked).c_str());
    if (view->mismatch_count == 0) {
      std::printf("the disk holds the journal's view\n");
    } else {
      std::printf("%" PRIu64 " piece(s) DIFFER\n", view->mismatch_count);
      for (const ViewMismatch& m : view->mismatches) {
        std::printf("  disk offset %" PRIu64 " (+%" PRIu64 "): differs from record seq %" PRIu64
                    " (%s:%" PRIu64 ")\n",
                    m.offset, m.length, m.seq, m.segment.c_str(), m.file_offset);
      }
    }
  } else if (!view_error.empty()) {
    std::printf("backing %s: %s\n", a.backing.c_str(), view_error.c_str());
  }
  std::printf("%s\n", bad ? "NOT OK" : "OK");
  return bad ? 1 : 0;
}

}  // namespace

const char* JournalUsage() {
  return R"(usage: blockrep journal dump   [--state-dir DIR] --disk NAME [--from SEQ] [--limit N] [--json]
       blockrep journal verify [--state-dir DIR] --disk NAME [--backing PATH] [--json]

Reads the HRL journal of disk NAME from STATE_DIR/disks/NAME (default state dir
/var/lib/blockrep). Safe while blockrep-source runs.

  dump     print every record: seq, kind, disk range, lowest pending seq, time, where
  verify   check every record's checksum and the torn-record rules; with --backing PATH,
           also check that the disk holds what the journal says it should
           (exit 0 OK, 1 not OK, 2 usage error)
)";
}

int RunJournalCommand(int argc, char** argv) {
  if (argc < 2) return Usage("expected dump or verify");
  Args a;
  a.verb = argv[1];
  if (a.verb == "--help" || a.verb == "help") {
    std::fputs(JournalUsage(), stdout);
    return 0;
  }
  if (a.verb != "dump" && a.verb != "verify") return Usage("unknown journal command '" + a.verb + "'");
  enum { kStateDir = 1000, kDisk, kBacking, kFrom, kLimit, kJson, kHelp };
  static const option kOptions[] = {
      {"state-dir", required_argument, nullptr, kStateDir},
      {"disk", required_argument, nullptr, kDisk},
      {"backing", required_argument, nullptr, kBacking},
      {"from", required_argument, nullptr, kFrom},
      {"limit", required_argument, nullptr, kLimit},
      {"json", no_argument, nullptr, kJson},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  optind = 0;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc - 1, argv + 1, ":", kOptions, nullptr)) != -1) {
    switch (c) {
      case kStateDir: a.state_dir = optarg; break;
      case kDisk: a.disk = optarg; break;
      case kBacking:
        if (a.verb != "verify") return Usage("--backing belongs to verify");
        a.backing = optarg;
        break;
      case kFrom:
        if (a.verb != "dump" || !ParseU64(optarg, &a.from)) return Usage("--from SEQ: a sequence number (dump)");
        break;
      case kLimit:
        if (a.verb != "dump" || !ParseU64(optarg, &a.limit)) return Usage("--limit N: a count (dump)");
        break;
      case kJson: a.json = true; break;
      case kHelp:
        std::fputs(JournalUsage(), stdout);
        return 0;
      case ':': return Usage(std::string("option ") + argv[optind] + " needs a value");
      default: return Usage(std::string("unknown option ") + argv[optind]);
    }
  }
  if (optind < argc - 1) return Usage(std::string("unexpected argument '") + argv[optind + 1] + "'");
  if (a.disk.empty()) return Usage("--disk NAME is required");
  return a.verb == "dump" ? Dump(a) : Verify(a);
}

}  // namespace blockrep
