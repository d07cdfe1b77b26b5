#pragma once

namespace blockrep {
inline constexpr char kVersion[] = "0.1.0";
}  // namespace blockrep
