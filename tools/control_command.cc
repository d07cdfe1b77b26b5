#include "tools/control_command.h"

#include <getopt.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/byte_size.h"
#include "core/control_socket.h"

namespace blockrep {
namespace {

using Json = nlohmann::json;

constexpr char kDefaultStateDir[] = "/var/lib/blockrep";
// A drain or verify may take a while; status and the rest answer at once.
constexpr int kQuickTimeoutMs = 10000;

const char* const kCommands[] = {"status", "drain", "verify", "resync", "pause", "resume"};

struct Args {
  std::string command;
  std::string state_dir = kDefaultStateDir;
  std::string control;
  std::string disk;
  bool json = false;
  int timeout_s = 600;
};

int Usage(const std::string& why) {
  std::fprintf(stderr, "blockrep: %s\n\n%s", why.c_str(), ControlUsage());
  return 2;
}

std::string Ms(const Json& v) {
  if (!v.is_number()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fs", v.get<double>() / 1000.0);
  return buf;
}

std::string Rate(const Json& v) {
  if (!v.is_number()) return "-";
  return FormatBytes(v.get<uint64_t>()) + "/s";
}

std::string Str(const Json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

uint64_t U64(const Json& j, const char* key) {
  return j.contains(key) && j[key].is_number_unsigned() ? j[key].get<uint64_t>() : 0;
}

// Prints rows as columns, each as wide as its widest cell; the last column is free.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    for (size_t i = 0; i + 1 < r.size(); ++i) {
      if (width.size() <= i) width.resize(i + 1, 0);
      width[i] = std::max(width[i], r[i].size());
    }
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
}

void PrintSourceStatus(const Json& j) {
  std::printf("blockrep-source %s, state %s%s\n", Str(j, "version").c_str(), Str(j, "state_dir").c_str(),
              Str(j, "target").empty() ? ", no target" : (", target " + Str(j, "target")).c_str());
  std::vector<std::vector<std::string>> rows = {
      {"DISK", "STATE", "RPO", "RPO P50", "RPO P99", "THROUGHPUT", "JOURNAL", "DETAIL"}};
  for (const Json& d : j["disks"]) {
    char journal[64];
    std::snprintf(journal, sizeof(journal), "%s (%.0f%%)", FormatBytes(U64(d, "journal_bytes")).c_str(),
                  d.contains("journal_used_percent") && d["journal_used_percent"].is_number()
                      ? d["journal_used_percent"].get<double>() : 0.0);
    std::string detail = Str(d, "detail");
    if (d.contains("progress") && d["progress"].is_object()) {
      const Json& p = d["progress"];
      detail += " (" + FormatBytes(U64(p, "done_bytes")) + " of " + FormatBytes(U64(p, "total_bytes")) +
                ", " + Rate(p["rate_bytes_per_s"]) + ", ETA " +
                (p["eta_s"].is_number() ? std::to_string(p["eta_s"].get<uint64_t>()) + " s" : "-") + ")";
    }
    if (d.value("resync_required", false) && Str(d, "state") != "resyncing") detail += "; resync required";
    rows.push_back({Str(d, "name"), Str(d, "state"), Ms(d["rpo_ms"]), Ms(d["rpo_p50_ms"]),
                    Ms(d["rpo_p99_ms"]), Rate(d["throughput_bytes_per_s"]), journal, detail});
  }
  PrintTable(rows);
}

void PrintTargetStatus(const Json& j) {
  std::printf("blockrep-target %s, listening on %s as %s; %lu connection(s), %lu refused at TLS\n",
              Str(j, "version").c_str(), Str(j, "listen").c_str(), Str(j, "identity").c_str(),
              static_cast<unsigned long>(U64(j, "connections")),
              static_cast<unsigned long>(U64(j, "tls_refused")));
  std::vector<std::vector<std::string>> rows = {
      {"REPLICA", "STATE", "SOURCE", "CONNECTED", "DURABLE SEQ", "SIZE", "ALLOCATED", "DETAIL"}};
  for (const Json& r : j["replicas"]) {
    std::string detail = Str(r, "error");
    if (Str(r, "state") == "resync") detail = "held " + FormatBytes(U64(r, "held_bytes")) + "; image keeps the last consistent state";
    if (Str(r, "state") == "initial-copy") detail = "cursor " + FormatBytes(U64(r, "sync_cursor"));
    if (Str(r, "state") == "changed") detail = Str(r, "changed");
    rows.push_back({Str(r, "name"), Str(r, "state"), Str(r, "source"),
                    r.value("connected", false) ? "yes" : "no", std::to_string(U64(r, "durable_through")),
                    FormatBytes(U64(r, "disk_bytes")), FormatBytes(U64(r, "image_allocated_bytes")), detail});
  }
  PrintTable(rows);
}

int Print(const Args& a, const Json& response) {
  if (a.json) {
    std::printf("%s\n", response.dump(2).c_str());
    return response.value("ok", false) ? 0 : 1;
  }
  if (!response.value("ok", false)) {
    std::fprintf(stderr, "blockrep %s: %s\n", a.command.c_str(), Str(response, "error").c_str());
    return 1;
  }
  if (a.command == "status") {
    if (Str(response, "daemon") == "blockrep-target") PrintTargetStatus(response);
    else PrintSourceStatus(response);
    return 0;
  }
  if (a.command == "drain") {
    std::printf("disk %s drained: the target holds every write through seq %lu (waited %s)\n",
                a.disk.c_str(), static_cast<unsigned long>(U64(response, "drained_through_seq")),
                Ms(response["waited_ms"]).c_str());
    return 0;
  }
  if (a.command == "verify") {
    if (response.value("equal", false)) {
      std::printf("disk %s equals its replica (%s compared, block by block)\n", a.disk.c_str(),
                  FormatBytes(U64(response, "bytes_compared")).c_str());
      return 0;
    }
    const Json& ranges = response["differing_ranges"];
    std::printf("disk %s differs from its replica: %s in %zu range(s)\n", a.disk.c_str(),
                FormatBytes(U64(response, "differing_bytes")).c_str(), ranges.size());
    size_t shown = 0;
    for (const Json& r : ranges) {
      if (++shown > 20) {
        std::printf("  ... (%zu more; --json lists all)\n", ranges.size() - 20);
        break;
      }
      std::printf("  offset %lu length %lu\n", static_cast<unsigned long>(U64(r, "offset")),
                  static_cast<unsigned long>(U64(r, "length")));
    }
    return 1;
  }
  std::printf("disk %s: %s\n", a.disk.c_str(),
              a.command == "resync"  ? "resync started (blockrep status shows its progress)"
              : a.command == "pause" ? "replication paused (the journal keeps every write)"
                                     : "replication resumed");
  return 0;
}

}  // namespace

const char* ControlUsage() {
  return R"(usage: blockrep COMMAND [DISK] [--state-dir DIR | --control PATH] [options]

commands (they talk to a running blockrep-source or blockrep-target):
  status [--json]              each disk's state, RPO (now, p50, p99 over the last
                               minute), throughput and journal use; on a target, each
                               replica's state
  drain DISK [--timeout S]     return once the target holds every write acknowledged
                               before the command (default timeout 600 s)
  verify DISK [--timeout S]    compare the disk with its replica, block by block; exit 1
                               and list the ranges that differ
  resync DISK                  compare every block with the replica and send what differs
  pause DISK                   stop shipping (the journal keeps every write)
  resume DISK                  ship again; also after a fatal error, once it is fixed

  --state-dir DIR              the daemon's state directory (default /var/lib/blockrep;
                               a target's is usually /var/lib/blockrep-target)
  --control PATH               its control socket (default STATE_DIR/control.sock)
  --json                       print the daemon's answer as JSON
)";
}

bool IsControlCommand(const char* command) {
  for (const char* c : kCommands) {
    if (std::strcmp(c, command) == 0) return true;
  }
  return false;
}

int RunControlCommand(int argc, char** argv) {
  Args a;
  a.command = argv[0];
  enum { kStateDir = 1000, kControl, kJson, kTimeout, kHelp };
  static const option kLongOptions[] = {
      {"state-dir", required_argument, nullptr, kStateDir},
      {"control", required_argument, nullptr, kControl},
      {"json", no_argument, nullptr, kJson},
      {"timeout", required_argument, nullptr, kTimeout},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  optind = 0;
  opterr = 0;
  std::vector<std::string> positional;
  while (true) {
    const int c = getopt_long(argc, argv, "-:", kLongOptions, nullptr);
    if (c == -1) break;
    switch (c) {
      case 1: positional.push_back(optarg); break;
      case kStateDir: a.state_dir = optarg; break;
      case kControl: a.control = optarg; break;
      case kJson: a.json = true; break;
      case kTimeout: {
        char* end = nullptr;
        const long v = std::strtol(optarg, &end, 10);
        if (*optarg == '\0' || *end != '\0' || v < 1 || v > 86400) {
          return Usage(std::string("--timeout ") + optarg + ": expected 1 to 86400 seconds");
        }
        a.timeout_s = static_cast<int>(v);
        break;
      }
      case kHelp:
        std::fputs(ControlUsage(), stdout);
        return 0;
      case ':': return Usage(std::string(argv[optind - 1]) + " needs a value");
      default: return Usage(std::string("unknown option ") + argv[optind - 1]);
    }
  }
  if (a.command == "status") {
    if (!positional.empty()) return Usage("status takes no disk name");
  } else {
    if (positional.size() != 1) return Usage(a.command + " needs exactly one DISK");
    a.disk = positional[0];
  }
  const std::string path = a.control.empty() ? a.state_dir + "/control.sock" : a.control;
  Json request{{"cmd", a.command}};
  if (!a.disk.empty()) request["disk"] = a.disk;
  int timeout_ms = kQuickTimeoutMs;
  if (a.command == "drain" || a.command == "verify") {
    request["timeout_ms"] = static_cast<uint64_t>(a.timeout_s) * 1000;
    timeout_ms = a.timeout_s * 1000 + kQuickTimeoutMs;
  }
  auto response = ControlCall(path, request, timeout_ms);
  if (!response.ok()) {
    std::fprintf(stderr, "blockrep %s: %s\n", a.command.c_str(), response.status().message().c_str());
    return 3;
  }
  return Print(a, response.value());
}

}  // namespace blockrep
