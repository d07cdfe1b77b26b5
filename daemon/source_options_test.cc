// Checks ParseSourceOptions on valid and invalid blockrep-source command lines by building
// argv arrays and inspecting the parsed options or the error Status.
#include "daemon/source_options.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "daemon/source_options_test_support.h"

namespace blockrep {
namespace {

using test::Parse;

bool Mentions(const Result<SourceOptions>& r, const std::string& what) {
  return r.status().message().find(what) != std::string::npos;
}

TEST(ParseSourceOptions, MultipleDisksAndListeners) {
  auto r = Parse({"--disk", "db=/dev/vdb", "--disk=logs=/var/lib/logs.img", "--nbd",
                  "unix:/run/blockrep.sock", "--nbd", "tcp:127.0.0.1:10809", "--threads", "4",
                  "--log-level", "debug"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->disks.size(), 2u);
  EXPECT_EQ(r->disks[0].name, "db");
  EXPECT_EQ(r->disks[0].path, "/dev/vdb");
  EXPECT_EQ(r->disks[1].name, "logs");
  EXPECT_EQ(r->disks[1].path, "/var/lib/logs.img");
  ASSERT_EQ(r->nbd_listeners.size(), 2u);
  EXPECT_EQ(r->nbd_listeners[0], "unix:/run/blockrep.sock");
  EXPECT_EQ(r->nbd_listeners[1], "tcp:127.0.0.1:10809");
  EXPECT_EQ(r->workers, 4);
  EXPECT_EQ(r->log_level, LogLevel::kDebug);
  EXPECT_FALSE(r->help);
  EXPECT_FALSE(r->version);
}

TEST(ParseSourceOptions, DefaultsWhenOptionalFlagsAbsent) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->workers, 0);
  EXPECT_EQ(r->log_level, LogLevel::kInfo);
}

TEST(ParseSourceOptions, PathMayContainEquals) {
  auto r = Parse({"--disk", "a=/data/x=y.img", "--nbd", "unix:/s"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->disks[0].name, "a");
  EXPECT_EQ(r->disks[0].path, "/data/x=y.img");
}

TEST(ParseSourceOptions, MissingDiskIsError) {
  auto r = Parse({"--nbd", "unix:/s"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(Mentions(r, "--disk")) << r.status().message();
}

TEST(ParseSourceOptions, MissingNbdIsError) {
  auto r = Parse({"--disk", "a=/x"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--nbd")) << r.status().message();
}

TEST(ParseSourceOptions, NoArgumentsIsError) { EXPECT_FALSE(Parse({}).ok()); }

TEST(ParseSourceOptions, DuplicateDiskNameIsError) {
  auto r = Parse({"--disk", "a=/x", "--disk", "a=/y", "--nbd", "unix:/s"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "twice")) << r.status().message();
}

TEST(ParseSourceOptions, SamePathUnderTwoNamesIsAccepted) {
  // Only names must be unique; the second open of one file fails later, on its lock.
  auto r = Parse({"--disk", "a=/x", "--disk", "b=/x", "--nbd", "unix:/s"});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST(ParseSourceOptions, DiskWithoutEqualsIsError) {
  auto r = Parse({"--disk", "noequals", "--nbd", "unix:/s"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "noequals")) << r.status().message();
  EXPECT_TRUE(Mentions(r, "NAME=PATH"));
}

TEST(ParseSourceOptions, DiskWithEmptyNameIsError) {
  EXPECT_FALSE(Parse({"--disk", "=/x", "--nbd", "unix:/s"}).ok());
}

TEST(ParseSourceOptions, DiskWithEmptyPathIsError) {
  EXPECT_FALSE(Parse({"--disk", "a=", "--nbd", "unix:/s"}).ok());
}

TEST(ParseSourceOptions, NbdWithBadSchemeIsError) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "http://localhost:10809"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "http://localhost:10809")) << r.status().message();
}

TEST(ParseSourceOptions, NbdWithoutSchemeIsError) {
  EXPECT_FALSE(Parse({"--disk", "a=/x", "--nbd", "/run/blockrep.sock"}).ok());
}

TEST(ParseSourceOptions, ThreadsZeroIsError) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--threads", "0"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--threads")) << r.status().message();
}

TEST(ParseSourceOptions, ThreadsNotANumberIsError) {
  EXPECT_FALSE(Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--threads", "abc"}).ok());
}

TEST(ParseSourceOptions, ThreadsWithTrailingGarbageIsError) {
  EXPECT_FALSE(Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--threads", "4x"}).ok());
}

TEST(ParseSourceOptions, ThreadsEmptyIsError) {
  EXPECT_FALSE(Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--threads="}).ok());
}

TEST(ParseSourceOptions, ThreadsNegativeIsError) {
  EXPECT_FALSE(Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--threads", "-1"}).ok());
}

TEST(ParseSourceOptions, ThreadsOverMaxIsError) {
  EXPECT_FALSE(Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--threads", "65"}).ok());
}

TEST(ParseSourceOptions, ThreadsAtMaxIsAccepted) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--threads", "64"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->workers, kMaxWorkers);
}

TEST(ParseSourceOptions, BadLogLevelIsError) {
  EXPECT_FALSE(Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--log-level", "verbose"}).ok());
}

TEST(ParseSourceOptions, UnknownOptionIsError) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--frobnicate"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--frobnicate")) << r.status().message();
}

TEST(ParseSourceOptions, OptionWithoutValueIsError) {
  auto r = Parse({"--nbd", "unix:/s", "--disk"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "needs a value")) << r.status().message();
}

TEST(ParseSourceOptions, StrayArgumentIsError) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "extra"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "extra")) << r.status().message();
}

TEST(ParseSourceOptions, HelpNeedsNothingElse) {
  auto r = Parse({"--help"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->help);
}

TEST(ParseSourceOptions, HelpWinsOverLaterErrors) {
  auto r = Parse({"--help", "--threads", "0"});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->help);
}

TEST(ParseSourceOptions, VersionNeedsNothingElse) {
  auto r = Parse({"--version"});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->version);
}

TEST(ParseSourceOptions, CanParseTwiceInOneProcess) {
  ASSERT_FALSE(Parse({"--frobnicate"}).ok());
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s"});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

// Resetting getopt with `optind = 1` would leave glibc's "next character" pointer inside an
// earlier argv ("-xy" stops after 'x'); `optind = 0` restarts scanning cleanly.
TEST(ParseSourceOptions, ValidCommandLineParsesAfterAnAbortedShortOptionCluster) {
  ASSERT_FALSE(Parse({"-xy"}).ok());
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s"});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

// glibc sets optopt for an unknown short option too; it must not read as a missing value.
TEST(ParseSourceOptions, UnknownShortOptionIsReportedAsUnknown) {
  auto r = Parse({"-x", "--disk", "a=/x", "--nbd", "unix:/s"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "unknown option -x")) << r.status().message();
}

// A value given to a flag that takes none is not "missing a value".
TEST(ParseSourceOptions, ValueGivenToFlagOptionIsNotReportedAsMissing) {
  auto r = Parse({"--version=yes", "--disk", "a=/x", "--nbd", "unix:/s"});
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(Mentions(r, "needs a value")) << r.status().message();
}

TEST(ParseSourceOptions, StateDirDefaultsToVarLibBlockrep) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state_dir, "/var/lib/blockrep");
}

TEST(ParseSourceOptions, StateDirGivenIsKept) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--state-dir", "/srv/blockrep"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state_dir, "/srv/blockrep");
}

TEST(ParseSourceOptions, StateDirEmptyIsError) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--state-dir="});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--state-dir")) << r.status().message();
}

TEST(ParseSourceOptions, JournalMaxBytesUnsetByDefault) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->journal_max.has_value());
}

TEST(ParseSourceOptions, JournalMaxBytesPlainBytes) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--journal-max-bytes", "2097152"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->journal_max.has_value());
  EXPECT_EQ(r->journal_max->bytes, 2097152u);
  EXPECT_EQ(r->journal_max->percent, 0u);
}

TEST(ParseSourceOptions, JournalMaxBytesWithUnit) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--journal-max-bytes", "8G"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->journal_max.has_value());
  EXPECT_EQ(r->journal_max->bytes, 8ull << 30);
  EXPECT_EQ(r->journal_max->percent, 0u);
}

TEST(ParseSourceOptions, JournalMaxBytesAsPercentOfDisk) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--journal-max-bytes", "50%"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->journal_max.has_value());
  EXPECT_EQ(r->journal_max->percent, 50u);
}

TEST(ParseSourceOptions, JournalMaxBytesGarbageIsErrorNamingIt) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--journal-max-bytes", "lots"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--journal-max-bytes")) << r.status().message();
  EXPECT_TRUE(Mentions(r, "lots")) << r.status().message();
}

TEST(ParseSourceOptions, JournalMaxBytesBelowOneMebibyteIsError) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--journal-max-bytes", "1048575"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--journal-max-bytes")) << r.status().message();
}

TEST(ParseSourceOptions, JournalMaxBytesOfExactlyOneMebibyteIsAccepted) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--journal-max-bytes", "1M"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->journal_max->bytes, kMinJournalMaxBytes);
}

TEST(ParseSourceOptions, FuseDirIsAccepted) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--fuse", "/run/blockrep/disks"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->fuse_dir, "/run/blockrep/disks");
}

TEST(ParseSourceOptions, FuseDirEmptyIsError) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--fuse="});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--fuse")) << r.status().message();
}

TEST(ParseSourceOptions, FuseWithoutNbdIsAccepted) {
  auto r = Parse({"--disk", "a=/x", "--fuse", "/mnt/disks"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->nbd_listeners.empty());
  EXPECT_EQ(r->fuse_dir, "/mnt/disks");
}

TEST(ParseSourceOptions, NeitherNbdNorFuseIsError) {
  auto r = Parse({"--disk", "a=/x", "--state-dir", "/srv"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--nbd")) << r.status().message();
  EXPECT_TRUE(Mentions(r, "--fuse")) << r.status().message();
}

TEST(ParseSourceOptions, MissingConfigFileIsErrorNamingIt) {
  const std::string path = "/nonexistent-blockrep-test/source.toml";
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--config", path});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(Mentions(r, path)) << r.status().message();
  EXPECT_TRUE(Mentions(r, "No such file or directory")) << r.status().message();
}

TEST(ParseSourceOptions, ConfigEmptyIsError) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--config="});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--config")) << r.status().message();
}

TEST(ParseSourceOptions, DiskNameWithDotUnderscoreDashAndDigitsIsAccepted) {
  auto r = Parse({"--disk", "vm-disk_3.x=/x", "--nbd", "unix:/s"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->disks[0].name, "vm-disk_3.x");
}

TEST(ParseSourceOptions, DiskNameWithSlashIsError) {
  auto r = Parse({"--disk", "a/b=/x", "--nbd", "unix:/s"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "a/b")) << r.status().message();
}

TEST(ParseSourceOptions, DiskNameStartingWithDotIsError) {
  auto r = Parse({"--disk", ".hidden=/x", "--nbd", "unix:/s"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, ".hidden")) << r.status().message();
}

TEST(SourceDiskName, EmptyIsError) { EXPECT_FALSE(ValidateDiskName("").ok()); }

TEST(SourceDiskName, SixtyFourBytesIsAccepted) {
  EXPECT_TRUE(ValidateDiskName(std::string(kMaxDiskNameBytes, 'a')).ok());
}

TEST(SourceDiskName, SixtyFiveBytesIsError) {
  EXPECT_FALSE(ValidateDiskName(std::string(kMaxDiskNameBytes + 1, 'a')).ok());
}

TEST(ParseSourceOptions, DiskNameOfSixtyFiveBytesIsError) {
  auto r = Parse({"--disk", std::string(65, 'd') + "=/x", "--nbd", "unix:/s"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "64")) << r.status().message();
}

TEST(SourceDiskName, NonAsciiIsError) { EXPECT_FALSE(ValidateDiskName("disk\xc3\xa9").ok()); }

TEST(SourceDiskName, SpaceIsError) { EXPECT_FALSE(ValidateDiskName("my disk").ok()); }

// 1 GiB disk throughout: 50% is 512 MiB.
constexpr uint64_t kDiskBytes = 1ull << 30;

TEST(SourceOptionsJournalMaxBytes, DefaultIsHalfTheDisk) {
  SourceOptions o;
  DiskSpec d{"a", "/x", std::nullopt};
  EXPECT_EQ(o.JournalMax(d).Resolve(kDiskBytes), kDiskBytes / 2);
}

TEST(SourceOptionsJournalMaxBytes, GlobalWinsOverDefault) {
  SourceOptions o;
  o.journal_max = ByteSize{64ull << 20, 0};
  DiskSpec d{"a", "/x", std::nullopt};
  EXPECT_EQ(o.JournalMax(d).Resolve(kDiskBytes), 64ull << 20);
}

TEST(SourceOptionsJournalMaxBytes, GlobalPercentResolvesAgainstTheDisk) {
  SourceOptions o;
  o.journal_max = ByteSize{0, 25};
  DiskSpec d{"a", "/x", std::nullopt};
  EXPECT_EQ(o.JournalMax(d).Resolve(kDiskBytes), kDiskBytes / 4);
}

TEST(SourceOptionsJournalMaxBytes, PerDiskWinsOverGlobal) {
  SourceOptions o;
  o.journal_max = ByteSize{64ull << 20, 0};
  DiskSpec d{"a", "/x", ByteSize{8ull << 20, 0}};
  EXPECT_EQ(o.JournalMax(d).Resolve(kDiskBytes), 8ull << 20);
}

// --- Replication options -------------------------------------------------------------------

// A valid command line replicating to target: one disk, one listener and the TLS files.
std::vector<std::string> ReplicatingTo(const std::string& target,
                                       std::vector<std::string> more = {}) {
  std::vector<std::string> args = {"--disk",    "a=/x",       "--nbd",      "unix:/s",
                                   "--target",  target,       "--tls-cert", "/etc/s.crt",
                                   "--tls-key", "/etc/s.key", "--tls-ca",   "/etc/ca.crt"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::vector<std::string> Replicating(std::vector<std::string> more = {}) {
  return ReplicatingTo("backup.example:7420", std::move(more));
}

TEST(ParseSourceOptions, ReplicationIsOffByDefault) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->target.empty());
  EXPECT_TRUE(r->tls_cert.empty());
  EXPECT_TRUE(r->tls_key.empty());
  EXPECT_TRUE(r->tls_ca.empty());
  EXPECT_EQ(r->retry_unit_ms, kDefaultRetryUnitMs);
  EXPECT_EQ(r->compression_level, 1);
  EXPECT_EQ(r->bandwidth_limit_bytes_per_s, 0u);
  EXPECT_TRUE(r->control_path.empty());
}

TEST(ParseSourceOptions, TargetAndTlsFilesAreKept) {
  auto r = Parse(Replicating());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->target, "backup.example:7420");
  EXPECT_EQ(r->tls_cert, "/etc/s.crt");
  EXPECT_EQ(r->tls_key, "/etc/s.key");
  EXPECT_EQ(r->tls_ca, "/etc/ca.crt");
}

TEST(ParseSourceOptions, TargetMayBeBracketedIpv6) {
  auto r = Parse(ReplicatingTo("[2001:db8::2]:7420"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->target, "[2001:db8::2]:7420");
}

TEST(ParseSourceOptions, TargetWithoutPortIsErrorNamingIt) {
  auto r = Parse(ReplicatingTo("backup.example"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--target")) << r.status().message();
  EXPECT_TRUE(Mentions(r, "backup.example")) << r.status().message();
}

TEST(ParseSourceOptions, TargetPortZeroIsError) {
  EXPECT_FALSE(Parse(ReplicatingTo("backup.example:0")).ok());
}

TEST(ParseSourceOptions, TargetPortOver65535IsError) {
  EXPECT_FALSE(Parse(ReplicatingTo("backup.example:65536")).ok());
}

TEST(ParseSourceOptions, TargetUnbracketedIpv6IsError) {
  EXPECT_FALSE(Parse(ReplicatingTo("2001:db8::2:7420")).ok());
}

TEST(ParseSourceOptions, TargetEmptyIsError) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--target="});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--target")) << r.status().message();
}

TEST(ParseSourceOptions, TargetWithoutAnyTlsFileIsErrorListingAllThree) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--target", "t:7420"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "--target needs --tls-cert, --tls-key and --tls-ca (mutual TLS): missing --tls-cert, "
            "--tls-key, --tls-ca");
}

TEST(ParseSourceOptions, TargetWithoutTlsKeyIsErrorNamingIt) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--target", "t:7420", "--tls-cert", "/c",
                  "--tls-ca", "/ca"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "--target needs --tls-cert, --tls-key and --tls-ca (mutual TLS): missing --tls-key");
}

TEST(ParseSourceOptions, TlsCertWithoutTargetIsError) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--tls-cert", "/c"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "--tls-cert given without --target");
}

TEST(ParseSourceOptions, TlsCaAloneWithoutTargetIsError) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--tls-ca", "/ca"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "--tls-ca given without --target");
}

TEST(ParseSourceOptions, TlsKeyEmptyIsError) {
  auto r = Parse(Replicating({"--tls-key="}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--tls-key needs a path")) << r.status().message();
}

TEST(ParseSourceOptions, RetryUnitInMilliseconds) {
  auto r = Parse(Replicating({"--retry-unit", "200ms"}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->retry_unit_ms, 200u);
}

TEST(ParseSourceOptions, RetryUnitBareNumberIsSeconds) {
  auto r = Parse(Replicating({"--retry-unit", "5"}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->retry_unit_ms, 5000u);
}

TEST(ParseSourceOptions, RetryUnitZeroIsErrorNamingFlag) {
  auto r = Parse(Replicating({"--retry-unit", "0s"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--retry-unit")) << r.status().message();
  EXPECT_TRUE(Mentions(r, "0s")) << r.status().message();
}

TEST(ParseSourceOptions, RetryUnitUnknownUnitIsErrorNamingIt) {
  auto r = Parse(Replicating({"--retry-unit", "3d"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--retry-unit")) << r.status().message();
  EXPECT_TRUE(Mentions(r, "3d")) << r.status().message();
}

TEST(ParseSourceOptions, RetryUnitOverADayIsError) {
  EXPECT_FALSE(Parse(Replicating({"--retry-unit", "25h"})).ok());
}

TEST(ParseSourceOptions, CompressionLevelIsKept) {
  auto r = Parse(Replicating({"--compression-level", "19"}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->compression_level, kMaxCompressionLevel);
}

TEST(ParseSourceOptions, CompressionLevelZeroTurnsCompressionOff) {
  auto r = Parse(Replicating({"--compression-level", "0"}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->compression_level, 0);
}

TEST(ParseSourceOptions, CompressionLevelOver19IsErrorNamingFlag) {
  auto r = Parse(Replicating({"--compression-level", "20"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--compression-level 20")) << r.status().message();
}

TEST(ParseSourceOptions, CompressionLevelNegativeIsError) {
  EXPECT_FALSE(Parse(Replicating({"--compression-level", "-1"})).ok());
}

TEST(ParseSourceOptions, CompressionLevelNotANumberIsError) {
  EXPECT_FALSE(Parse(Replicating({"--compression-level", "fast"})).ok());
}

TEST(ParseSourceOptions, CompressionLevelWithLeadingSpaceIsError) {
  EXPECT_FALSE(Parse(Replicating({"--compression-level", " 3"})).ok());
}

TEST(ParseSourceOptions, BandwidthLimitWithUnitIsBinaryBytesPerSecond) {
  auto r = Parse(Replicating({"--bandwidth-limit", "100M"}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->bandwidth_limit_bytes_per_s, 100ull << 20);
}

TEST(ParseSourceOptions, BandwidthLimitPlainBytes) {
  auto r = Parse(Replicating({"--bandwidth-limit", "1500000"}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->bandwidth_limit_bytes_per_s, 1500000u);
}

TEST(ParseSourceOptions, BandwidthLimitZeroMeansNoCap) {
  auto r = Parse(Replicating({"--bandwidth-limit", "0"}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->bandwidth_limit_bytes_per_s, 0u);
}

TEST(ParseSourceOptions, BandwidthLimitPercentIsErrorNamingFlag) {
  auto r = Parse(Replicating({"--bandwidth-limit", "50%"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--bandwidth-limit")) << r.status().message();
}

TEST(ParseSourceOptions, BandwidthLimitGarbageIsErrorNamingIt) {
  auto r = Parse(Replicating({"--bandwidth-limit", "fast"}));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--bandwidth-limit")) << r.status().message();
  EXPECT_TRUE(Mentions(r, "fast")) << r.status().message();
}

// The control socket serves the CLI whether or not the disks replicate.
TEST(ParseSourceOptions, ControlPathWithoutTargetIsAccepted) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--control", "/run/blockrep/ctl.sock"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->control_path, "/run/blockrep/ctl.sock");
}

TEST(ParseSourceOptions, ControlPathEmptyIsError) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--control="});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Mentions(r, "--control")) << r.status().message();
}

// Tuning flags are harmless without a target: they take effect once one is configured.
TEST(ParseSourceOptions, TuningFlagsWithoutTargetAreAccepted) {
  auto r = Parse({"--disk", "a=/x", "--nbd", "unix:/s", "--retry-unit", "1s", "--compression-level",
                  "3", "--bandwidth-limit", "10M"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->retry_unit_ms, 1000u);
  EXPECT_EQ(r->compression_level, 3);
  EXPECT_EQ(r->bandwidth_limit_bytes_per_s, 10ull << 20);
}

TEST(SourceUsage, MentionsEveryOption) {
  const std::string usage = SourceUsage();
  for (const char* opt :
       {"--disk", "--nbd", "--fuse", "--state-dir", "--journal-max-bytes", "--config", "--threads",
        "--log-level", "--help", "--version", "--target", "--tls-cert", "--tls-key", "--tls-ca",
        "--retry-unit", "--compression-level", "--bandwidth-limit", "--control"}) {
    EXPECT_NE(usage.find(opt), std::string::npos) << opt;
  }
}

TEST(SourceUsage, HasAReplicationSection) {
  EXPECT_NE(std::string(SourceUsage()).find("\nReplication"), std::string::npos);
}

}  // namespace
}  // namespace blockrep
