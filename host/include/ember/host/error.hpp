#pragma once
#include <stdexcept>
#include <string>

namespace ember {

/// Root of ember's exceptions. Every message names the thing at fault (column, file:line, peer).
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A bug in ember or a broken precondition of an internal API.
class logic_error : public error {
 public:
  using error::error;
};

/// The user's input is wrong: an unknown column, a type mismatch, a malformed file, a bad size.
class invalid_input : public error {
 public:
  using error::error;
};

/// An allocation did not fit its memory resource's budget (or the device ran out).
class out_of_memory : public error {
 public:
  using error::error;
};

/// A CUDA runtime call failed; the message holds the call site and CUDA's error string.
class cuda_error : public error {
 public:
  using error::error;
};

/// A peer or the network failed (used by the transport layer).
class transport_error : public error {
 public:
  using error::error;
};

/// A wait ran past its deadline.
class timeout : public error {
 public:
  using error::error;
};

/// The work was cancelled (a job was stopped, or another task of the job failed first).
class cancelled : public error {
 public:
  using error::error;
};

/// Data that existed is gone (a cache entry whose worker died): the message says where it was
/// and why it went. Never answered with stale data instead.
class data_lost : public error {
 public:
  using error::error;
};

}  // namespace ember

/// Throws `exception_type(message)` when `condition` is false. `message` is only built on failure.
#define EMBER_EXPECTS(condition, exception_type, message) \
  do {                                                    \
    if (!(condition)) throw exception_type(message);      \
  } while (0)
