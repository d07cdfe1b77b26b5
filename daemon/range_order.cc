#include "daemon/range_order.h"

#include "core/check.h"

namespace blockrep {

void RangeOrder::Enter(Entry* e) {
  BLOCKREP_CHECK(e->length > 0 && e->blockers == 0 && e->waiters.empty());
  for (Entry* x = head_; x != nullptr; x = x->next) {
    const bool overlap = x->offset < e->offset + e->length && e->offset < x->offset + x->length;
    if (overlap) {
      x->waiters.push_back(e);
      ++e->blockers;
    }
  }
  e->prev = tail_;
  e->next = nullptr;
  if (tail_ != nullptr) tail_->next = e; else head_ = e;
  tail_ = e;
  ++size_;
}

void RangeOrder::Leave(Entry* e, std::vector<Entry*>* ready) {
  BLOCKREP_CHECK(size_ > 0);
  if (e->prev != nullptr) e->prev->next = e->next; else head_ = e->next;
  if (e->next != nullptr) e->next->prev = e->prev; else tail_ = e->prev;
  e->prev = e->next = nullptr;
  --size_;
  for (Entry* w : e->waiters) {
    BLOCKREP_CHECK(w->blockers > 0);
    if (--w->blockers == 0) ready->push_back(w);
  }
  e->waiters.clear();
}

}  // namespace blockrep
