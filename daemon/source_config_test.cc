// Checks the blockrep-source TOML config file: MergeSourceConfigText on valid files, on files
// that conflict with command-line flags, and on malformed ones (inspecting the merged
// SourceOptions or the error message), then ParseSourceOptions with --config naming a real
// temporary file.
#include "daemon/source_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "daemon/source_options.h"
#include "daemon/source_options_test_support.h"

namespace blockrep {
namespace {

constexpr char kPath[] = "cfg.toml";

// Merges text into *o as though the command line had set what `given` says.
Status Merge(const std::string& text, SourceOptions* o, SourceFlagsGiven given = {}) {
  return MergeSourceConfigText(text, kPath, given, o);
}

bool Mentions(const Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

const DiskSpec* FindDisk(const SourceOptions& o, const std::string& name) {
  for (const DiskSpec& d : o.disks) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

TEST(SourceConfig, FullFileFillsEveryOption) {
  SourceOptions o;
  Status s = Merge(R"(
state_dir = "/srv/blockrep"
nbd = ["unix:/run/blockrep/nbd.sock", "tcp:127.0.0.1:10809"]
fuse = "/run/blockrep/disks"
threads = 3
log_level = "warning"
journal_max_bytes = "25%"

[disks.vm1]
path = "/var/lib/images/vm1.img"
journal_max_bytes = "8G"

[disks.vm2]
path = "/dev/vdb"
)",
                   &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(o.state_dir, "/srv/blockrep");
  EXPECT_EQ(o.nbd_listeners,
            (std::vector<std::string>{"unix:/run/blockrep/nbd.sock", "tcp:127.0.0.1:10809"}));
  EXPECT_EQ(o.fuse_dir, "/run/blockrep/disks");
  EXPECT_EQ(o.workers, 3);
  EXPECT_EQ(o.log_level, LogLevel::kWarning);
  ASSERT_TRUE(o.journal_max.has_value());
  EXPECT_EQ(o.journal_max->percent, 25u);
  ASSERT_EQ(o.disks.size(), 2u);
  const DiskSpec* vm1 = FindDisk(o, "vm1");
  ASSERT_NE(vm1, nullptr);
  EXPECT_EQ(vm1->path, "/var/lib/images/vm1.img");
  ASSERT_TRUE(vm1->journal_max.has_value());
  EXPECT_EQ(vm1->journal_max->bytes, 8ull << 30);
  const DiskSpec* vm2 = FindDisk(o, "vm2");
  ASSERT_NE(vm2, nullptr);
  EXPECT_EQ(vm2->path, "/dev/vdb");
  EXPECT_FALSE(vm2->journal_max.has_value());
}

TEST(SourceConfig, EmptyFileChangesNothing) {
  SourceOptions o;
  Status s = Merge("", &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(o.state_dir, kDefaultStateDir);
  EXPECT_TRUE(o.disks.empty());
  EXPECT_TRUE(o.nbd_listeners.empty());
  EXPECT_EQ(o.workers, 0);
  EXPECT_FALSE(o.journal_max.has_value());
}

TEST(SourceConfig, JournalMaxBytesMayBeAnInteger) {
  SourceOptions o;
  Status s = Merge("journal_max_bytes = 4194304\n", &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(o.journal_max.has_value());
  EXPECT_EQ(o.journal_max->bytes, 4194304u);
}

TEST(SourceConfig, StateDirFlagWinsOverFile) {
  SourceOptions o;
  o.state_dir = "/flag/state";
  SourceFlagsGiven given;
  given.state_dir = true;
  Status s = Merge("state_dir = \"/file/state\"\n", &o, given);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(o.state_dir, "/flag/state");
}

TEST(SourceConfig, FuseFlagWinsOverFile) {
  SourceOptions o;
  o.fuse_dir = "/flag/fuse";
  SourceFlagsGiven given;
  given.fuse_dir = true;
  Status s = Merge("fuse = \"/file/fuse\"\n", &o, given);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(o.fuse_dir, "/flag/fuse");
}

TEST(SourceConfig, ThreadsFlagWinsOverFile) {
  SourceOptions o;
  o.workers = 5;
  SourceFlagsGiven given;
  given.workers = true;
  Status s = Merge("threads = 2\n", &o, given);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(o.workers, 5);
}

// --log-level info equals the default; the file must not override it anyway.
TEST(SourceConfig, LogLevelFlagWinsOverFileEvenWhenItIsTheDefault) {
  SourceOptions o;
  o.log_level = LogLevel::kInfo;
  SourceFlagsGiven given;
  given.log_level = true;
  Status s = Merge("log_level = \"debug\"\n", &o, given);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(o.log_level, LogLevel::kInfo);
}

TEST(SourceConfig, NbdFlagsReplaceFileList) {
  SourceOptions o;
  o.nbd_listeners = {"unix:/flag.sock"};
  Status s = Merge("nbd = [\"unix:/file.sock\", \"tcp:0.0.0.0:10809\"]\n", &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(o.nbd_listeners, std::vector<std::string>{"unix:/flag.sock"});
}

TEST(SourceConfig, DiskFlagReplacesFileDiskOfSameName) {
  SourceOptions o;
  o.disks.push_back(DiskSpec{"vm1", "/flag/vm1.img", std::nullopt});
  Status s = Merge(R"(
[disks.vm1]
path = "/file/vm1.img"
journal_max_bytes = "8G"
)",
                   &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(o.disks.size(), 1u);
  EXPECT_EQ(o.disks[0].path, "/flag/vm1.img");
  EXPECT_FALSE(o.disks[0].journal_max.has_value());
}

TEST(SourceConfig, DiskFlagKeepsFileDisksOfOtherNames) {
  SourceOptions o;
  o.disks.push_back(DiskSpec{"vm1", "/flag/vm1.img", std::nullopt});
  Status s = Merge("[disks.vm2]\npath = \"/file/vm2.img\"\n", &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(o.disks.size(), 2u);
  ASSERT_NE(FindDisk(o, "vm2"), nullptr);
  EXPECT_EQ(FindDisk(o, "vm2")->path, "/file/vm2.img");
}

TEST(SourceConfig, JournalMaxBytesFlagWinsOverFile) {
  SourceOptions o;
  o.journal_max = ByteSize{16ull << 20, 0};
  Status s = Merge("journal_max_bytes = \"50%\"\n", &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(o.journal_max.has_value());
  EXPECT_EQ(o.journal_max->bytes, 16ull << 20);
  EXPECT_EQ(o.journal_max->percent, 0u);
}

TEST(SourceConfig, SyntaxErrorReportsPathLineAndColumn) {
  SourceOptions o;
  Status s = Merge("threads = 2\nfuse = @\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(s.message().rfind("cfg.toml:2:8: ", 0), 0u) << s.message();
}

TEST(SourceConfig, UnknownTopLevelKeyIsErrorNamingIt) {
  SourceOptions o;
  Status s = Merge("thread = 2\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "cfg.toml: thread: unknown key")) << s.message();
}

TEST(SourceConfig, UnknownDiskKeyIsErrorNamingIt) {
  SourceOptions o;
  Status s = Merge("[disks.vm1]\npath = \"/x\"\nsize = 3\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "disks.vm1.size")) << s.message();
}

TEST(SourceConfig, ThreadsStringIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("threads = \"x\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "cfg.toml: threads:")) << s.message();
}

// toml++'s value<int64_t>() reads true as 1: a boolean must not pass for one thread.
TEST(SourceConfig, ThreadsBooleanIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("threads = true\n", &o);
  ASSERT_FALSE(s.ok()) << "workers = " << o.workers;
  EXPECT_TRUE(Mentions(s, "cfg.toml: threads:")) << s.message();
}

TEST(SourceConfig, ThreadsFloatIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("threads = 2.0\n", &o);
  ASSERT_FALSE(s.ok()) << "workers = " << o.workers;
  EXPECT_TRUE(Mentions(s, "cfg.toml: threads:")) << s.message();
}

TEST(SourceConfig, ThreadsOverMaxIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("threads = 65\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "threads")) << s.message();
}

TEST(SourceConfig, NbdStringInsteadOfArrayIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("nbd = \"unix:/x\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "cfg.toml: nbd:")) << s.message();
}

TEST(SourceConfig, NbdEntryWithBadSchemeIsErrorNamingIt) {
  SourceOptions o;
  Status s = Merge("nbd = [\"http://localhost:10809\"]\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "nbd")) << s.message();
  EXPECT_TRUE(Mentions(s, "http://localhost:10809")) << s.message();
}

TEST(SourceConfig, JournalMaxBytesNegativeIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("journal_max_bytes = -1\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "cfg.toml: journal_max_bytes:")) << s.message();
}

TEST(SourceConfig, JournalMaxBytesUnknownUnitIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("journal_max_bytes = \"12Q\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "cfg.toml: journal_max_bytes:")) << s.message();
  EXPECT_TRUE(Mentions(s, "12Q")) << s.message();
}

TEST(SourceConfig, JournalMaxBytesBelowOneMebibyteIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("journal_max_bytes = 4096\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "journal_max_bytes")) << s.message();
}

TEST(SourceConfig, DiskJournalMaxBytesErrorNamesTheDiskKey) {
  SourceOptions o;
  Status s = Merge("[disks.vm1]\npath = \"/x\"\njournal_max_bytes = \"lots\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "disks.vm1.journal_max_bytes")) << s.message();
}

TEST(SourceConfig, StateDirEmptyIsError) {
  SourceOptions o;
  Status s = Merge("state_dir = \"\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "state_dir")) << s.message();
}

TEST(SourceConfig, BadLogLevelIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("log_level = \"verbose\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "log_level")) << s.message();
}

TEST(SourceConfig, DiskWithoutPathIsError) {
  SourceOptions o;
  Status s = Merge("[disks.vm1]\njournal_max_bytes = \"8G\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "disks.vm1.path")) << s.message();
}

TEST(SourceConfig, BadDiskNameInTableHeaderIsError) {
  SourceOptions o;
  Status s = Merge("[disks.\"a/b\"]\npath = \"/x\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "a/b")) << s.message();
  EXPECT_TRUE(o.disks.empty());
}

TEST(SourceConfig, DisksNotATableIsError) {
  SourceOptions o;
  Status s = Merge("disks = [\"vm1\"]\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "disks")) << s.message();
}

// --- Replication keys ----------------------------------------------------------------------

// Every replication key, with values that differ from those of the flags below.
constexpr char kEveryReplicationKey[] = R"(
target = "file:1"
tls_cert = "/file.crt"
tls_key = "/file.key"
tls_ca = "/file-ca.crt"
retry_unit = "1h"
compression_level = 9
bandwidth_limit = "1G"
control = "/file.sock"
)";

// The replication flags the flags-win tests give, and a check that they won.
std::vector<std::string> ReplicationFlags() {
  return {"--target=flag:2",       "--tls-cert=/flag.crt", "--tls-key=/flag.key",
          "--tls-ca=/flag-ca.crt", "--retry-unit=250ms",   "--compression-level=0",
          "--bandwidth-limit=0",   "--control=/flag.sock"};
}

void ExpectReplicationFlagValues(const SourceOptions& o) {
  EXPECT_EQ(o.target, "flag:2");
  EXPECT_EQ(o.tls_cert, "/flag.crt");
  EXPECT_EQ(o.tls_key, "/flag.key");
  EXPECT_EQ(o.tls_ca, "/flag-ca.crt");
  EXPECT_EQ(o.retry_unit_ms, 250u);
  EXPECT_EQ(o.compression_level, 0);
  EXPECT_EQ(o.bandwidth_limit_bytes_per_s, 0u);
  EXPECT_EQ(o.control_path, "/flag.sock");
}

TEST(SourceConfig, ReplicationKeysFillTheirOptions) {
  SourceOptions o;
  Status s = Merge(R"(
target = "backup.example:7420"
tls_cert = "/etc/blockrep/source.crt"
tls_key = "/etc/blockrep/source.key"
tls_ca = "/etc/blockrep/ca.crt"
retry_unit = "200ms"
compression_level = 7
bandwidth_limit = "100M"
control = "/run/blockrep/control.sock"
)",
                   &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(o.target, "backup.example:7420");
  EXPECT_EQ(o.tls_cert, "/etc/blockrep/source.crt");
  EXPECT_EQ(o.tls_key, "/etc/blockrep/source.key");
  EXPECT_EQ(o.tls_ca, "/etc/blockrep/ca.crt");
  EXPECT_EQ(o.retry_unit_ms, 200u);
  EXPECT_EQ(o.compression_level, 7);
  EXPECT_EQ(o.bandwidth_limit_bytes_per_s, 100ull << 20);
  EXPECT_EQ(o.control_path, "/run/blockrep/control.sock");
}

TEST(SourceConfig, EmptyFileKeepsReplicationDefaults) {
  SourceOptions o;
  Status s = Merge("", &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(o.target.empty());
  EXPECT_EQ(o.retry_unit_ms, kDefaultRetryUnitMs);
  EXPECT_EQ(o.compression_level, 1);
  EXPECT_EQ(o.bandwidth_limit_bytes_per_s, 0u);
  EXPECT_TRUE(o.control_path.empty());
}

TEST(SourceConfig, BandwidthLimitMayBeAnInteger) {
  SourceOptions o;
  Status s = Merge("bandwidth_limit = 1500000\n", &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(o.bandwidth_limit_bytes_per_s, 1500000u);
}

TEST(SourceConfig, ReplicationFlagsWinOverFile) {
  SourceOptions o;
  o.target = "flag:2";
  o.tls_cert = "/flag.crt";
  o.tls_key = "/flag.key";
  o.tls_ca = "/flag-ca.crt";
  o.retry_unit_ms = 250;
  o.compression_level = 0;
  o.bandwidth_limit_bytes_per_s = 0;  // a flag that says "no cap" must win too
  o.control_path = "/flag.sock";
  SourceFlagsGiven given;
  given.target = given.tls_cert = given.tls_key = given.tls_ca = true;
  given.retry_unit = given.compression_level = given.bandwidth_limit = given.control_path = true;
  Status s = Merge(kEveryReplicationKey, &o, given);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectReplicationFlagValues(o);
}

TEST(SourceConfig, TargetWithoutPortIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("target = \"backup.example\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "cfg.toml: target:")) << s.message();
  EXPECT_TRUE(Mentions(s, "backup.example")) << s.message();
}

TEST(SourceConfig, TargetEmptyIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("target = \"\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "cfg.toml: target: must not be empty");
}

TEST(SourceConfig, TlsCertNotAStringIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("tls_cert = 1\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "cfg.toml: tls_cert: expected a string");
}

TEST(SourceConfig, RetryUnitBadDurationIsErrorNamingKeyAndText) {
  SourceOptions o;
  Status s = Merge("retry_unit = \"soon\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "cfg.toml: retry_unit:")) << s.message();
  EXPECT_TRUE(Mentions(s, "soon")) << s.message();
}

TEST(SourceConfig, RetryUnitIntegerIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("retry_unit = 60\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "cfg.toml: retry_unit:")) << s.message();
}

TEST(SourceConfig, CompressionLevelOver19IsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("compression_level = 20\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "cfg.toml: compression_level:")) << s.message();
}

TEST(SourceConfig, CompressionLevelStringIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("compression_level = \"3\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "cfg.toml: compression_level:")) << s.message();
}

TEST(SourceConfig, CompressionLevelBooleanIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("compression_level = true\n", &o);
  ASSERT_FALSE(s.ok()) << "compression_level = " << o.compression_level;
  EXPECT_TRUE(Mentions(s, "cfg.toml: compression_level:")) << s.message();
}

TEST(SourceConfig, BandwidthLimitPercentIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("bandwidth_limit = \"10%\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "cfg.toml: bandwidth_limit:")) << s.message();
}

TEST(SourceConfig, BandwidthLimitNegativeIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("bandwidth_limit = -1\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "cfg.toml: bandwidth_limit:")) << s.message();
}

TEST(SourceConfig, ControlEmptyIsErrorNamingKey) {
  SourceOptions o;
  Status s = Merge("control = \"\"\n", &o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "cfg.toml: control:")) << s.message();
}

TEST(SourceConfig, UnknownKeyErrorListsTheReplicationKeys) {
  SourceOptions o;
  Status s = Merge("targett = \"t:1\"\n", &o);
  ASSERT_FALSE(s.ok());
  for (const char* key : {"target", "tls_cert", "tls_key", "tls_ca", "retry_unit",
                          "compression_level", "bandwidth_limit", "control"}) {
    EXPECT_TRUE(Mentions(s, key)) << key << ": " << s.message();
  }
}

// A config file written with mkstemp, removed when the test ends.
class TempConfig {
 public:
  explicit TempConfig(const std::string& text) {
    char name[] = "/tmp/blockrep-source-config-XXXXXX";
    const int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    path_ = name;
    if (fd < 0) return;
    EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
  }
  ~TempConfig() { unlink(path_.c_str()); }
  TempConfig(const TempConfig&) = delete;
  TempConfig& operator=(const TempConfig&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

using test::Parse;

TEST(SourceConfigFile, DisksComeFromFileWhenNoDiskFlag) {
  TempConfig file(R"(
nbd = ["unix:/run/blockrep/nbd.sock"]

[disks.db]
path = "/dev/vdb"

[disks.logs]
path = "/var/lib/logs.img"
journal_max_bytes = "64M"
)");
  auto r = Parse({"--config", file.path()});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->config_path, file.path());
  ASSERT_EQ(r->disks.size(), 2u);
  const DiskSpec* db = FindDisk(*r, "db");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->path, "/dev/vdb");
  const DiskSpec* logs = FindDisk(*r, "logs");
  ASSERT_NE(logs, nullptr);
  EXPECT_EQ(logs->path, "/var/lib/logs.img");
  ASSERT_TRUE(logs->journal_max.has_value());
  EXPECT_EQ(logs->journal_max->bytes, 64ull << 20);
  EXPECT_EQ(r->nbd_listeners, std::vector<std::string>{"unix:/run/blockrep/nbd.sock"});
}

// ParseSourceOptions must tell the merge which scalars came from flags.
TEST(SourceConfigFile, CommandLineScalarsWinOverFile) {
  TempConfig file(R"(
state_dir = "/file/state"
fuse = "/file/fuse"
threads = 2
log_level = "error"
[disks.a]
path = "/x"
)");
  auto r = Parse({"--config", file.path(), "--state-dir", "/flag/state", "--fuse", "/flag/fuse",
                  "--threads", "7", "--log-level", "info"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state_dir, "/flag/state");
  EXPECT_EQ(r->fuse_dir, "/flag/fuse");
  EXPECT_EQ(r->workers, 7);
  EXPECT_EQ(r->log_level, LogLevel::kInfo);
}

TEST(SourceConfigFile, ErrorInFileNamesTheRealPath) {
  TempConfig file("threads = \"x\"\n[disks.a]\npath = \"/x\"\n");
  auto r = Parse({"--config", file.path(), "--nbd", "unix:/s"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(file.path() + ": threads"), std::string::npos)
      << r.status().message();
}

TEST(SourceConfigFile, FileOverOneMebibyteIsError) {
  TempConfig file("# " + std::string(1u << 20, 'x') + "\n");
  auto r = Parse({"--config", file.path(), "--disk", "a=/x", "--nbd", "unix:/s"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(file.path() + ": larger than 1.0 MiB"), std::string::npos)
      << r.status().message();
}

TEST(SourceConfigFile, DirectoryAsConfigIsErrorNamingIt) {
  auto r = Parse({"--config", "/tmp", "--disk", "a=/x", "--nbd", "unix:/s"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--config /tmp: cannot read: Is a directory"),
            std::string::npos)
      << r.status().message();
}

TEST(SourceConfigFile, ReplicationComesFromFile) {
  TempConfig file(R"(
target = "[2001:db8::2]:7420"
tls_cert = "/etc/s.crt"
tls_key = "/etc/s.key"
tls_ca = "/etc/ca.crt"
retry_unit = "30s"
)");
  auto r = Parse({"--config", file.path(), "--disk", "a=/x", "--nbd", "unix:/s"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->target, "[2001:db8::2]:7420");
  EXPECT_EQ(r->tls_cert, "/etc/s.crt");
  EXPECT_EQ(r->retry_unit_ms, 30'000u);
}

// The TLS files may come from the file and the target from a flag, or the other way round.
TEST(SourceConfigFile, TargetFlagWithTlsFilesFromFileIsAccepted) {
  TempConfig file("tls_cert = \"/c\"\ntls_key = \"/k\"\ntls_ca = \"/ca\"\n");
  auto r =
      Parse({"--config", file.path(), "--disk", "a=/x", "--nbd", "unix:/s", "--target", "t:7420"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->target, "t:7420");
  EXPECT_EQ(r->tls_key, "/k");
}

TEST(SourceConfigFile, TargetInFileWithoutTlsCaIsErrorNamingIt) {
  TempConfig file("target = \"t:7420\"\ntls_cert = \"/c\"\ntls_key = \"/k\"\n");
  auto r = Parse({"--config", file.path(), "--disk", "a=/x", "--nbd", "unix:/s"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "--target needs --tls-cert, --tls-key and --tls-ca (mutual TLS): missing --tls-ca");
}

TEST(SourceConfigFile, TlsFilesInFileWithoutTargetIsError) {
  TempConfig file("tls_cert = \"/c\"\ntls_key = \"/k\"\ntls_ca = \"/ca\"\n");
  auto r = Parse({"--config", file.path(), "--disk", "a=/x", "--nbd", "unix:/s"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "--tls-cert given without --target");
}

TEST(SourceConfigFile, ReplicationFlagsWinOverFile) {
  TempConfig file(std::string(kEveryReplicationKey) + "[disks.a]\npath = \"/x\"\n");
  std::vector<std::string> args = {"--config", file.path(), "--nbd", "unix:/s"};
  for (const std::string& flag : ReplicationFlags()) args.push_back(flag);
  auto r = Parse(args);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectReplicationFlagValues(*r);
}

}  // namespace
}  // namespace blockrep
