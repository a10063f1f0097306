#pragma once
// Error-path assertions shared by the operator suites.
#include <string>

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

}  // namespace ember::test
