// Checks the parsers both daemons' command lines and config files share: durations, log
// levels, HOST:PORT, disk names and --disk NAME=VALUE, the TOML value helpers (on documents
// parsed with toml++), and ReadConfigFile on real files in a temporary directory.
#include "core/config_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <set>
#include <string>

#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "core/test_temp_dir.h"

namespace blockrep {
namespace {

bool Mentions(const Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

// --- ParseDurationMs -----------------------------------------------------------------------

TEST(ParseDurationMs, Milliseconds) {
  auto d = ParseDurationMs("250ms");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, 250u);
}

TEST(ParseDurationMs, Seconds) {
  auto d = ParseDurationMs("30s");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, 30'000u);
}

TEST(ParseDurationMs, Minutes) {
  auto d = ParseDurationMs("1m");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, 60'000u);
}

TEST(ParseDurationMs, Hours) {
  auto d = ParseDurationMs("2h");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, 7'200'000u);
}

TEST(ParseDurationMs, BareNumberIsSeconds) {
  auto d = ParseDurationMs("60");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, 60'000u);
}

TEST(ParseDurationMs, ZeroIsErrorNamingTheText) {
  auto d = ParseDurationMs("0ms");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(Mentions(d.status(), "'0ms'")) << d.status().message();
}

TEST(ParseDurationMs, ExactlyADayIsAccepted) {
  auto d = ParseDurationMs("24h");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, kMaxDurationMs);
}

TEST(ParseDurationMs, OneMillisecondOverADayIsError) {
  auto d = ParseDurationMs("86400001ms");
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(Mentions(d.status(), "at most 24h")) << d.status().message();
}

TEST(ParseDurationMs, HugeNumberIsErrorNotOverflow) {
  auto d = ParseDurationMs("99999999999999999999999999h");
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(Mentions(d.status(), "at most 24h")) << d.status().message();
}

TEST(ParseDurationMs, UnknownUnitIsErrorNamingIt) {
  auto d = ParseDurationMs("5x");
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(Mentions(d.status(), "'5x'")) << d.status().message();
  EXPECT_TRUE(Mentions(d.status(), "unknown unit 'x'")) << d.status().message();
}

TEST(ParseDurationMs, UnitsAreCaseSensitive) {
  // "1M" could be a minute or a month; only the lower-case units exist.
  EXPECT_FALSE(ParseDurationMs("1M").ok());
  EXPECT_FALSE(ParseDurationMs("1S").ok());
}

TEST(ParseDurationMs, EmptyIsError) { EXPECT_FALSE(ParseDurationMs("").ok()); }

TEST(ParseDurationMs, UnitWithoutNumberIsError) { EXPECT_FALSE(ParseDurationMs("ms").ok()); }

TEST(ParseDurationMs, FractionIsError) { EXPECT_FALSE(ParseDurationMs("1.5s").ok()); }

TEST(ParseDurationMs, NegativeIsError) { EXPECT_FALSE(ParseDurationMs("-1s").ok()); }

TEST(ParseDurationMs, SpaceBeforeUnitIsError) { EXPECT_FALSE(ParseDurationMs("1 s").ok()); }

// --- ParseLogLevel -------------------------------------------------------------------------

TEST(ParseLogLevel, EveryLevel) {
  EXPECT_EQ(ParseLogLevel("debug").value(), LogLevel::kDebug);
  EXPECT_EQ(ParseLogLevel("info").value(), LogLevel::kInfo);
  EXPECT_EQ(ParseLogLevel("warning").value(), LogLevel::kWarning);
  EXPECT_EQ(ParseLogLevel("error").value(), LogLevel::kError);
}

TEST(ParseLogLevel, UnknownLevelIsErrorNamingTextAndChoices) {
  auto level = ParseLogLevel("verbose");
  ASSERT_FALSE(level.ok());
  EXPECT_TRUE(Mentions(level.status(), "'verbose'")) << level.status().message();
  EXPECT_TRUE(Mentions(level.status(), "debug, info, warning or error"))
      << level.status().message();
}

TEST(ParseLogLevel, UpperCaseIsError) { EXPECT_FALSE(ParseLogLevel("INFO").ok()); }

// --- ParseHostPort -------------------------------------------------------------------------

struct Split {
  bool ok;
  std::string host;
  std::string port;
};

Split SplitOf(const std::string& spec) {
  Split s;
  s.ok = ParseHostPort(spec, &s.host, &s.port);
  return s;
}

TEST(ParseHostPort, NameAndPort) {
  Split s = SplitOf("backup.example:7420");
  ASSERT_TRUE(s.ok);
  EXPECT_EQ(s.host, "backup.example");
  EXPECT_EQ(s.port, "7420");
}

TEST(ParseHostPort, Ipv4AndPort) {
  Split s = SplitOf("10.0.0.2:7420");
  ASSERT_TRUE(s.ok);
  EXPECT_EQ(s.host, "10.0.0.2");
}

TEST(ParseHostPort, BracketedIpv6AndPort) {
  Split s = SplitOf("[2001:db8::2]:7420");
  ASSERT_TRUE(s.ok);
  EXPECT_EQ(s.host, "2001:db8::2");
  EXPECT_EQ(s.port, "7420");
}

TEST(ParseHostPort, PortBoundsAreOneAnd65535) {
  EXPECT_TRUE(SplitOf("h:1").ok);
  EXPECT_TRUE(SplitOf("h:65535").ok);
  EXPECT_FALSE(SplitOf("h:0").ok);
  EXPECT_FALSE(SplitOf("h:65536").ok);
  EXPECT_FALSE(SplitOf("h:99999999999999999999").ok);
}

TEST(ParseHostPort, LeadingZeroIsDroppedFromThePort) { EXPECT_EQ(SplitOf("h:07420").port, "7420"); }

TEST(ParseHostPort, PortMustBeDigitsOnly) {
  EXPECT_FALSE(SplitOf("h:").ok);
  EXPECT_FALSE(SplitOf("h:+80").ok);
  EXPECT_FALSE(SplitOf("h:80x").ok);
  EXPECT_FALSE(SplitOf("h: 80").ok);
}

TEST(ParseHostPort, MissingPartsAreMalformed) {
  EXPECT_FALSE(SplitOf("").ok);
  EXPECT_FALSE(SplitOf("host").ok);
  EXPECT_FALSE(SplitOf(":7420").ok);
  EXPECT_FALSE(SplitOf("[]:7420").ok);
}

TEST(ParseHostPort, Ipv6NeedsBracketsAndAColonAfterThem) {
  EXPECT_FALSE(SplitOf("::1:7420").ok);
  EXPECT_FALSE(SplitOf("[::1]").ok);
  EXPECT_FALSE(SplitOf("[::1]7420").ok);
  EXPECT_FALSE(SplitOf("[::1:7420").ok);
}

TEST(ParseHostPort, MalformedLeavesOutputsUntouched) {
  std::string host = "h0", port = "p0";
  EXPECT_FALSE(ParseHostPort("host", &host, &port));
  EXPECT_EQ(host, "h0");
  EXPECT_EQ(port, "p0");
}

TEST(ValidateHostPort, ErrorNamesTheAddressAndTheForm) {
  Status s = ValidateHostPort("backup:http");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "'backup:http'")) << s.message();
  EXPECT_TRUE(Mentions(s, "HOST:PORT")) << s.message();
}

// --- Disk names and --disk NAME=VALUE ------------------------------------------------------

TEST(ValidateDiskName, LettersDigitsDotUnderscoreDashAreAccepted) {
  EXPECT_TRUE(ValidateDiskName("vm-disk_3.x").ok());
}

TEST(ValidateDiskName, LeadingDotIsError) { EXPECT_FALSE(ValidateDiskName(".x").ok()); }

TEST(ValidateDiskName, SlashIsError) { EXPECT_FALSE(ValidateDiskName("a/b").ok()); }

TEST(ParseDiskFlag, SplitsAtTheFirstEquals) {
  std::set<std::string> seen;
  std::string name, value;
  ASSERT_TRUE(ParseDiskFlag("vm1=CN=a=b", "IDENTITY", &seen, &name, &value).ok());
  EXPECT_EQ(name, "vm1");
  EXPECT_EQ(value, "CN=a=b");
  EXPECT_EQ(seen.count("vm1"), 1u);
}

TEST(ParseDiskFlag, MissingValueIsErrorNamingTheExpectedForm) {
  std::set<std::string> seen;
  std::string name, value;
  Status s = ParseDiskFlag("vm1=", "IDENTITY", &seen, &name, &value);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "--disk vm1=: expected NAME=IDENTITY");
}

TEST(ParseDiskFlag, BadNameIsErrorNamingIt) {
  std::set<std::string> seen;
  std::string name, value;
  Status s = ParseDiskFlag("a b=/x", "PATH", &seen, &name, &value);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "'a b'")) << s.message();
}

TEST(ParseDiskFlag, NameSeenBeforeIsError) {
  std::set<std::string> seen = {"vm1"};
  std::string name, value;
  Status s = ParseDiskFlag("vm1=/y", "PATH", &seen, &name, &value);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "--disk vm1=/y: disk name 'vm1' is given twice");
}

TEST(MissingTlsFlags, ListsEveryEmptyOneInOrder) {
  EXPECT_EQ(MissingTlsFlags("", "k", ""), "--tls-cert, --tls-ca");
  EXPECT_EQ(MissingTlsFlags("c", "k", "a"), "");
}

TEST(TakePathFlag, EmptyIsErrorNamingTheFlag) {
  std::string field = "unchanged";
  bool given = false;
  Status s = TakePathFlag("--control", "", &field, &given);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "--control needs a path");
  EXPECT_EQ(field, "unchanged");
  EXPECT_FALSE(given);
}

// --- TOML helpers --------------------------------------------------------------------------

// Parses text that the test knows to be valid TOML.
toml::table Doc(const std::string& text) {
  toml::parse_result parsed = toml::parse(text);
  EXPECT_TRUE(parsed) << parsed.error().description();
  return parsed ? std::move(parsed).table() : toml::table{};
}

TEST(TomlSyntaxError, NamesPathLineAndColumn) {
  toml::parse_result parsed = toml::parse("a = 1\nb = @\n", std::string("cfg.toml"));
  ASSERT_FALSE(parsed);
  Status s = TomlSyntaxError("cfg.toml", parsed.error());
  EXPECT_EQ(s.message().rfind("cfg.toml:2:5: ", 0), 0u) << s.message();
}

TEST(TomlString, IntegerIsErrorNamingPathAndKey) {
  toml::table t = Doc("k = 3\n");
  auto s = TomlString(*t.get("k"), "cfg.toml", "k");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "cfg.toml: k: expected a string");
}

TEST(TomlNonEmptyString, EmptyIsError) {
  toml::table t = Doc("k = \"\"\n");
  auto s = TomlNonEmptyString(*t.get("k"), "cfg.toml", "k");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "cfg.toml: k: must not be empty");
}

TEST(TomlExactInteger, BooleanAndFloatAreNotIntegers) {
  toml::table t = Doc("b = true\nf = 2.0\ni = 2\n");
  EXPECT_FALSE(TomlExactInteger(*t.get("b")).has_value());
  EXPECT_FALSE(TomlExactInteger(*t.get("f")).has_value());
  EXPECT_EQ(TomlExactInteger(*t.get("i")), 2);
}

TEST(TomlIntegerInRange, OutOfRangeIsErrorNamingTheRange) {
  toml::table t = Doc("n = 20\n");
  auto n = TomlIntegerInRange(*t.get("n"), "cfg.toml", "n", 0, 19);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().message(), "cfg.toml: n: expected a whole number from 0 to 19");
}

TEST(MergeTomlString, FlagGivenKeepsTheFlagValue) {
  toml::table t = Doc("k = \"file\"\n");
  std::string field = "flag";
  ASSERT_TRUE(MergeTomlString(*t.get("k"), "cfg.toml", "k", /*flag_given=*/true, &field).ok());
  EXPECT_EQ(field, "flag");
  ASSERT_TRUE(MergeTomlString(*t.get("k"), "cfg.toml", "k", /*flag_given=*/false, &field).ok());
  EXPECT_EQ(field, "file");
}

TEST(UnknownConfigKey, ListsTheKnownKeys) {
  EXPECT_EQ(UnknownConfigKey("cfg.toml", "disks.a.size", "source, path").message(),
            "cfg.toml: disks.a.size: unknown key (known: source, path)");
}

// --- ReadConfigFile ------------------------------------------------------------------------

void WriteFile(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
}

TEST(ReadConfigFile, ReturnsTheWholeFile) {
  test::TempDir dir;
  WriteFile(dir.file("c.toml"), "a = 1\n");
  auto text = ReadConfigFile(dir.file("c.toml"));
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(*text, "a = 1\n");
}

TEST(ReadConfigFile, FileOfExactlyTheLimitIsAccepted) {
  test::TempDir dir;
  WriteFile(dir.file("c.toml"), std::string(kMaxConfigBytes, '#'));
  auto text = ReadConfigFile(dir.file("c.toml"));
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(text->size(), kMaxConfigBytes);
}

TEST(ReadConfigFile, FileOverTheLimitIsError) {
  test::TempDir dir;
  WriteFile(dir.file("c.toml"), std::string(kMaxConfigBytes + 1, '#'));
  auto text = ReadConfigFile(dir.file("c.toml"));
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().message(), "--config " + dir.file("c.toml") + ": larger than 1.0 MiB");
}

TEST(ReadConfigFile, MissingFileIsErrorWithTheReason) {
  test::TempDir dir;
  auto text = ReadConfigFile(dir.file("none.toml"));
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(text.status().message(),
            "--config " + dir.file("none.toml") + ": cannot open: No such file or directory");
}

TEST(ReadConfigFile, DirectoryIsErrorWithTheReason) {
  test::TempDir dir;
  auto text = ReadConfigFile(dir.path());
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().message(), "--config " + dir.path() + ": cannot read: Is a directory");
}

}  // namespace
}  // namespace blockrep
