// Test-only: Parse, which runs ParseSourceOptions on a blockrep-source command line given as
// strings, for the tests of the command line (source_options_test.cc) and of the config file it
// can name (source_config_test.cc). Only *_test.cc files include this header: it is part of no
// binary blockrep ships.
#pragma once

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "daemon/source_options.h"

namespace blockrep::test {

// Parses {"blockrep-source", args...}. getopt keeps pointers into argv between calls, so every
// argv built here lives until the test program exits. Not thread-safe.
inline Result<SourceOptions> Parse(std::vector<std::string> args) {
  static std::deque<std::vector<std::string>> strings;
  static std::deque<std::vector<char*>> argvs;
  args.insert(args.begin(), "blockrep-source");
  strings.push_back(std::move(args));
  std::vector<char*> argv;
  for (std::string& a : strings.back()) argv.push_back(a.data());
  argv.push_back(nullptr);
  argvs.push_back(std::move(argv));
  return ParseSourceOptions(static_cast<int>(argvs.back().size() - 1), argvs.back().data());
}

}  // namespace blockrep::test
