// blockrep: the operator CLI. This version answers --help and --version; the status,
// journal and failover commands arrive with the daemons' control API.
#include <cstdio>
#include <cstring>

#include "core/version.h"

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("blockrep %s\n", blockrep::kVersion);
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "--help") == 0) {
    std::printf("usage: blockrep --version | --help\n\n"
                "No operator commands are implemented in this version yet.\n");
    return 0;
  }
  std::fprintf(stderr, "blockrep: no operator commands are implemented in this version (%s)\n",
               blockrep::kVersion);
  return 2;
}
