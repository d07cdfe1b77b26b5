// SourceControl: blockrep-source's control API (docs/control.md): the commands `blockrep`
// sends over the control socket, answered from the protected disks and their shippers.
//
// Thread-safety: Handle() may run on several control threads at once; everything it calls
// is thread-safe. Lifetime: the disks, shippers and options outlive it.
#pragma once

#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/protected_disk.h"
#include "daemon/shipper.h"
#include "daemon/source_options.h"

namespace blockrep {

class SourceControl {
 public:
  // A drain or verify waits at most this long unless the request says otherwise.
  static constexpr int kDefaultWaitMs = 600000;

  SourceControl(const std::vector<std::unique_ptr<ProtectedDisk>>& disks,
                const std::vector<std::unique_ptr<Shipper>>& shippers, const SourceOptions& options)
      : disks_(disks), shippers_(shippers), options_(options) {}

  nlohmann::json Handle(const nlohmann::json& request);

 private:
  nlohmann::json Status() const;
  nlohmann::json DiskStatus(size_t i) const;
  // The index of the disk the request names ("disk"), or an error response in *error.
  bool FindDisk(const nlohmann::json& request, size_t* index, nlohmann::json* error) const;

  const std::vector<std::unique_ptr<ProtectedDisk>>& disks_;
  const std::vector<std::unique_ptr<Shipper>>& shippers_;
  const SourceOptions& options_;
};

}  // namespace blockrep
