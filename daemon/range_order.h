// RangeOrder: keeps changes to overlapping disk ranges in journal order.
//
// Every change gets its seq and enters here at the same moment (under the WritePath's
// mutex). Its journal record may be written at once, but its backing-disk change waits until
// every earlier change that overlaps it has finished its own: so the backing disk sees
// overlapping changes in seq order, which is the order a replica replaying the journal will
// apply them. Without this, two overlapping writes in flight could reach the source disk in
// one order and the replica in the other.
//
// Clients rarely keep overlapping writes in flight (file systems order them themselves), so
// the in-flight list is scanned linearly; its length is bounded by the requests in flight on
// the disk (nbd::Connection::kMaxRequestsInFlight per connection).
//
// Thread-safety: none. REQUIRES: the caller serializes every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace blockrep {

class RangeOrder {
 public:
  struct Entry {
    void* owner = nullptr;          // the operation this entry belongs to (for the caller)
    bool fence = false;             // a fenced read (WritePath::Fenced), not a change
    uint64_t offset = 0;
    uint64_t length = 0;
    uint32_t blockers = 0;          // earlier overlapping entries still in flight
    std::vector<Entry*> waiters;    // later overlapping entries this one blocks
    Entry* prev = nullptr;          // in-flight list, in entry order
    Entry* next = nullptr;
  };

  // Adds e (after every entry already in) and counts in e->blockers the in-flight entries it
  // overlaps. e may start its backing change when blockers is 0.
  void Enter(Entry* e);
  // e's backing change is done: removes it, and appends to *ready every waiter whose last
  // blocker it was.
  void Leave(Entry* e, std::vector<Entry*>* ready);
  size_t size() const { return size_; }

 private:
  Entry* head_ = nullptr;
  Entry* tail_ = nullptr;
  size_t size_ = 0;
};

}  // namespace blockrep
