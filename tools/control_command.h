// The `blockrep` commands that talk to a running daemon over its control socket
// (core/control_socket.h; the daemons' commands are in docs/control.md):
//
//   blockrep status [--json]                    every disk (source) or replica (target)
//   blockrep drain DISK [--timeout SECONDS]     wait until the target holds every write
//   blockrep verify DISK [--timeout SECONDS]    compare the disk with its replica
//   blockrep resync DISK                        compare every block, send what differs
//   blockrep pause DISK | blockrep resume DISK  stop / restart shipping (resume also
//                                               clears a fatal error)
//
// Each takes --state-dir DIR (the daemon's; its control socket is DIR/control.sock) or
// --control PATH. Exit status: 0 done, 1 the daemon said no (or verify found a
// difference), 2 a usage error, 3 the daemon could not be reached.
#pragma once

namespace blockrep {

// argv[0] is the command ("status", "drain", ...). False if it is not one of these.
bool IsControlCommand(const char* command);
int RunControlCommand(int argc, char** argv);
const char* ControlUsage();

}  // namespace blockrep
