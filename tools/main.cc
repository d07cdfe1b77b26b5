// blockrep: the operator CLI. `status`, `drain`, `verify`, `resync`, `pause`, `resume`
// talk to a running daemon over its control socket (tools/control_command.h); `journal
// dump|verify` read a protected disk's journal offline (tools/journal_command.h).
#include <cstdio>
#include <cstring>
#include <string>

#include "core/version.h"
#include "tools/control_command.h"
#include "tools/journal_command.h"

namespace {

const char kUsage[] = R"(usage: blockrep COMMAND [ARGS]

commands:
  status                every disk's replication state, RPO and journal use
  drain DISK            wait until the target holds every write made so far
  verify DISK           compare a disk with its replica, block by block
  resync DISK           compare every block with the replica, send what differs
  pause DISK, resume DISK
                        stop and restart shipping (resume also after a fatal error)
  journal dump|verify   inspect a protected disk's journal (blockrep journal --help)

  Daemon commands take --state-dir DIR or --control PATH (blockrep status --help).

  --help                this text
  --version             print the version
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--version") {
    std::printf("blockrep %s\n", blockrep::kVersion);
    return 0;
  }
  if (cmd == "--help" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "journal") return blockrep::RunJournalCommand(argc - 1, argv + 1);
  if (blockrep::IsControlCommand(cmd.c_str())) return blockrep::RunControlCommand(argc - 1, argv + 1);
  std::fprintf(stderr, "blockrep: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
