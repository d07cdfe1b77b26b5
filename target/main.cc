// blockrep-target: the master-target daemon. This version only builds and answers --help
// and --version; receiving replication arrives with the replication protocol
// (docs/formats/replication.md, not yet written).
#include <cstdio>
#include <cstring>

#include "core/version.h"

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("blockrep-target %s\n", blockrep::kVersion);
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "--help") == 0) {
    std::printf("usage: blockrep-target --version | --help\n\n"
                "The master target (receiving replicas) is not implemented in this version.\n");
    return 0;
  }
  std::fprintf(stderr,
               "blockrep-target: receiving replication is not implemented in this version "
               "(%s)\n",
               blockrep::kVersion);
  return 2;
}
