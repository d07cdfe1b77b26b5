// ExportCatalog: the named exports a server offers, looked up during the handshake.
//
// Immutable once the server starts (exports are configured at startup), so lookups need no
// lock. The catalog does not own the backends; they outlive the server.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "nbd/backend.h"

namespace blockrep::nbd {

struct Export {
  std::string name;
  std::string description;
  Backend* backend = nullptr;
};

class ExportCatalog {
 public:
  // Fails on an empty or over-long name, or a duplicate.
  Status Add(Export e);
  // nullptr when there is no export of that name. The empty name selects the first export
  // (the spec's "default export").
  const Export* Find(std::string_view name) const;
  const std::vector<Export>& exports() const { return exports_; }

 private:
  std::vector<Export> exports_;
};

}  // namespace blockrep::nbd
