// blockrep-target: the master target. Receives protected disks from blockrep-source over
// TLS (docs/formats/replication.md) and keeps each replica under its state directory
// (docs/formats/replica.md). Operators query it through the control socket.
#include <signal.h>
#include <systemd/sd-daemon.h>

#include <cstdio>
#include <memory>

#include "core/control_socket.h"
#include "core/log.h"
#include "core/malloc_tuning.h"
#include "core/tls.h"
#include "core/version.h"
#include "target/target_options.h"
#include "target/target_server.h"

using namespace blockrep;

int main(int argc, char** argv) {
  TuneMallocForBulkBuffers();
  auto parsed = ParseTargetOptions(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "blockrep-target: %s\n(see blockrep-target --help)\n",
                 parsed.status().message().c_str());
    return 2;
  }
  const TargetOptions& opts = parsed.value();
  if (opts.help) {
    std::fputs(TargetUsage(), stdout);
    return 0;
  }
  if (opts.version) {
    std::printf("blockrep-target %s\n", kVersion);
    return 0;
  }
  SetLogLevel(opts.log_level);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto tls = TlsContext::Create(TlsContext::Role::kServer, {opts.tls_cert, opts.tls_key, opts.tls_ca});
  if (!tls.ok()) {
    LOG_ERROR("%s", tls.status().message().c_str());
    return 1;
  }
  TargetServer::Options so;
  so.listen = opts.listen;
  so.state_dir = opts.state_dir;
  so.tls = std::move(tls).value();
  for (const TargetDiskSpec& d : opts.disks) so.disks.push_back({d.name, d.source_identity, d.path});
  TargetServer server(so);
  Status st = server.Start();
  if (!st.ok()) {
    LOG_ERROR("%s", st.message().c_str());
    return 1;
  }
  const std::string control_path =
      opts.control_path.empty() ? opts.state_dir + "/control.sock" : opts.control_path;
  auto control = ControlServer::Start(control_path, [&server](const nlohmann::json& req) {
    const std::string cmd = req["cmd"].get<std::string>();
    if (cmd == "status") {
      nlohmann::json j = server.StatusJson();
      j["ok"] = true;
      return j;
    }
    return nlohmann::json{{"ok", false},
                          {"error", "unknown command '" + cmd + "' (blockrep-target knows status)"}};
  });
  if (!control.ok()) {
    LOG_ERROR("%s", control.status().message().c_str());
    server.Stop();
    return 1;
  }
  LOG_INFO("blockrep-target %s ready: listening on %s as %s, %zu disk(s); control socket %s",
           kVersion, opts.listen.c_str(), so.tls->own_identity().c_str(), opts.disks.size(),
           control_path.c_str());
  sd_notify(0, "READY=1");

  int sig = 0;
  sigwait(&stop_signals, &sig);
  LOG_INFO("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  sd_notify(0, "STOPPING=1");
  control.value()->Stop();
  server.Stop();
  LOG_INFO("stopped");
  return 0;
}
