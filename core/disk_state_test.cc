// Checks DiskState, the per-disk state.json: every field survives ToJson/FromJson and
// Save/Load (through a real file in a fresh temporary directory, written atomically), and
// FromJson refuses malformed input with a message naming the offending key: a missing key,
// a wrong type, an unknown mode, an unsupported version, next_seq 0, a non-object, another
// format. Load refuses files over its 64 KiB limit.
#include "core/disk_state.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "core/test_temp_dir.h"
#include "core/unique_fd.h"

namespace blockrep {
namespace {

constexpr char kWhere[] = "/state/disks/disk0/state.json";

DiskState EveryFieldSet() {
  DiskState s;
  s.disk = "disk0";
  s.path = "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4 \"quoted\" \\ ünïcode";
  s.disk_bytes = std::numeric_limits<uint64_t>::max();
  s.mode = DiskMode::kBitmap;
  s.reason = "the journal passed its budget of 64 MiB";
  s.error = "journal corrupt: segment 0000000000000001.hrl offset 4096: ...";
  s.since = "2026-11-24T03:24:34Z";
  s.next_seq = 0x123456789abcull;
  s.clean_shutdown = true;
  return s;
}

void ExpectSameState(const DiskState& a, const DiskState& b) {
  EXPECT_EQ(a.disk, b.disk);
  EXPECT_EQ(a.path, b.path);
  EXPECT_EQ(a.disk_bytes, b.disk_bytes);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.since, b.since);
  EXPECT_EQ(a.next_seq, b.next_seq);
  EXPECT_EQ(a.clean_shutdown, b.clean_shutdown);
}

// A valid state as JSON, to be broken one key at a time.
nlohmann::json ValidJson() { return nlohmann::json::parse(EveryFieldSet().ToJson()); }

// FromJson's error message for `j`, or "" when it was accepted.
std::string ErrorFor(const nlohmann::json& j) {
  auto r = DiskState::FromJson(j.dump(), kWhere);
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  return r.status().message();
}

// ---- JSON ---------------------------------------------------------------------------------

TEST(DiskState, JsonRoundTripKeepsEveryField) {
  const DiskState s = EveryFieldSet();
  auto back = DiskState::FromJson(s.ToJson(), kWhere);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSameState(*back, s);
}

TEST(DiskState, JsonRoundTripOfTheDefaults) {
  const DiskState s;  // journaling, next_seq 1, empty strings
  auto back = DiskState::FromJson(s.ToJson(), kWhere);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSameState(*back, s);
  EXPECT_EQ(back->mode, DiskMode::kJournaling);
  EXPECT_FALSE(back->resync_required());
}

TEST(DiskState, ToJsonWritesTheSpecKeysAndValues) {
  const nlohmann::json j = ValidJson();
  EXPECT_EQ(j["format"], "blockrep-disk-state");
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["disk"], "disk0");
  EXPECT_EQ(j["disk_bytes"].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(j["mode"], "bitmap");
  EXPECT_EQ(j["resync_required"], true);
  EXPECT_EQ(j["next_seq"].get<uint64_t>(), 0x123456789abcull);
  EXPECT_EQ(j["clean_shutdown"], true);
  EXPECT_EQ(j["resyncing"], false);
  EXPECT_EQ(j["disk_id"], "");
  EXPECT_EQ(j["generation"], 1);
  EXPECT_EQ(j.size(), 15u);
}

TEST(DiskState, ReplicationKeysAreOptionalForOlderFiles) {
  nlohmann::json j = ValidJson();
  j.erase("resyncing");
  j.erase("disk_id");
  j.erase("generation");
  auto s = DiskState::FromJson(j.dump(), kWhere);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_FALSE(s->resyncing);
  EXPECT_EQ(s->disk_id, "");
  EXPECT_EQ(s->generation, 1u);
}

TEST(DiskState, ReplicationKeysRoundTrip) {
  DiskState st;
  st.disk = "vm1";
  st.resyncing = true;
  st.disk_id = "00112233445566778899aabbccddeeff";
  st.generation = 4;
  auto back = DiskState::FromJson(st.ToJson(), kWhere);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->resyncing);
  EXPECT_TRUE(back->resync_required());
  EXPECT_EQ(back->disk_id, st.disk_id);
  EXPECT_EQ(back->generation, 4u);
}

TEST(DiskState, BadReplicationKeysAreNamed) {
  for (const auto& [key, value] : std::vector<std::pair<const char*, nlohmann::json>>{
           {"resyncing", "no"}, {"disk_id", "XYZ"}, {"disk_id", 7}, {"generation", 0}, {"generation", "1"}}) {
    SCOPED_TRACE(key);
    nlohmann::json j = ValidJson();
    j[key] = value;
    const std::string err = ErrorFor(j);
    EXPECT_NE(err.find(std::string(kWhere) + ": " + key + ":"), std::string::npos) << err;
  }
}

TEST(DiskState, ModeNames) {
  EXPECT_STREQ(DiskModeName(DiskMode::kJournaling), "journaling");
  EXPECT_STREQ(DiskModeName(DiskMode::kBitmap), "bitmap");
}

TEST(DiskState, UnknownKeysAreIgnored) {
  nlohmann::json j = ValidJson();
  j["added_in_a_later_release"] = 7;
  EXPECT_EQ(ErrorFor(j), "");
}

TEST(DiskState, EveryMissingKeyIsNamed) {
  for (const char* key : {"format", "version", "disk", "path", "disk_bytes", "mode", "reason",
                          "error", "since", "next_seq", "clean_shutdown"}) {
    SCOPED_TRACE(key);
    nlohmann::json j = ValidJson();
    j.erase(key);
    const std::string err = ErrorFor(j);
    EXPECT_NE(err.find(std::string(kWhere) + ": " + key + ":"), std::string::npos) << err;
  }
}

TEST(DiskState, EveryWrongTypeIsNamed) {
  const std::pair<const char*, nlohmann::json> wrong[] = {
      {"disk", 5},           {"path", true},    {"disk_bytes", "1024"}, {"disk_bytes", -1},
      {"disk_bytes", 1.5},   {"mode", 1},       {"reason", nullptr},    {"error", {1, 2}},
      {"since", 0},          {"next_seq", "7"}, {"next_seq", -3},       {"clean_shutdown", "yes"},
      {"clean_shutdown", 1}, {"version", "1"},  {"version", 1.0},
  };
  for (const auto& [key, value] : wrong) {
    SCOPED_TRACE(std::string(key) + " = " + value.dump());
    nlohmann::json j = ValidJson();
    j[key] = value;
    const std::string err = ErrorFor(j);
    EXPECT_NE(err.find(std::string(kWhere) + ": " + key + ":"), std::string::npos) << err;
  }
}

TEST(DiskState, FormatOfAnotherTypeIsNamedNotThrown) {
  // nlohmann's value("format", "") throws when the key holds a non-string; FromJson must
  // return an error instead (no exceptions across module boundaries).
  nlohmann::json j = ValidJson();
  j["format"] = 5;
  const std::string err = ErrorFor(j);
  EXPECT_NE(err.find(std::string(kWhere) + ": format:"), std::string::npos) << err;
}

TEST(DiskState, UnknownModeIsNamed) {
  nlohmann::json j = ValidJson();
  j["mode"] = "mirroring";
  const std::string err = ErrorFor(j);
  EXPECT_NE(err.find("mode: 'mirroring'"), std::string::npos) << err;
}

TEST(DiskState, VersionTwoIsRefused) {
  nlohmann::json j = ValidJson();
  j["version"] = 2;
  const std::string err = ErrorFor(j);
  EXPECT_NE(err.find("version: 2 is not supported"), std::string::npos) << err;
}

TEST(DiskState, VersionThatWrapsToOneIsRefused) {
  // 2^32 + 1 must not be read as an int (which would make it 1).
  nlohmann::json j = ValidJson();
  j["version"] = (uint64_t{1} << 32) + 1;
  const std::string err = ErrorFor(j);
  EXPECT_NE(err.find(std::string(kWhere) + ": version:"), std::string::npos) << err;
}

TEST(DiskState, NegativeVersionIsRefused) {
  nlohmann::json j = ValidJson();
  j["version"] = -1;
  const std::string err = ErrorFor(j);
  EXPECT_NE(err.find(std::string(kWhere) + ": version:"), std::string::npos) << err;
}

TEST(DiskState, NextSeqZeroIsRefused) {
  nlohmann::json j = ValidJson();
  j["next_seq"] = 0;
  const std::string err = ErrorFor(j);
  EXPECT_NE(err.find("next_seq: must be at least 1"), std::string::npos) << err;
}

TEST(DiskState, NotAnObjectIsRefused) {
  for (const char* text : {"[1, 2]", "\"state\"", "42", "null", "", "{\"format\": "}) {
    SCOPED_TRACE(text);
    auto r = DiskState::FromJson(text, kWhere);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().message(), std::string(kWhere) + ": not a JSON object");
  }
}

TEST(DiskState, AnotherFormatIsRefused) {
  nlohmann::json j = ValidJson();
  j["format"] = "blockrep-target-state";
  const std::string err = ErrorFor(j);
  EXPECT_NE(err.find(std::string(kWhere) + ": format: expected \"blockrep-disk-state\""),
            std::string::npos)
      << err;
}

// ---- Files --------------------------------------------------------------------------------

class DiskStateFileTest : public ::testing::Test {
 protected:
  void WriteFile(const std::string& text) {
    UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::write(fd.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }

  test::TempDir dir_;
  const std::string path_ = dir_.file("state.json");
};

TEST_F(DiskStateFileTest, SaveThenLoadRoundTrip) {
  const DiskState s = EveryFieldSet();
  ASSERT_TRUE(s.Save(path_).ok());
  EXPECT_NE(::access((path_ + ".tmp").c_str(), F_OK), 0);  // renamed into place
  auto back = DiskState::Load(path_);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSameState(*back, s);
}

TEST_F(DiskStateFileTest, SaveReplacesThePreviousState) {
  DiskState s = EveryFieldSet();
  ASSERT_TRUE(s.Save(path_).ok());
  s.mode = DiskMode::kJournaling;
  s.next_seq = 99;
  s.clean_shutdown = false;
  ASSERT_TRUE(s.Save(path_).ok());
  auto back = DiskState::Load(path_);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->mode, DiskMode::kJournaling);
  EXPECT_EQ(back->next_seq, 99u);
  EXPECT_FALSE(back->clean_shutdown);
  EXPECT_NE(::access((path_ + ".tmp").c_str(), F_OK), 0);
}

TEST_F(DiskStateFileTest, SaveIntoAMissingDirectoryFails) {
  auto st = EveryFieldSet().Save(dir_.file("missing/state.json"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(dir_.file("missing/state.json.tmp")), std::string::npos)
      << st.ToString();
}

TEST_F(DiskStateFileTest, PathThatIsNotUtf8IsSavedNotThrown) {
  // Linux paths are bytes; JSON strings are UTF-8. The byte that cannot be written becomes
  // U+FFFD rather than an exception out of Save.
  DiskState s = EveryFieldSet();
  s.path = "/srv/images/disk-\xff.img";
  ASSERT_TRUE(s.Save(path_).ok());
  auto back = DiskState::Load(path_);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->path, "/srv/images/disk-\xEF\xBF\xBD.img");
  EXPECT_EQ(back->disk, s.disk);
}

TEST_F(DiskStateFileTest, LoadOfAMissingFileNamesIt) {
  auto r = DiskState::Load(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kIoError);
  EXPECT_NE(r.status().message().find(path_), std::string::npos);
}

TEST_F(DiskStateFileTest, LoadErrorsNameTheFile) {
  nlohmann::json j = ValidJson();
  j["mode"] = "mirroring";
  WriteFile(j.dump());
  auto r = DiskState::Load(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(path_ + ": mode:"), std::string::npos)
      << r.status().ToString();
}

TEST_F(DiskStateFileTest, LoadAcceptsAFileOfExactly64KiB) {
  std::string text = EveryFieldSet().ToJson();
  text.resize(64 << 10, ' ');  // trailing whitespace is valid JSON
  WriteFile(text);
  auto r = DiskState::Load(path_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->disk, "disk0");
}

TEST_F(DiskStateFileTest, LoadRefusesAFileOver64KiB) {
  std::string text = EveryFieldSet().ToJson();
  text.resize((64 << 10) + 1, ' ');
  WriteFile(text);
  auto r = DiskState::Load(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  EXPECT_NE(r.status().message().find("larger than 64 KiB"), std::string::npos)
      << r.status().ToString();
}

TEST(DiskStateNow, NowRfc3339IsUtcToTheSecond) {
  const std::string now = NowRfc3339();
  ASSERT_EQ(now.size(), 20u) << now;
  EXPECT_EQ(now[4], '-');
  EXPECT_EQ(now[10], 'T');
  EXPECT_EQ(now[19], 'Z');
  EXPECT_GE(now.substr(0, 4), "2024");
}

}  // namespace
}  // namespace blockrep
