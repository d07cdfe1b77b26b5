// Replica (target/replica.h) driven as a ReplicaSession drives it, on real files in a
// temporary directory: the initial copy writes straight to the image, a replica in sync
// applies records only after their commit, a resync holds everything (the image stays the
// last consistent state) until SYNC_END, a reopened replica replays committed records and
// drops uncommitted ones, and HELLO checks refuse the wrong source, size, id or generation.
#include "target/replica.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "core/test_temp_dir.h"

namespace blockrep {
namespace {

constexpr uint64_t kDiskBytes = 4u << 20;  // 4 MiB: four chunks

class ReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hello_.disk_bytes = kDiskBytes;
    hello_.generation = 1;
    for (int i = 0; i < 16; ++i) hello_.disk_id[i] = static_cast<uint8_t>(i + 1);
    hello_.disk_name = "vm1";
    hello_.software_version = "test";
  }

  Replica::Config Config() const { return {"vm1", "site-a", dir_.path() + "/vm1", ""}; }

  std::unique_ptr<Replica> Open() {
    auto r = Replica::Open(Config());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  void Start(Replica& r, repl::StartMode mode, uint64_t first_seq, uint64_t cursor = 0) {
    repl::Start s;
    s.mode = mode;
    s.first_seq = first_seq;
    s.sync_cursor = cursor;
    repl::ErrorCode code;
    Status st = r.Start(s, hello_, "site-a", &code);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  // An item and its data, kept alive by the fixture until the test ends (as the session
  // keeps batches alive until their commit).
  void Item(Replica& r, repl::ItemType type, uint64_t seq, uint64_t offset, uint64_t length,
            char fill = 0, bool* commit_first = nullptr) {
    repl::ItemHeader h;
    h.type = type;
    h.seq = seq;
    h.offset = offset;
    h.length = length;
    const uint8_t* data = nullptr;
    if (type == repl::ItemType::kWrite || type == repl::ItemType::kSyncWrite) {
      buffers_.emplace_back(length, static_cast<uint8_t>(fill));
      data = buffers_.back().data();
      h.data_bytes = static_cast<uint32_t>(length);
    }
    bool cf = false;
    Status st = r.Item(h, data, &cf);
    ASSERT_TRUE(st.ok()) << st.ToString();
    if (commit_first != nullptr) *commit_first = cf;
  }

  void Commit(Replica& r, uint64_t through) {
    repl::ErrorCode code;
    Status st = r.Commit(through, &code);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  // A START the replica must refuse: its error code.
  repl::ErrorCode RefusedStart(Replica& r, repl::StartMode mode, uint64_t first_seq) {
    repl::Start s;
    s.mode = mode;
    s.first_seq = first_seq;
    repl::ErrorCode code = repl::ErrorCode::kOk;
    EXPECT_FALSE(r.Start(s, hello_, "site-a", &code).ok());
    return code;
  }

  // A new replica, its initial copy one block of `fill` at 0, in sync.
  std::unique_ptr<Replica> InSyncWithOneBlock(char fill) {
    auto r = Open();
    Start(*r, repl::StartMode::kInitial, 1);
    Item(*r, repl::ItemType::kSyncWrite, 1, 0, 4096, fill);
    Item(*r, repl::ItemType::kSyncEnd, 1, 0, 0);
    Commit(*r, 0);
    EXPECT_EQ(r->state(), repl::ReplicaState::kInSync);
    return r;
  }

  std::string ImageBytes(uint64_t offset, size_t n) {
    std::string out(n, '\0');
    UniqueFd fd(::open((dir_.path() + "/vm1/replica.img").c_str(), O_RDONLY));
    EXPECT_EQ(::pread(fd.get(), out.data(), n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
    return out;
  }

  test::TempDir dir_;
  repl::Hello hello_;
  std::vector<std::vector<uint8_t>> buffers_;
};

TEST_F(ReplicaTest, ANewReplicaIsNewUntilStarted) {
  auto r = Open();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->state(), repl::ReplicaState::kNew);
  std::string why;
  EXPECT_EQ(r->Check(hello_, "site-a", &why), repl::ErrorCode::kOk) << why;
}

TEST_F(ReplicaTest, ChecksRefuseAnotherSourceSizeIdAndGeneration) {
  auto r = Open();
  Start(*r, repl::StartMode::kInitial, 5);
  std::string why;
  EXPECT_EQ(r->Check(hello_, "mallory", &why), repl::ErrorCode::kIdentityNotAllowed);
  EXPECT_NE(why.find("site-a"), std::string::npos) << why;
  repl::Hello other = hello_;
  other.disk_bytes *= 2;
  EXPECT_EQ(r->Check(other, "site-a", &why), repl::ErrorCode::kSizeMismatch);
  other = hello_;
  other.disk_id[0] ^= 1;
  EXPECT_EQ(r->Check(other, "site-a", &why), repl::ErrorCode::kDiskIdMismatch);
  other = hello_;
  other.generation = 2;
  EXPECT_EQ(r->Check(other, "site-a", &why), repl::ErrorCode::kGenerationMismatch);
  EXPECT_EQ(r->Check(hello_, "site-a", &why), repl::ErrorCode::kOk) << why;
}

TEST_F(ReplicaTest, InitialCopyWritesTheImageAndEndsInSync) {
  auto r = Open();
  Start(*r, repl::StartMode::kInitial, 5);
  EXPECT_EQ(r->state(), repl::ReplicaState::kInitialCopy);
  EXPECT_EQ(r->durable_through(), 4u);
  Item(*r, repl::ItemType::kSyncWrite, 5, 0, 8192, 'a');
  Item(*r, repl::ItemType::kWrite, 5, 4096, 4096, 'b');  // a record after the sync item
  Item(*r, repl::ItemType::kSyncCursor, 0, 1 << 20, 0);
  Commit(*r, 5);
  EXPECT_EQ(r->sync_cursor(), 1u << 20);
  EXPECT_EQ(r->durable_through(), 5u);
  EXPECT_EQ(ImageBytes(0, 4096), std::string(4096, 'a'));
  EXPECT_EQ(ImageBytes(4096, 4096), std::string(4096, 'b'));
  Item(*r, repl::ItemType::kSyncEnd, 6, 0, 0);
  Commit(*r, 5);
  EXPECT_EQ(r->state(), repl::ReplicaState::kInSync);
  EXPECT_EQ(r->sync_cursor(), 0u);
}

TEST_F(ReplicaTest, ACursorIsDurableOnlyAtItsCommit) {
  auto r = Open();
  Start(*r, repl::StartMode::kInitial, 1);
  Item(*r, repl::ItemType::kSyncCursor, 0, 2 << 20, 0);
  EXPECT_EQ(r->sync_cursor(), 0u);  // not committed: not reported
  r->AbandonGroup();
  EXPECT_EQ(r->sync_cursor(), 0u);
  r.reset();
  r = Open();
  EXPECT_EQ(r->sync_cursor(), 0u);
}

TEST_F(ReplicaTest, InSyncRecordsAreAppliedAfterTheirCommit) {
  auto r = Open();
  Start(*r, repl::StartMode::kInitial, 1);
  Item(*r, repl::ItemType::kSyncEnd, 1, 0, 0);
  Commit(*r, 0);
  ASSERT_EQ(r->state(), repl::ReplicaState::kInSync);
  Item(*r, repl::ItemType::kWrite, 1, 8192, 4096, 'c');
  EXPECT_EQ(ImageBytes(8192, 4096), std::string(4096, '\0'));  // journaled, not applied yet
  Commit(*r, 1);
  EXPECT_EQ(ImageBytes(8192, 4096), std::string(4096, 'c'));
  EXPECT_EQ(r->durable_through(), 1u);
}

TEST_F(ReplicaTest, AResyncHoldsEverythingUntilSyncEnd) {
  auto r = Open();
  Start(*r, repl::StartMode::kInitial, 1);
  Item(*r, repl::ItemType::kSyncWrite, 1, 0, 4096, 'o');
  Item(*r, repl::ItemType::kSyncEnd, 1, 0, 0);
  Commit(*r, 0);
  Start(*r, repl::StartMode::kResync, 10);
  EXPECT_EQ(r->state(), repl::ReplicaState::kResync);
  Item(*r, repl::ItemType::kSyncWrite, 10, 0, 4096, 'n');
  Item(*r, repl::ItemType::kWrite, 10, 4096, 4096, 'w');
  Item(*r, repl::ItemType::kSyncZero, 11, 0, 4096);  // a later barrier zeroes block 0 again
  Item(*r, repl::ItemType::kSyncCursor, 0, kDiskBytes, 0);
  Commit(*r, 10);
  // Durable, but held: the image is still the state the resync began from.
  EXPECT_EQ(ImageBytes(0, 4096), std::string(4096, 'o'));
  EXPECT_EQ(ImageBytes(4096, 4096), std::string(4096, '\0'));
  Item(*r, repl::ItemType::kSyncEnd, 11, 0, 0);
  Commit(*r, 10);
  EXPECT_EQ(r->state(), repl::ReplicaState::kInSync);
  EXPECT_EQ(ImageBytes(0, 4096), std::string(4096, '\0'));
  EXPECT_EQ(ImageBytes(4096, 4096), std::string(4096, 'w'));
}

TEST_F(ReplicaTest, HashRequestsAnswerFromTheHeldImage) {
  auto r = Open();
  Start(*r, repl::StartMode::kInitial, 1);
  Item(*r, repl::ItemType::kSyncEnd, 1, 0, 0);
  Commit(*r, 0);
  Start(*r, repl::StartMode::kResync, 1);
  // The source's chunk 0 is all zeroes, like the image's: equal.
  std::vector<uint8_t> zero(1 << 20, 0);
  std::vector<uint64_t> hashes;
  repl::BlockHashes(zero.data(), zero.size(), &hashes);
  const uint64_t h = repl::ChunkHash(hashes.data(), hashes.size());
  uint8_t data[8];
  for (int i = 0; i < 8; ++i) data[i] = static_cast<uint8_t>(h >> (8 * i));
  repl::ItemHeader req;
  req.type = repl::ItemType::kHashRequest;
  req.offset = 0;
  req.length = 1 << 20;
  req.data_bytes = 8;
  bool cf;
  ASSERT_TRUE(r->Item(req, data, &cf).ok());
  data[0] ^= 1;  // and one that differs
  req.offset = 1 << 20;
  ASSERT_TRUE(r->Item(req, data, &cf).ok());
  auto replies = r->TakeReplies();
  ASSERT_EQ(replies.size(), 2u);
  repl::Hashes a, b;
  ASSERT_TRUE(repl::DecodeHashes(replies[0].second.data(), replies[0].second.size(), &a).ok());
  ASSERT_TRUE(repl::DecodeHashes(replies[1].second.data(), replies[1].second.size(), &b).ok());
  EXPECT_TRUE(a.equal);
  EXPECT_FALSE(b.equal);
  EXPECT_EQ(b.block_hashes, hashes);  // the target's own block hashes, all of them
}

TEST_F(ReplicaTest, AVerifyRequestAfterUncommittedRecordsAsksForACommitFirst) {
  auto r = Open();
  Start(*r, repl::StartMode::kInitial, 1);
  Item(*r, repl::ItemType::kSyncEnd, 1, 0, 0);
  Commit(*r, 0);
  Item(*r, repl::ItemType::kWrite, 1, 0, 4096, 'v');
  bool commit_first = false;
  Item(*r, repl::ItemType::kVerifyRequest, 0, 0, 1 << 20, 0, &commit_first);
  EXPECT_TRUE(commit_first);
  Commit(*r, 1);
  Item(*r, repl::ItemType::kVerifyRequest, 0, 0, 1 << 20, 0, &commit_first);
  EXPECT_FALSE(commit_first);
  auto replies = r->TakeReplies();
  ASSERT_EQ(replies.size(), 1u);
  repl::VerifyHashes v;
  ASSERT_TRUE(repl::DecodeVerifyHashes(replies[0].second.data(), replies[0].second.size(), &v).ok());
  EXPECT_EQ(v.block_hashes[0], repl::BlockHash(buffers_.back().data(), 4096));
}

TEST_F(ReplicaTest, ReopeningKeepsTheDurablePointAndDropsWhatWasNotCommitted) {
  {
    auto r = Open();
    Start(*r, repl::StartMode::kInitial, 1);
    Item(*r, repl::ItemType::kSyncEnd, 1, 0, 0);
    Commit(*r, 0);
    Item(*r, repl::ItemType::kWrite, 1, 0, 4096, 'x');
    Commit(*r, 1);
    Item(*r, repl::ItemType::kWrite, 2, 4096, 4096, 'y');
    // Written to the journal only at the commit, which never comes: a crash.
  }
  auto r = Open();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->state(), repl::ReplicaState::kInSync);
  EXPECT_EQ(r->durable_through(), 1u);
  EXPECT_EQ(ImageBytes(0, 4096), std::string(4096, 'x'));
  EXPECT_EQ(ImageBytes(4096, 4096), std::string(4096, '\0'));
  std::string why;
  EXPECT_EQ(r->Check(hello_, "site-a", &why), repl::ErrorCode::kOk) << why;
}

TEST_F(ReplicaTest, ReopeningDuringAResyncKeepsHolding) {
  {
    auto r = Open();
    Start(*r, repl::StartMode::kInitial, 1);
    Item(*r, repl::ItemType::kSyncWrite, 1, 0, 4096, 'o');
    Item(*r, repl::ItemType::kSyncEnd, 1, 0, 0);
    Commit(*r, 0);
    Start(*r, repl::StartMode::kResync, 1);
    Item(*r, repl::ItemType::kSyncWrite, 1, 0, 4096, 'n');
    Item(*r, repl::ItemType::kSyncCursor, 0, 1 << 20, 0);
    Commit(*r, 0);
  }
  auto r = Open();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->state(), repl::ReplicaState::kResync);
  EXPECT_EQ(r->sync_cursor(), 1u << 20);
  EXPECT_EQ(ImageBytes(0, 4096), std::string(4096, 'o'));  // still held
  Start(*r, repl::StartMode::kResyncResume, 1, 1 << 20);
  Item(*r, repl::ItemType::kSyncEnd, 1, 0, 0);
  Commit(*r, 0);
  EXPECT_EQ(ImageBytes(0, 4096), std::string(4096, 'n'));
}

TEST_F(ReplicaTest, StartsThatDoNotFitTheStateAreRefused) {
  auto r = Open();
  EXPECT_EQ(RefusedStart(*r, repl::StartMode::kDelta, 1), repl::ErrorCode::kBadStream);
  Start(*r, repl::StartMode::kInitial, 5);
  RefusedStart(*r, repl::StartMode::kInitial, 1);       // it exists now
  RefusedStart(*r, repl::StartMode::kInitialResume, 9); // after durable through + 1
}

TEST_F(ReplicaTest, ACleanlyClosedImageLeftAloneReopensInSync) {
  ASSERT_TRUE(InSyncWithOneBlock('a')->Close().ok());
  // Reading the image (a backup, cmp) changes nothing the stamp records.
  EXPECT_EQ(ImageBytes(0, 4096), std::string(4096, 'a'));
  auto r = Open();
  EXPECT_EQ(r->state(), repl::ReplicaState::kInSync);
  EXPECT_EQ(r->changed_why(), "");
}

TEST_F(ReplicaTest, AnImageWrittenWhileTheTargetWasStoppedIsChangedAndOnlyAResyncMayFollow) {
  ASSERT_TRUE(InSyncWithOneBlock('a')->Close().ok());
  // Restored by hand: the same bytes written back still count (nothing can tell them apart).
  // File times tick with the kernel's coarse clock (a few ms): let it move past the
  // target's last write, as any restore by hand does.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  {
    UniqueFd fd(::open((dir_.path() + "/vm1/replica.img").c_str(), O_WRONLY));
    ASSERT_EQ(::pwrite(fd.get(), "a", 1, 0), 1);
  }
  {
    auto r = Open();
    EXPECT_EQ(r->state(), repl::ReplicaState::kChanged);
    EXPECT_NE(r->changed_why().find("changed while blockrep-target was stopped"), std::string::npos)
        << r->changed_why();
    EXPECT_NE(r->StatusJson()["changed"].get<std::string>().find("replica.img"), std::string::npos);
    EXPECT_EQ(RefusedStart(*r, repl::StartMode::kDelta, 1), repl::ErrorCode::kBadStream);
    // Not cleanly closed this time: the state file keeps "changed" across the restart.
  }
  auto r = Open();
  EXPECT_EQ(r->state(), repl::ReplicaState::kChanged);
  Start(*r, repl::StartMode::kResync, 1);
  EXPECT_EQ(r->state(), repl::ReplicaState::kResync);
  EXPECT_EQ(r->changed_why(), "");
  Item(*r, repl::ItemType::kSyncEnd, 1, 0, 0);
  Commit(*r, 0);
  EXPECT_EQ(r->state(), repl::ReplicaState::kInSync);
}

TEST_F(ReplicaTest, AnUnfinishedResyncsHeldRecordsAreNeverReplayedOverAChangedImage) {
  auto r = InSyncWithOneBlock('o');
  Start(*r, repl::StartMode::kResync, 10);
  Item(*r, repl::ItemType::kSyncWrite, 10, 0, 4096, 'n');  // held until SYNC_END
  Commit(*r, 9);
  ASSERT_TRUE(r->Close().ok());
  r.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // see the test above
  {
    UniqueFd fd(::open((dir_.path() + "/vm1/replica.img").c_str(), O_WRONLY));
    ASSERT_EQ(::pwrite(fd.get(), "r", 1, 0), 1);  // restored by hand
  }
  for (int start = 0; start < 2; ++start) {  // and once more, from the saved "changed"
    r = Open();
    EXPECT_EQ(r->state(), repl::ReplicaState::kChanged);
    EXPECT_EQ(ImageBytes(0, 2), "ro");
    r.reset();
  }
}

TEST_F(ReplicaTest, AfterACrashOnlyAnotherFileCountsAsChanged) {
  const std::string img = dir_.path() + "/vm1/replica.img";
  // No Close(): a kill -9. The target's own writes after its last state save change the
  // image's times, so those cannot count.
  InSyncWithOneBlock('a');
  {
    UniqueFd fd(::open(img.c_str(), O_WRONLY));
    ASSERT_EQ(::pwrite(fd.get(), "b", 1, 0), 1);
  }
  {
    auto r = Open();
    EXPECT_EQ(r->state(), repl::ReplicaState::kInSync) << r->changed_why();
  }
  // Replaced by another file (a restore that renames a copy into place): another inode.
  ASSERT_EQ(::system(("cp " + img + " " + img + ".new && mv " + img + ".new " + img).c_str()), 0);
  auto r = Open();
  EXPECT_EQ(r->state(), repl::ReplicaState::kChanged);
  EXPECT_NE(r->changed_why().find("is not the file blockrep-target wrote"), std::string::npos)
      << r->changed_why();
}

TEST_F(ReplicaTest, ASecondOpenOfTheSameDirectoryIsRefused) {
  auto r = Open();
  auto again = Replica::Open(Config());
  EXPECT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("in use"), std::string::npos);
}

}  // namespace
}  // namespace blockrep
