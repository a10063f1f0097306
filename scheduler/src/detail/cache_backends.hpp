#pragma once
// The two homes of a client's named cache: a remote scheduler's workers (requests through the
// scheduler, which finds entries in its residency catalog), and one partition store in the
// embedded cluster's process.
#include <ember/host/memory_resource.hpp>
#include <ember/host/partition_store.hpp>
#include <ember/scheduler/cache.hpp>
#include <memory>
#include <mutex>

#include "protocol.hpp"

namespace ember::detail {

class remote_session;

class remote_cache_backend final : public cache_backend {
 public:
  explicit remote_cache_backend(std::shared_ptr<remote_session> session);
  int put(const std::string& key, const table_view& rows) override;
  std::optional<table> get(const std::string& key) override;
  bool erase(const std::string& key) override;
  std::vector<cache_entry> entries() override;
  std::vector<cache_entry> residency() override;

 private:
  std::vector<cache_entry> list(cache_op op);
  std::shared_ptr<remote_session> _session;
};

class local_cache_backend final : public cache_backend {
 public:
  /// `device_limit`: the budget of the store's device tier (host memory standing in for it).
  explicit local_cache_backend(std::size_t device_limit);
  ~local_cache_backend() override;
  int put(const std::string& key, const table_view& rows) override;
  std::optional<table> get(const std::string& key) override;
  bool erase(const std::string& key) override;
  std::vector<cache_entry> entries() override;
  std::vector<cache_entry> residency() override;

 private:
  std::vector<cache_entry> list(bool cache_only);
  tracking_resource _device, _host;
  std::unique_ptr<partition_store> _store;
  std::mutex _mutex;  // makes a put's erase-then-put one step
};

}  // namespace ember::detail
