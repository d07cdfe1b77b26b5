// blockrep-source: serves protected disks to their users over NBD (and FUSE), with every
// change passing through the disk's WritePath, and replicates them to blockrep-target
// (one Shipper per disk) when a target is configured. Operators steer it through the
// control socket (core/control_socket.h; commands in docs/control.md).
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/malloc_tuning.h"
#include "core/version.h"
#include "core/byte_size.h"
#include "core/control_socket.h"
#include "core/tls.h"
#include "daemon/fuse_front.h"
#include "daemon/protected_disk.h"
#include "daemon/shipper.h"
#include "daemon/source_control.h"
#include "daemon/source_options.h"
#include "nbd/export_catalog.h"
#include "nbd/server.h"

using namespace blockrep;

int main(int argc, char** argv) {
  TuneMallocForBulkBuffers();
  auto parsed = ParseSourceOptions(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "blockrep-source: %s\n(see blockrep-source --help)\n",
                 parsed.status().message().c_str());
    return 2;
  }
  SourceOptions& opts = parsed.value();
  if (opts.help) {
    std::fputs(SourceUsage(), stdout);
    return 0;
  }
  if (opts.version) {
    std::printf("blockrep-source %s\n", kVersion);
    return 0;
  }
  SetLogLevel(opts.log_level);

  // Signals are taken synchronously by this thread; every thread started later inherits the
  // mask, so none is interrupted by them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  nbd::ExportCatalog catalog;  // filled below, before the server starts
  nbd::ServerOptions server_opts;
  int cpus = static_cast<int>(std::thread::hardware_concurrency());
  server_opts.workers =
      opts.workers > 0 ? opts.workers : std::max(1, std::min(cpus, kMaxDefaultWorkers));
  nbd::Server server(catalog, server_opts);
  // Listeners first: a bad or busy address is refused before any disk state is touched.
  for (const std::string& spec : opts.nbd_listeners) {
    Status st = server.Listen(spec);
    if (!st.ok()) {
      LOG_ERROR("%s", st.message().c_str());
      return 1;
    }
    LOG_INFO("listening on %s", spec.c_str());
  }

  std::vector<std::unique_ptr<ProtectedDisk>> disks;
  // Disks opened so far are closed cleanly when a later step fails.
  auto close_disks = [&disks] {
    for (auto& d : disks) {
      Status s = d->Close();
      if (!s.ok()) LOG_ERROR("%s", s.ToString().c_str());
    }
  };
  for (const DiskSpec& spec : opts.disks) {
    ProtectedDisk::Options disk_opts;
    disk_opts.state_dir = opts.state_dir;
    disk_opts.journal_max = opts.JournalMax(spec);
    auto disk = ProtectedDisk::Open(spec.name, spec.path, disk_opts);
    if (!disk.ok()) {
      LOG_ERROR("%s", disk.status().message().c_str());
      close_disks();
      return 1;
    }
    disks.push_back(std::move(disk).value());
    ProtectedDisk& d = *disks.back();
    Status st = catalog.Add({spec.name,
                             "blockrep protected disk " + spec.name + " (" + spec.path + ")",
                             &d.write_path()});
    if (!st.ok()) {
      LOG_ERROR("%s", st.message().c_str());
      close_disks();
      return 1;
    }
    const WritePath::Stats stats = d.write_path().stats();
    LOG_INFO("disk %s: %s, %s; %s, journal %s of %s, next seq %lu", spec.name.c_str(),
             spec.path.c_str(), FormatBytes(d.backing().size_bytes()).c_str(),
             DiskModeName(stats.mode), FormatBytes(stats.journal_bytes).c_str(),
             FormatBytes(stats.journal_max_bytes).c_str(),
             static_cast<unsigned long>(stats.next_seq));
  }

  // Replication: one shipper per disk, once the disks are open.
  std::vector<std::unique_ptr<Shipper>> shippers;
  if (!opts.target.empty()) {
    auto tls = TlsContext::Create(TlsContext::Role::kClient,
                                  {opts.tls_cert, opts.tls_key, opts.tls_ca});
    if (!tls.ok()) {
      LOG_ERROR("%s", tls.status().message().c_str());
      close_disks();
      return 1;
    }
    std::shared_ptr<const TlsContext> ctx = std::move(tls).value();
    for (auto& d : disks) {
      ReplicationOptions ro;
      ro.target = opts.target;
      ro.tls = ctx;
      ro.retry_unit_ms = opts.retry_unit_ms;
      ro.zstd_level = opts.compression_level;
      ro.bandwidth_bytes_per_s = opts.bandwidth_limit_bytes_per_s;
      shippers.push_back(std::make_unique<Shipper>(*d, ro));
    }
    LOG_INFO("replicating to %s as %s", opts.target.c_str(), ctx->own_identity().c_str());
  }
  auto stop_shippers = [&shippers] {
    for (auto& s : shippers) s->Stop();
  };
  const std::string control_path =
      opts.control_path.empty() ? opts.state_dir + "/control.sock" : opts.control_path;
  SourceControl control(disks, shippers, opts);
  auto control_server = ControlServer::Start(
      control_path, [&control](const nlohmann::json& req) { return control.Handle(req); });
  if (!control_server.ok()) {
    LOG_ERROR("%s", control_server.status().message().c_str());
    close_disks();
    return 1;
  }

  Status st = server.Start();
  if (!st.ok()) {
    LOG_ERROR("starting the NBD server: %s", st.ToString().c_str());
    close_disks();
    return 1;
  }
  std::unique_ptr<FuseFront> fuse;
  if (!opts.fuse_dir.empty()) {
    std::vector<FuseFront::File> files;
    for (auto& d : disks) files.push_back({d->name(), &d->write_path()});
    auto started = FuseFront::Start(opts.fuse_dir, std::move(files), server_opts.workers);
    if (!started.ok()) {
      LOG_ERROR("%s", started.status().message().c_str());
      server.Stop();
      close_disks();
      return 1;
    }
    fuse = std::move(started.value());
    LOG_INFO("serving %zu disk file(s) under %s", disks.size(), opts.fuse_dir.c_str());
  }
  for (auto& sh : shippers) sh->Start();
  LOG_INFO("blockrep-source %s ready: %zu disk(s), %d worker(s); control socket %s", kVersion,
           disks.size(), server_opts.workers, control_path.c_str());
  sd_notify(0, "READY=1");

  int sig = 0;
  sigwait(&stop_signals, &sig);
  LOG_INFO("%s: finishing requests in flight", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  sd_notify(0, "STOPPING=1");
  if (fuse) fuse->Stop();
  server.Stop();
  // After the front doors: what the clients wrote last is in the journal, and the shippers
  // send what they can before they go (the rest is sent after the next start).
  control_server.value()->Stop();
  stop_shippers();

  int rc = 0;
  for (auto& d : disks) {
    Status s = d->Close();
    if (!s.ok()) {
      LOG_ERROR("%s", s.ToString().c_str());
      rc = 1;
    }
  }
  LOG_INFO("stopped%s", rc == 0 ? "; all disks flushed" : " with errors");
  return rc;
}
