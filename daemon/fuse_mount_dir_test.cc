// Checks the FUSE mount directory's handling without mounting anything: mountinfo field
// decoding, FindMount against the real /proc/self/mountinfo (/proc and / are real mount points,
// a fresh temporary directory is none), the checks PrepareMountDir makes on real temporary
// directories and files (each error naming the directory), AbsoluteDir's resolving, the
// refusals DetachStaleMount makes before it would detach, RunCommand, and LoopDevicesOf on a
// file no loop device uses.
#include "daemon/fuse_mount_dir.h"

#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace blockrep {
namespace {

bool Mentions(const Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

// A fresh directory under $TMPDIR (or /tmp), removed with what the test left in it.
class MountDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = ::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/blockrep-mountdir-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << pattern;
    dir_ = pattern;
    char resolved[PATH_MAX];
    ASSERT_NE(::realpath(dir_.c_str(), resolved), nullptr);
    abs_dir_ = resolved;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
    EXPECT_FALSE(ec) << "removing " << dir_ << ": " << ec.message();
  }
  void WriteFile(const std::string& path) {
    std::ofstream out(path);
    out << "x\n";
    ASSERT_TRUE(out.good()) << path;
  }

  std::string dir_;      // as created
  std::string abs_dir_;  // with symlinks (e.g. a symlinked /tmp) resolved
};

// Restores the working directory a test changed.
class ScopedChdir {
 public:
  explicit ScopedChdir(const std::string& dir) {
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof(cwd)) != nullptr) old_ = cwd;
    ok_ = !old_.empty() && ::chdir(dir.c_str()) == 0;
  }
  ~ScopedChdir() {
    if (!old_.empty()) {
      EXPECT_EQ(::chdir(old_.c_str()), 0) << old_;
    }
  }
  bool ok() const { return ok_; }

 private:
  std::string old_;
  bool ok_ = false;
};

// The fstype /proc/self/mounts (a second view of the same mount table, "source mountpoint
// fstype ...") gives the topmost mount on path; empty if none.
std::string FstypeFromProcMounts(const std::string& path) {
  std::ifstream in("/proc/self/mounts");
  std::string line, fstype;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string source, mount_point, type;
    fields >> source >> mount_point >> type;
    if (UnescapeMountField(mount_point) == path) fstype = type;
  }
  return fstype;
}

// ---- UnescapeMountField ----

TEST(UnescapeMountField, DecodesSpace) {
  EXPECT_EQ(UnescapeMountField(R"(/mnt/my\040disks)"), "/mnt/my disks");
}

TEST(UnescapeMountField, DecodesTab) {
  EXPECT_EQ(UnescapeMountField(R"(/mnt/a\011b)"), "/mnt/a\tb");
}

TEST(UnescapeMountField, DecodesNewline) {
  EXPECT_EQ(UnescapeMountField(R"(/mnt/a\012b)"), "/mnt/a\nb");
}

TEST(UnescapeMountField, DecodesBackslash) {
  EXPECT_EQ(UnescapeMountField(R"(/mnt/a\134b)"), "/mnt/a\\b");
}

TEST(UnescapeMountField, DecodesSeveralEscapesAndOneAtTheEnd) {
  EXPECT_EQ(UnescapeMountField(R"(\040a\011\012b\134)"), " a\t\nb\\");
}

TEST(UnescapeMountField, LeavesPlainPathsAlone) {
  EXPECT_EQ(UnescapeMountField("/run/blockrep/disks"), "/run/blockrep/disks");
}

TEST(UnescapeMountField, KeepsBackslashNotFollowedByThreeDigits) {
  EXPECT_EQ(UnescapeMountField(R"(/a\04)"), R"(/a\04)");
  EXPECT_EQ(UnescapeMountField(R"(/a\x41b)"), R"(/a\x41b)");
  EXPECT_EQ(UnescapeMountField("/a\\"), "/a\\");
}

// ---- FindMount ----

TEST_F(MountDirTest, FindMountOnAPlainDirectoryFindsNothing) {
  EXPECT_FALSE(FindMount(abs_dir_).has_value());
}

TEST(FindMount, ProcIsAProcMount) {
  std::optional<MountEntry> m = FindMount("/proc");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->fstype, "proc");
}

TEST(FindMount, RootHasTheFstypeProcMountsShows) {
  const std::string expected = FstypeFromProcMounts("/");
  ASSERT_FALSE(expected.empty()) << "no / in /proc/self/mounts";
  std::optional<MountEntry> m = FindMount("/");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->fstype, expected);
}

TEST(FindMount, APathBelowAMountPointIsNoMountPoint) {
  EXPECT_FALSE(FindMount("/proc/self").has_value());
}

// ---- AbsoluteDir ----

TEST_F(MountDirTest, AbsoluteDirResolvesARelativePath) {
  ASSERT_EQ(::mkdir((dir_ + "/sub").c_str(), 0755), 0);
  ScopedChdir cd(dir_);
  ASSERT_TRUE(cd.ok());
  auto abs = AbsoluteDir("sub");
  ASSERT_TRUE(abs.ok()) << abs.status().ToString();
  EXPECT_EQ(abs.value(), abs_dir_ + "/sub");
  auto dot = AbsoluteDir("./sub/../sub/");
  ASSERT_TRUE(dot.ok()) << dot.status().ToString();
  EXPECT_EQ(dot.value(), abs_dir_ + "/sub");
}

TEST_F(MountDirTest, AbsoluteDirResolvesSymlinks) {
  ASSERT_EQ(::mkdir((dir_ + "/real").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("real", (dir_ + "/link").c_str()), 0);
  auto abs = AbsoluteDir(dir_ + "/link");
  ASSERT_TRUE(abs.ok()) << abs.status().ToString();
  EXPECT_EQ(abs.value(), abs_dir_ + "/real");
}

TEST_F(MountDirTest, AbsoluteDirOfAMissingDirectoryIsNotFoundNamingIt) {
  const std::string missing = dir_ + "/nope";
  auto abs = AbsoluteDir(missing);
  ASSERT_FALSE(abs.ok());
  EXPECT_EQ(abs.status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(Mentions(abs.status(), missing)) << abs.status().ToString();
}

// ---- PrepareMountDir ----

TEST_F(MountDirTest, PrepareMissingDirectoryFailsNamingIt) {
  const std::string missing = dir_ + "/nope";
  auto abs = PrepareMountDir(missing);
  ASSERT_FALSE(abs.ok());
  EXPECT_EQ(abs.status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(Mentions(abs.status(), missing)) << abs.status().ToString();
  EXPECT_TRUE(Mentions(abs.status(), "does not exist")) << abs.status().ToString();
}

TEST_F(MountDirTest, PrepareRegularFileFailsNamingIt) {
  const std::string file = dir_ + "/file";
  WriteFile(file);
  auto abs = PrepareMountDir(file);
  ASSERT_FALSE(abs.ok());
  EXPECT_EQ(abs.status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(Mentions(abs.status(), file)) << abs.status().ToString();
  EXPECT_TRUE(Mentions(abs.status(), "not a directory")) << abs.status().ToString();
}

TEST_F(MountDirTest, PrepareNonEmptyDirectoryFailsNamingItAndAnEntry) {
  WriteFile(dir_ + "/somefile");
  auto abs = PrepareMountDir(dir_);
  ASSERT_FALSE(abs.ok());
  EXPECT_EQ(abs.status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(Mentions(abs.status(), dir_)) << abs.status().ToString();
  EXPECT_TRUE(Mentions(abs.status(), "not empty")) << abs.status().ToString();
  EXPECT_TRUE(Mentions(abs.status(), "somefile")) << abs.status().ToString();
  struct stat st;
  EXPECT_EQ(::stat((dir_ + "/somefile").c_str(), &st), 0) << "the entry was removed";
}

TEST_F(MountDirTest, PrepareDirectoryHoldingOnlyAHiddenEntryFails) {
  WriteFile(dir_ + "/.hidden");
  auto abs = PrepareMountDir(dir_);
  ASSERT_FALSE(abs.ok());
  EXPECT_TRUE(Mentions(abs.status(), ".hidden")) << abs.status().ToString();
}

TEST_F(MountDirTest, PrepareEmptyDirectoryReturnsItsAbsolutePath) {
  auto abs = PrepareMountDir(dir_);
  ASSERT_TRUE(abs.ok()) << abs.status().ToString();
  EXPECT_EQ(abs.value(), abs_dir_);
}

TEST(PrepareMountDir, AMountPointFailsNamingItAndItsFstype) {
  auto abs = PrepareMountDir("/proc");
  ASSERT_FALSE(abs.ok());
  EXPECT_EQ(abs.status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(Mentions(abs.status(), "directory /proc is already a mount point (proc "))
      << abs.status().ToString();
}

// ---- DetachStaleMount: what it refuses before detaching anything ----

TEST_F(MountDirTest, DetachOnANonMountPointFailsNamingIt) {
  Status s = DetachStaleMount(dir_, abs_dir_);
  EXPECT_EQ(s.code(), Status::Code::kIoError);
  EXPECT_TRUE(Mentions(s, dir_)) << s.ToString();
  EXPECT_TRUE(Mentions(s, "no mount point")) << s.ToString();
}

TEST(DetachStaleMount, LeavesAMountOfAnotherTypeAlone) {
  Status s = DetachStaleMount("/proc", "/proc");
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(Mentions(s, "directory /proc is a stale proc mount that is not blockrep's"))
      << s.ToString();
  std::optional<MountEntry> m = FindMount("/proc");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->fstype, "proc");
}

// ---- RunCommand ----

TEST(MountDirRunCommand, TrueWhenTheCommandExitsZero) { EXPECT_TRUE(RunCommand({"true"})); }

TEST(MountDirRunCommand, FalseWhenTheCommandExitsNonZero) { EXPECT_FALSE(RunCommand({"false"})); }

TEST(MountDirRunCommand, FalseWhenTheCommandDoesNotExist) {
  EXPECT_FALSE(RunCommand({"blockrep-no-such-command-4f1c"}));
}

TEST(MountDirRunCommand, PassesArguments) {
  EXPECT_TRUE(RunCommand({"sh", "-c", "test \"$0\" = 'a b'", "a b"}));
  EXPECT_FALSE(RunCommand({"sh", "-c", "test \"$0\" = 'a b'", "a"}));
}

// ---- LoopDevicesOf ----

TEST_F(MountDirTest, LoopDevicesOfAFileNoLoopDeviceUsesIsEmpty) {
  const std::string file = abs_dir_ + "/disk.img";
  WriteFile(file);
  EXPECT_TRUE(LoopDevicesOf(file).empty());
}

}  // namespace
}  // namespace blockrep
