// Checks ParseTargetOptions on valid and invalid blockrep-target command lines, built as argv
// arrays, and with --config naming a TOML file written into a temporary directory: each flag
// and key, flags winning over the file, and the errors (inspecting the options or the Status).
#include "target/target_options.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "core/test_temp_dir.h"

namespace blockrep {
namespace {

// Parses {"blockrep-target", args...}. getopt keeps pointers into argv between calls, so every
// argv built here lives until the test program exits. Not thread-safe.
Result<TargetOptions> Parse(std::vector<std::string> args) {
  static std::deque<std::vector<std::string>> strings;
  static std::deque<std::vector<char*>> argvs;
  args.insert(args.begin(), "blockrep-target");
  strings.push_back(std::move(args));
  std::vector<char*> argv;
  for (std::string& a : strings.back()) argv.push_back(a.data());
  argv.push_back(nullptr);
  argvs.push_back(std::move(argv));
  return ParseTargetOptions(static_cast<int>(argvs.back().size() - 1), argvs.back().data());
}

// The flags every valid command line needs, then `more`.
std::vector<std::string> Valid(std::vector<std::string> more = {}) {
  std::vector<std::string> args = {"--listen",  "0.0.0.0:7420", "--tls-cert", "/etc/t.crt",
                                   "--tls-key", "/etc/t.key",   "--tls-ca",   "/etc/ca.crt",
                                   "--disk",    "vm1=site-a"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

bool Mentions(const Result<TargetOptions>& r, const std::string& what) {
  return r.status().message().find(what) != std::string::npos;
}

const TargetDiskSpec* FindDisk(const TargetOptions& o, const std::string& name) {
  for (const TargetDiskSpec& d : o.disks) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

// A config file in a fresh temporary directory.
class TargetConfigFile : public ::testing::Test {
 protected:
  // Writes text to the config file; returns its path.
  std::string Write(const std::string& text) {
    const std::string path = dir_.file("target.toml");
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0) << path;
    if (fd >= 0) {
      EXPECT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
      ::close(fd);
    }
    return path;
  }

  test::TempDir dir_;
};

// --- Command line --------------------------------------------------------------------------

TEST(ParseTargetOptions, EveryFlagIsKept) {
  auto r = Parse({"--listen", "[::]:7420", "--state-dir", "/srv/target", "--tls-cert", "/t.crt",
                  "--tls-key", "/t.key", "--tls-ca", "/ca.crt", "--disk", "vm1=site-a", "--disk",
                  "vm2=site b", "--control", "/run/t.sock", "--log-level", "debug"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->listen, "[::]:7420");
  EXPECT_EQ(r->state_dir, "/srv/target");
  EXPECT_EQ(r->tls_cert, "/t.crt");
  EXPECT_EQ(r->tls_key, "/t.key");
  EXPECT_EQ(r->tls_ca, "/ca.crt");
  ASSERT_EQ(r->disks.size(), 2u);
  EXPECT_EQ(r->disks[0].name, "vm1");
  EXPECT_EQ(r->disks[0].source_identity, "site-a");
  EXPECT_TRUE(r->disks[0].path.empty());
  EXPECT_EQ(r->disks[1].name, "vm2");
  EXPECT_EQ(r->disks[1].source_identity, "site b");
  EXPECT_EQ(r->control_path, "/run/t.sock");
  EXPECT_EQ(r->log_level, LogLevel::kDebug);
  EXPECT_FALSE(r->help);
  EXPECT_FALSE(r->version);
}

TEST(ParseTargetOptions, DefaultsWhenOptionalFlagsAbsent) {
  auto r = Parse(Valid());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state_dir, "/var/lib/blockrep-target");
  EXPECT_TRUE(r->control_path.empty());
  EXPECT_EQ(r->log_level, LogLevel::kInfo);
  EXPECT_TRUE(r->config_path.empty());
}

TEST(ParseTargetOptions, IdentityMayContainEquals) {
  auto r = Parse(Valid({"--disk", "vm2=CN=x"}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_NE(FindDisk(*r, "vm2"), nullptr);
  EXPECT_EQ(FindDisk(*r, "vm2")->source_identity, "CN=x");
}

TEST(ParseTargetOptions, NoArgumentsIsError) { EXPECT_FALSE(Parse({}).ok()); }

TEST(ParseTargetOptions, MissingListenIsError) {
  auto r = Parse({"--tls-cert", "/c", "--tls-key", "/k", "--tls-ca", "/a", "--disk", "a=s"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(Mentions(r, "--listen")) << r.status().message();
}

TEST(ParseTargetOptions, ListenWithoutPortIsErrorNamingIt) {
  auto r = Parse(Valid({"--listen", "0.0.0.0"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--listen")) << r.status().message();
  EXPECT_TRUE(Mentions(r, "'0.0.0.0'")) << r.status().message();
}

TEST(ParseTargetOptions, ListenPortZeroIsError) {
  EXPECT_FALSE(Parse(Valid({"--listen", "0.0.0.0:0"})).ok());
}

TEST(ParseTargetOptions, ListenEmptyIsError) {
  auto r = Parse(Valid({"--listen="}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--listen")) << r.status().message();
}

TEST(ParseTargetOptions, MissingTlsKeyIsErrorNamingIt) {
  auto r = Parse({"--listen", "h:1", "--tls-cert", "/c", "--tls-ca", "/a", "--disk", "a=s"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "--tls-cert, --tls-key and --tls-ca are required (mutual TLS): missing --tls-key");
}

TEST(ParseTargetOptions, MissingEveryTlsFileListsAllThree) {
  auto r = Parse({"--listen", "h:1", "--disk", "a=s"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "missing --tls-cert, --tls-key, --tls-ca")) << r.status().message();
}

TEST(ParseTargetOptions, TlsCaEmptyIsError) {
  auto r = Parse(Valid({"--tls-ca="}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--tls-ca needs a path")) << r.status().message();
}

TEST(ParseTargetOptions, MissingDiskIsError) {
  auto r = Parse({"--listen", "h:1", "--tls-cert", "/c", "--tls-key", "/k", "--tls-ca", "/a"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--disk")) << r.status().message();
}

TEST(ParseTargetOptions, DuplicateDiskNameIsError) {
  auto r = Parse(Valid({"--disk", "vm1=site-b"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "vm1")) << r.status().message();
  EXPECT_TRUE(Mentions(r, "twice")) << r.status().message();
}

TEST(ParseTargetOptions, DiskWithoutEqualsIsErrorNamingTheForm) {
  auto r = Parse(Valid({"--disk", "vm2"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--disk vm2: expected NAME=IDENTITY")) << r.status().message();
}

TEST(ParseTargetOptions, DiskWithEmptyIdentityIsError) {
  EXPECT_FALSE(Parse(Valid({"--disk", "vm2="})).ok());
}

TEST(ParseTargetOptions, DiskWithBadNameIsErrorNamingIt) {
  auto r = Parse(Valid({"--disk", ".hidden=site-a"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, ".hidden")) << r.status().message();
}

TEST(ParseTargetOptions, IdentityWithControlCharacterIsError) {
  auto r = Parse(Valid({"--disk", "vm2=site\na"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "control character")) << r.status().message();
}

TEST(ParseTargetOptions, IdentityOfMaxBytesIsAccepted) {
  EXPECT_TRUE(Parse(Valid({"--disk", "vm2=" + std::string(kMaxIdentityBytes, 's')})).ok());
}

TEST(ParseTargetOptions, IdentityOverMaxBytesIsError) {
  EXPECT_FALSE(Parse(Valid({"--disk", "vm2=" + std::string(kMaxIdentityBytes + 1, 's')})).ok());
}

TEST(ParseTargetOptions, StateDirEmptyIsError) {
  auto r = Parse(Valid({"--state-dir="}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--state-dir")) << r.status().message();
}

TEST(ParseTargetOptions, ControlEmptyIsError) {
  auto r = Parse(Valid({"--control="}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--control")) << r.status().message();
}

TEST(ParseTargetOptions, BadLogLevelIsErrorNamingIt) {
  auto r = Parse(Valid({"--log-level", "verbose"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--log-level")) << r.status().message();
  EXPECT_TRUE(Mentions(r, "verbose")) << r.status().message();
}

TEST(ParseTargetOptions, UnknownOptionIsErrorNamingIt) {
  auto r = Parse(Valid({"--target", "x:1"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "unknown option --target")) << r.status().message();
}

TEST(ParseTargetOptions, OptionWithoutValueIsError) {
  auto r = Parse(Valid({"--disk"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "needs a value")) << r.status().message();
}

TEST(ParseTargetOptions, StrayArgumentIsError) {
  auto r = Parse(Valid({"extra"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "extra")) << r.status().message();
}

TEST(ParseTargetOptions, HelpNeedsNothingElse) {
  auto r = Parse({"--help"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->help);
}

TEST(ParseTargetOptions, VersionNeedsNothingElse) {
  auto r = Parse({"--version"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->version);
}

TEST(ParseTargetOptions, CanParseTwiceInOneProcess) {
  ASSERT_FALSE(Parse({"-xy"}).ok());
  auto r = Parse(Valid());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST(ParseTargetOptions, MissingConfigFileIsErrorNamingIt) {
  auto r = Parse(Valid({"--config", "/nonexistent-blockrep-test/target.toml"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--config /nonexistent-blockrep-test/target.toml: cannot open"))
      << r.status().message();
}

TEST(TargetUsage, MentionsEveryOption) {
  const std::string usage = TargetUsage();
  for (const char* opt :
       {"--listen", "--state-dir", "--tls-cert", "--tls-key", "--tls-ca", "--disk", "--control",
        "--config", "--log-level", "--help", "--version"}) {
    EXPECT_NE(usage.find(opt), std::string::npos) << opt;
  }
}

TEST(TargetUsage, SaysADiskIsAcceptedOnlyFromItsIdentity) {
  EXPECT_NE(
      std::string(TargetUsage()).find("accepts a disk only from the identity configured for it"),
      std::string::npos);
}

// --- Config file ---------------------------------------------------------------------------

TEST_F(TargetConfigFile, FullFileFillsEveryOption) {
  const std::string path = Write(R"(
listen = "0.0.0.0:7420"
state_dir = "/srv/target"
tls_cert = "/etc/t.crt"
tls_key = "/etc/t.key"
tls_ca = "/etc/ca.crt"
control = "/run/t.sock"
log_level = "warning"

[disks.vm1]
source = "site-a"

[disks.vm2]
source = "site-b"
path = "/dev/vg0/vm2"
)");
  auto r = Parse({"--config", path});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->config_path, path);
  EXPECT_EQ(r->listen, "0.0.0.0:7420");
  EXPECT_EQ(r->state_dir, "/srv/target");
  EXPECT_EQ(r->tls_cert, "/etc/t.crt");
  EXPECT_EQ(r->tls_key, "/etc/t.key");
  EXPECT_EQ(r->tls_ca, "/etc/ca.crt");
  EXPECT_EQ(r->control_path, "/run/t.sock");
  EXPECT_EQ(r->log_level, LogLevel::kWarning);
  ASSERT_EQ(r->disks.size(), 2u);
  const TargetDiskSpec* vm1 = FindDisk(*r, "vm1");
  ASSERT_NE(vm1, nullptr);
  EXPECT_EQ(vm1->source_identity, "site-a");
  EXPECT_TRUE(vm1->path.empty());
  const TargetDiskSpec* vm2 = FindDisk(*r, "vm2");
  ASSERT_NE(vm2, nullptr);
  EXPECT_EQ(vm2->source_identity, "site-b");
  EXPECT_EQ(vm2->path, "/dev/vg0/vm2");
}

TEST_F(TargetConfigFile, ScalarFlagsWinOverFile) {
  const std::string path = Write(R"(
listen = "file:1"
state_dir = "/file/state"
tls_cert = "/file.crt"
tls_key = "/file.key"
tls_ca = "/file-ca.crt"
control = "/file.sock"
log_level = "error"
)");
  auto r = Parse({"--config", path, "--listen", "flag:2", "--state-dir", "/flag/state",
                  "--tls-cert", "/flag.crt", "--tls-key", "/flag.key", "--tls-ca", "/flag-ca.crt",
                  "--control", "/flag.sock", "--log-level", "info", "--disk", "a=s"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->listen, "flag:2");
  EXPECT_EQ(r->state_dir, "/flag/state");
  EXPECT_EQ(r->tls_cert, "/flag.crt");
  EXPECT_EQ(r->tls_key, "/flag.key");
  EXPECT_EQ(r->tls_ca, "/flag-ca.crt");
  EXPECT_EQ(r->control_path, "/flag.sock");
  EXPECT_EQ(r->log_level, LogLevel::kInfo);
}

TEST_F(TargetConfigFile, TlsFilesFromFileCompleteTheCommandLine) {
  const std::string path = Write("tls_cert = \"/c\"\ntls_key = \"/k\"\ntls_ca = \"/a\"\n");
  auto r = Parse({"--config", path, "--listen", "h:1", "--disk", "a=s"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tls_key, "/k");
}

// The flag replaces the file's disk entirely: its identity and its path.
TEST_F(TargetConfigFile, DiskFlagReplacesFileDiskOfSameNamePathAndAll) {
  const std::string path = Write("[disks.vm1]\nsource = \"file-id\"\npath = \"/file/vm1\"\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->disks.size(), 1u);
  EXPECT_EQ(r->disks[0].source_identity, "site-a");
  EXPECT_TRUE(r->disks[0].path.empty());
}

TEST_F(TargetConfigFile, DiskFlagKeepsFileDisksOfOtherNames) {
  const std::string path = Write("[disks.vm2]\nsource = \"site-b\"\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->disks.size(), 2u);
  ASSERT_NE(FindDisk(*r, "vm2"), nullptr);
  EXPECT_EQ(FindDisk(*r, "vm2")->source_identity, "site-b");
}

TEST_F(TargetConfigFile, DiskWithoutSourceIsErrorNamingTheKey) {
  const std::string path = Write("[disks.vm2]\npath = \"/x\"\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, path + ": disks.vm2.source: missing")) << r.status().message();
}

TEST_F(TargetConfigFile, DiskSourceNotAStringIsErrorNamingTheKey) {
  const std::string path = Write("[disks.vm2]\nsource = 3\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), path + ": disks.vm2.source: expected a string");
}

TEST_F(TargetConfigFile, DiskSourceEmptyIsErrorNamingTheKey) {
  const std::string path = Write("[disks.vm2]\nsource = \"\"\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, path + ": disks.vm2.source:")) << r.status().message();
}

TEST_F(TargetConfigFile, DiskPathEmptyIsErrorNamingTheKey) {
  const std::string path = Write("[disks.vm2]\nsource = \"s\"\npath = \"\"\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), path + ": disks.vm2.path: must not be empty");
}

TEST_F(TargetConfigFile, UnknownDiskKeyIsErrorListingTheKnownOnes) {
  const std::string path = Write("[disks.vm2]\nsource = \"s\"\nidentity = \"s\"\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), path + ": disks.vm2.identity: unknown key (known: source, path)");
}

TEST_F(TargetConfigFile, UnknownTopLevelKeyIsErrorListingTheKnownOnes) {
  const std::string path = Write("target = \"x:1\"\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            path +
                ": target: unknown key (known: listen, state_dir, tls_cert, tls_key, tls_ca, "
                "control, log_level, disks)");
}

TEST_F(TargetConfigFile, BadDiskNameInTableHeaderIsError) {
  const std::string path = Write("[disks.\"a/b\"]\nsource = \"s\"\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "a/b")) << r.status().message();
}

TEST_F(TargetConfigFile, DisksNotATableIsError) {
  const std::string path = Write("disks = [\"vm1\"]\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, path + ": disks:")) << r.status().message();
}

TEST_F(TargetConfigFile, DiskNotATableIsError) {
  const std::string path = Write("[disks]\nvm2 = \"site-b\"\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, path + ": disks.vm2: expected a table")) << r.status().message();
}

TEST_F(TargetConfigFile, ListenWithoutPortIsErrorNamingKey) {
  const std::string path = Write("listen = \"0.0.0.0\"\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, path + ": listen: address '0.0.0.0'")) << r.status().message();
}

TEST_F(TargetConfigFile, BadLogLevelIsErrorNamingKey) {
  const std::string path = Write("log_level = \"loud\"\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, path + ": log_level:")) << r.status().message();
}

TEST_F(TargetConfigFile, StateDirEmptyIsErrorNamingKey) {
  const std::string path = Write("state_dir = \"\"\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), path + ": state_dir: must not be empty");
}

TEST_F(TargetConfigFile, SyntaxErrorReportsPathLineAndColumn) {
  const std::string path = Write("listen = \"h:1\"\ncontrol = @\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind(path + ":2:11: ", 0), 0u) << r.status().message();
}

TEST_F(TargetConfigFile, TwoDisksWithOnePathIsError) {
  const std::string path = Write(R"(
[disks.vm2]
source = "s"
path = "/dev/vg0/r"
[disks.vm3]
source = "s"
path = "/dev/vg0/r"
)");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "the same path /dev/vg0/r")) << r.status().message();
}

TEST_F(TargetConfigFile, FileOverOneMebibyteIsError) {
  const std::string path = Write("# " + std::string(1u << 20, 'x') + "\n");
  auto r = Parse(Valid({"--config", path}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, path + ": larger than 1.0 MiB")) << r.status().message();
}

}  // namespace
}  // namespace blockrep
