// Checks RangeOrder, which holds a change's backing-disk write until every earlier change
// to an overlapping range has finished: entries enter in seq order with hand-picked ranges,
// and each test checks the blocker counts and which waiters each Leave releases.
#include "daemon/range_order.h"

#include <gtest/gtest.h>

#include <vector>

namespace blockrep {
namespace {

using Entry = RangeOrder::Entry;
using Ready = std::vector<Entry*>;

Entry Range(uint64_t offset, uint64_t length) {
  Entry e;
  e.offset = offset;
  e.length = length;
  return e;
}

TEST(RangeOrder, EmptyHasSizeZero) {
  RangeOrder order;
  EXPECT_EQ(order.size(), 0u);
}

TEST(RangeOrder, NonOverlappingEntriesHaveNoBlockers) {
  RangeOrder order;
  Entry a = Range(0, 4096), b = Range(8192, 4096), c = Range(1 << 20, 512);
  order.Enter(&a);
  order.Enter(&b);
  order.Enter(&c);
  EXPECT_EQ(a.blockers, 0u);
  EXPECT_EQ(b.blockers, 0u);
  EXPECT_EQ(c.blockers, 0u);
  EXPECT_TRUE(a.waiters.empty());
  EXPECT_TRUE(b.waiters.empty());
  EXPECT_EQ(order.size(), 3u);
}

TEST(RangeOrder, AdjacentRangesDoNotBlock) {
  RangeOrder order;
  Entry a = Range(4096, 4096), before = Range(0, 4096), after = Range(8192, 4096);
  order.Enter(&a);
  order.Enter(&before);  // ends where a starts
  order.Enter(&after);   // starts where a ends
  EXPECT_EQ(before.blockers, 0u);
  EXPECT_EQ(after.blockers, 0u);
  EXPECT_TRUE(a.waiters.empty());
}

TEST(RangeOrder, OneByteOverlapBlocks) {
  RangeOrder order;
  Entry a = Range(0, 4096), b = Range(4095, 4096);
  order.Enter(&a);
  order.Enter(&b);
  EXPECT_EQ(b.blockers, 1u);
  EXPECT_EQ(a.waiters, (Ready{&b}));
}

TEST(RangeOrder, LaterEntryIsBlockedByEachEarlierOverlappingOne) {
  RangeOrder order;
  Entry a = Range(0, 4096), b = Range(2048, 4096), c = Range(0, 8192), d = Range(100000, 10);
  order.Enter(&a);
  order.Enter(&b);
  order.Enter(&c);
  order.Enter(&d);
  EXPECT_EQ(a.blockers, 0u);
  EXPECT_EQ(b.blockers, 1u);  // a
  EXPECT_EQ(c.blockers, 2u);  // a and b
  EXPECT_EQ(d.blockers, 0u);
  EXPECT_EQ(a.waiters, (Ready{&b, &c}));
  EXPECT_EQ(b.waiters, (Ready{&c}));
  EXPECT_TRUE(c.waiters.empty());
}

TEST(RangeOrder, RangeInsideAnEarlierOneIsBlocked) {
  RangeOrder order;
  Entry outer = Range(0, 1 << 20), inner = Range(4096, 512);
  order.Enter(&outer);
  order.Enter(&inner);
  EXPECT_EQ(inner.blockers, 1u);
}

TEST(RangeOrder, EarlierEntryIsNeverBlockedByALaterOne) {
  RangeOrder order;
  Entry inner = Range(4096, 512), outer = Range(0, 1 << 20);
  order.Enter(&inner);
  order.Enter(&outer);
  EXPECT_EQ(inner.blockers, 0u);
  EXPECT_EQ(outer.blockers, 1u);
}

TEST(RangeOrder, LeaveReleasesAWaiterOnlyWhenItsLastBlockerLeaves) {
  RangeOrder order;
  Entry a = Range(0, 4096), b = Range(2048, 4096), c = Range(0, 8192);
  order.Enter(&a);
  order.Enter(&b);
  order.Enter(&c);

  Ready ready;
  order.Leave(&a, &ready);
  EXPECT_EQ(ready, (Ready{&b}));  // b's only blocker; c still waits for b
  EXPECT_EQ(c.blockers, 1u);

  ready.clear();
  order.Leave(&b, &ready);
  EXPECT_EQ(ready, (Ready{&c}));
  EXPECT_EQ(c.blockers, 0u);

  ready.clear();
  order.Leave(&c, &ready);
  EXPECT_TRUE(ready.empty());
  EXPECT_EQ(order.size(), 0u);
}

TEST(RangeOrder, LeaveOfAnEntryBlockingNothingReleasesNothing) {
  RangeOrder order;
  Entry a = Range(0, 4096), b = Range(8192, 4096);
  order.Enter(&a);
  order.Enter(&b);
  Ready ready;
  order.Leave(&a, &ready);
  EXPECT_TRUE(ready.empty());
  EXPECT_TRUE(a.waiters.empty());
  EXPECT_EQ(order.size(), 1u);
}

TEST(RangeOrder, ReleasedWaitersComeInEntryOrder) {
  RangeOrder order;
  Entry a = Range(0, 8192), b = Range(0, 4096), c = Range(4096, 4096);
  order.Enter(&a);
  order.Enter(&b);
  order.Enter(&c);
  Ready ready;
  order.Leave(&a, &ready);
  EXPECT_EQ(ready, (Ready{&b, &c}));
}

TEST(RangeOrder, LeavingOutOfOrderKeepsTheRestConsistent) {
  // Unrelated entries finish in any order; the list must stay intact for later entries.
  RangeOrder order;
  Entry a = Range(0, 4096), b = Range(8192, 4096), c = Range(16384, 4096);
  order.Enter(&a);
  order.Enter(&b);
  order.Enter(&c);
  Ready ready;
  order.Leave(&b, &ready);  // the middle one first
  order.Leave(&c, &ready);  // then the tail
  EXPECT_TRUE(ready.empty());
  EXPECT_EQ(order.size(), 1u);

  // Only a is still in flight: a new entry over all three ranges waits for a alone.
  Entry d = Range(0, 20480);
  order.Enter(&d);
  EXPECT_EQ(d.blockers, 1u);
  EXPECT_EQ(a.waiters, (Ready{&d}));
  order.Leave(&a, &ready);
  EXPECT_EQ(ready, (Ready{&d}));
  ready.clear();
  order.Leave(&d, &ready);
  EXPECT_EQ(order.size(), 0u);

  // And the emptied list takes entries again.
  Entry e = Range(0, 4096);
  order.Enter(&e);
  EXPECT_EQ(e.blockers, 0u);
  EXPECT_EQ(order.size(), 1u);
}

TEST(RangeOrder, LaterBlockerLeavingFirstStillHoldsTheWaiter) {
  RangeOrder order;
  Entry a = Range(0, 4096), b = Range(4096, 4096), c = Range(0, 8192);
  order.Enter(&a);
  order.Enter(&b);
  order.Enter(&c);
  ASSERT_EQ(c.blockers, 2u);
  Ready ready;
  order.Leave(&b, &ready);
  EXPECT_TRUE(ready.empty());
  EXPECT_EQ(c.blockers, 1u);
  order.Leave(&a, &ready);
  EXPECT_EQ(ready, (Ready{&c}));
}

TEST(RangeOrder, EntryThatLeftCanEnterAgain) {
  RangeOrder order;
  Entry a = Range(0, 4096), b = Range(0, 4096);
  order.Enter(&a);
  order.Enter(&b);
  Ready ready;
  order.Leave(&a, &ready);
  ASSERT_EQ(ready, (Ready{&b}));
  EXPECT_TRUE(a.waiters.empty());
  EXPECT_EQ(a.prev, nullptr);
  EXPECT_EQ(a.next, nullptr);
  order.Enter(&a);  // a new change reusing the same entry: behind b now
  EXPECT_EQ(a.blockers, 1u);
  EXPECT_EQ(b.waiters, (Ready{&a}));
  EXPECT_EQ(order.size(), 2u);
}

TEST(RangeOrder, SizeCountsEntriesInFlight) {
  RangeOrder order;
  std::vector<Entry> entries;
  entries.reserve(10);
  for (uint64_t i = 0; i < 10; ++i) entries.push_back(Range(i * 4096, 4096));
  for (Entry& e : entries) order.Enter(&e);
  EXPECT_EQ(order.size(), 10u);
  Ready ready;
  for (size_t i = 0; i < entries.size(); i += 2) order.Leave(&entries[i], &ready);
  EXPECT_EQ(order.size(), 5u);
  for (size_t i = 1; i < entries.size(); i += 2) order.Leave(&entries[i], &ready);
  EXPECT_EQ(order.size(), 0u);
  EXPECT_TRUE(ready.empty());
}

}  // namespace
}  // namespace blockrep
