#include "nbd/export_catalog.h"

#include "nbd/protocol.h"

namespace blockrep::nbd {

Status ExportCatalog::Add(Export e) {
  if (e.name.empty()) return Status::InvalidArgument("export name is empty");
  if (e.name.size() > kMaxStringBytes) {
    return Status::InvalidArgument("export name '" + e.name.substr(0, 32) + "...' is longer than " +
                                   std::to_string(kMaxStringBytes) + " bytes");
  }
  if (e.name.find('\0') != std::string::npos) {
    return Status::InvalidArgument("export name contains a NUL byte");
  }
  if (Find(e.name) != nullptr) {
    return Status::InvalidArgument("export name '" + e.name + "' is given twice");
  }
  exports_.push_back(std::move(e));
  return Status::Ok();
}

const Export* ExportCatalog::Find(std::string_view name) const {
  if (name.empty()) return exports_.empty() ? nullptr : &exports_.front();
  for (const Export& e : exports_) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

}  // namespace blockrep::nbd
