// Test-only: TempDir, a fresh directory for one GoogleTest case, removed with everything in it
// when the TempDir is destroyed. Only *_test.cc files include this header: it needs GoogleTest
// and is part of no binary blockrep ships (the Makefile builds only .cc files, and no library
// source includes it). A fixture holds a TempDir as a member (a failed mkdtemp then stops the
// test before SetUp); a test without a fixture makes one on its stack.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace blockrep::test {

class TempDir {
 public:
  // Creates <base>/blockrep_<suite>.<test>.XXXXXX, named after the running test so that a
  // leftover directory says which test left it; an empty `base` means ::testing::TempDir(). A
  // failure is a fatal GoogleTest failure, and path() then names a directory that does not
  // exist.
  TempDir() : TempDir(std::string()) {}
  explicit TempDir(std::string base) { Create(std::move(base)); }
  // Best effort: a leftover directory must not fail a test that has passed.
  ~TempDir() {
    if (!created_) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // The path of `name` (which may hold further '/'-separated parts) inside the directory.
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  // Apart from the constructor because FAIL() returns, which a constructor cannot with a value.
  void Create(std::string base) {
    if (base.empty()) base = ::testing::TempDir();
    if (base.empty() || base.back() != '/') base += '/';
    path_ = base + TestName() + ".XXXXXX";
    if (::mkdtemp(path_.data()) == nullptr) {
      const int err = errno;
      FAIL() << "mkdtemp " << path_ << ": " << std::strerror(err);
    }
    created_ = true;
  }

  // blockrep_<suite>.<test>, with the '/' of parameterized names made '_'.
  static std::string TestName() {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    if (info == nullptr) return "blockrep_test";
    std::string name = std::string("blockrep_") + info->test_suite_name() + "." + info->name();
    std::replace(name.begin(), name.end(), '/', '_');
    return name;
  }

  std::string path_;
  bool created_ = false;
};

}  // namespace blockrep::test
