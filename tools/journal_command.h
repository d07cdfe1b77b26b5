// `blockrep journal dump|verify`: read a protected disk's journal straight from its state
// directory, for operators and tests. Safe while the daemon runs (it only reads; records
// still in flight may show as a torn tail).
//
//   blockrep journal dump   [--state-dir DIR] --disk NAME [--from SEQ] [--limit N] [--json]
//   blockrep journal verify [--state-dir DIR] --disk NAME [--backing PATH] [--json]
//
// verify exits 0 when every record verifies (and, with --backing, the disk holds the
// journal's view), 1 when something is wrong (corruption, a mismatch, a disk in the error
// state), 2 on a usage error.
#pragma once

namespace blockrep {

// argv[0] is "journal".
int RunJournalCommand(int argc, char** argv);
const char* JournalUsage();

}  // namespace blockrep
