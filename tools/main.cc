// blockrep: the operator CLI. Commands so far: `journal dump|verify` (offline inspection of
// a protected disk's journal). status, failover and the rest arrive with the daemons'
// control API.
#include <cstdio>
#include <cstring>
#include <string>

#include "core/version.h"
#include "tools/journal_command.h"

namespace {

const char kUsage[] = R"(usage: blockrep COMMAND [ARGS]

commands:
  journal dump|verify   inspect a protected disk's journal (blockrep journal --help)

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
  std::fprintf(stderr, "blockrep: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
