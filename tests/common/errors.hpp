#pragma once
// Error-path assertions shared by the operator suites.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <ember/host/error.hpp>

namespace ember::test {

/// Expects `f()` to throw ember::invalid_input whose message contains `fragment`.
template <class F>
void expect_invalid_input(F&& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "expected ember::invalid_input containing: " << fragment;
  } catch (const invalid_input& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

/// Expects `f()` to throw ember::invalid_input whose message holds every fragment; returns the
/// message (empty when nothing was thrown).
template <class F>
std::string expect_rejected(F&& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "expected ember::invalid_input containing: " << fragments.front();
  } catch (const invalid_input& e) {
    std::string what = e.what();
    for (const auto& fragment : fragments)
      EXPECT_NE(what.find(fragment), std::string::npos) << what << "\n  missing: " << fragment;
    return what;
  }
  return {};
}

}  // namespace ember::test
