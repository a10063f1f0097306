// The partition store on the CPU backend: every type round-trips through every tier; LRU spills
// device -> host -> disk keep each tier's accounted peak within its budget and bring every
// partition back equal to the table it was made from; damaged spill files are reported naming
// the key and the file; pins hold partitions in place; the store reclaims memory for other
// allocations of its tiers; residency changes are reported once; and all of it holds under
// several threads at once. The reference is always the original table, kept aside.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <ember/host/column_factories.hpp>
#include <ember/host/error.hpp>
#include <ember/host/memory_resource.hpp>
#include <ember/host/partition_store.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.hpp"
#include "common/tables.hpp"
#include "common/temp_dir.hpp"

namespace ember {
// gtest prints the tier's name instead of a uint8_t.
inline void PrintTo(memory_tier t, std::ostream* os) { *os << to_string(t); }
}  // namespace ember

namespace ember::test {
namespace {

namespace fs = std::filesystem;
constexpr auto unlimited = tracking_resource::unlimited;

// A device tier and a host tier, both accounted over plain host memory.
struct tiers {
  tiers(std::size_t device_limit, std::size_t host_limit)
      : device(default_host_resource(), "device tier", device_limit),
        host(default_host_resource(), "host tier", host_limit) {}
  tracking_resource device;
  tracking_resource host;
};

partition_store_options options_for(tiers& t, const fs::path& spill_dir) {
  partition_store_options o;
  o.device = &t.device;
  o.host = &t.host;
  o.spill_dir = spill_dir;
  o.name = "test store";
  return o;
}

// Bytes that copy_table allocates for `t`: values, offsets, characters and null masks.
std::int64_t bytes_of(const table_view& t) {
  std::int64_t n = 0;
  for (const auto& c : t.columns()) {
    if (c.nullable())
      n += bitmask_words(c.size()) * static_cast<std::int64_t>(sizeof(bitmask_type));
    if (c.type() == type_id::string) {
      n += (c.size() + 1) * static_cast<std::int64_t>(sizeof(size_type));
      if (c.size() > 0) n += c.offsets()[c.size()] - c.offsets()[0];
    } else {
      n += c.size() * size_of(c.type());
    }
  }
  return n;
}

// A table of every type, every 7th row of each column null.
table every_type(std::size_t n, std::uint64_t seed) { return all_types(n, 7, seed); }

// int64, float64 and string columns with some nulls: the partitions of the spill tests.
table mixed(std::size_t n, std::uint64_t seed) {
  std::vector<std::pair<std::string, column>> cols;
  cols.emplace_back("k", random_int64(n, -1'000'000, 1'000'000, 0.1, seed));
  cols.emplace_back("v", random_float64(n, -1e6, 1e6, 0.1, seed + 1));
  cols.emplace_back("s", random_strings(n, 1000, 0.1, seed + 2));
  return make_table(std::move(cols));
}

// True when `actual` holds the rows of `expected` (names, types and values; a null mask
// without nulls counts as none).
bool same_rows(const table_view& expected, const table_view& actual) {
  if (actual.names() != expected.names() || actual.num_rows() != expected.num_rows()) return false;
  for (size_type c = 0; c < expected.num_columns(); ++c)
    if (actual.column(c).type() != expected.column(c).type()) return false;
  return rows_of(actual) == rows_of(expected);
}

void expect_same(const table_view& expected, const table_view& actual) {
  ASSERT_EQ(actual.names(), expected.names());
  ASSERT_EQ(actual.num_rows(), expected.num_rows());
  for (size_type c = 0; c < expected.num_columns(); ++c)
    EXPECT_EQ(actual.column(c).type(), expected.column(c).type()) << expected.names()[c];
  EXPECT_EQ(rows_of(actual), rows_of(expected));
}

// Copies `ref` into memory of `tier`'s resource and puts it under `key`.
void put_copy(partition_store& store, tiers& t, const std::string& key, const table& ref,
              memory_tier tier = memory_tier::device) {
  auto& mr = tier == memory_tier::device ? t.device : t.host;
  store.put(key, copy_table(ref.view(), mr), tier, bytes_of(ref.view()));
}

// Files under `dir`, the store's own spill folder inside it included.
std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::int64_t bytes_in(const fs::path& dir) {
  std::int64_t n = 0;
  for (const auto& f : files_in(dir)) n += static_cast<std::int64_t>(fs::file_size(f));
  return n;
}

std::map<std::string, memory_tier> tiers_of(const partition_store& store) {
  std::map<std::string, memory_tier> out;
  for (const auto& p : store.partitions()) out[p.key] = p.tier;
  return out;
}

memory_tier tier_of(const partition_store& store, const std::string& key) {
  auto info = store.find(key);
  EXPECT_TRUE(info.has_value()) << key;
  return info ? info->tier : memory_tier::pinned_host;
}

// partitions(), find() and stats() tell the same story.
void expect_consistent(const partition_store& store) {
  auto all = store.partitions();
  auto stats = store.stats();
  std::map<memory_tier, std::pair<std::size_t, std::int64_t>> per_tier;
  std::set<std::string> seen;
  for (const auto& p : all) {
    EXPECT_TRUE(seen.insert(p.key).second) << "listed twice: " << p.key;
    auto one = store.find(p.key);
    ASSERT_TRUE(one.has_value()) << p.key;
    EXPECT_EQ(one->tier, p.tier) << p.key;
    EXPECT_EQ(one->bytes, p.bytes) << p.key;
    EXPECT_EQ(one->rows, p.rows) << p.key;
    EXPECT_EQ(one->file_bytes, p.file_bytes) << p.key;
    EXPECT_TRUE(store.contains(p.key)) << p.key;
    if (p.tier == memory_tier::disk) {
      EXPECT_GT(p.file_bytes, 0) << p.key;
    }
    per_tier[p.tier].first += 1;
    per_tier[p.tier].second += p.bytes;
  }
  EXPECT_EQ(stats.device.partitions, per_tier[memory_tier::device].first);
  EXPECT_EQ(stats.device.partition_bytes, per_tier[memory_tier::device].second);
  EXPECT_EQ(stats.host.partitions, per_tier[memory_tier::host].first);
  EXPECT_EQ(stats.host.partition_bytes, per_tier[memory_tier::host].second);
  EXPECT_EQ(stats.disk.partitions, per_tier[memory_tier::disk].first);
  EXPECT_EQ(stats.disk.partition_bytes, per_tier[memory_tier::disk].second);
}

// ---- put / acquire / erase -------------------------------------------------------------------

TEST(partition_store, round_trip_every_type_in_device_tier) {
  tiers t(unlimited, unlimited);
  temp_dir dir("ember-store");
  partition_store store(options_for(t, dir.path()));
  // A folder of the store's own, inside the one given.
  EXPECT_EQ(store.spill_dir().parent_path(), dir.path());
  auto ref = every_type(1000, 1);
  const auto bytes = bytes_of(ref.view());
  put_copy(store, t, "job1/part0", ref);
  EXPECT_TRUE(store.contains("job1/part0"));
  EXPECT_EQ(t.device.used(), static_cast<std::size_t>(bytes));
  EXPECT_EQ(t.host.used(), 0u);

  auto info = store.find("job1/part0");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->key, "job1/part0");
  EXPECT_EQ(info->tier, memory_tier::device);
  EXPECT_EQ(info->rows, 1000);
  EXPECT_GT(info->bytes, 0);
  EXPECT_EQ(info->pins, 0);
  {
    auto h = store.acquire("job1/part0");
    ASSERT_TRUE(h);
    ASSERT_TRUE(*h);
    EXPECT_EQ(h->key(), "job1/part0");
    EXPECT_EQ(h->tier(), memory_tier::device);
    EXPECT_EQ(h->bytes(), info->bytes);
    EXPECT_TRUE(h->owner());
    expect_same(ref.view(), h->rows());
    EXPECT_EQ(store.find("job1/part0")->pins, 1);
    auto h2 = store.acquire("job1/part0", memory_tier::host);  // already higher: stays
    ASSERT_TRUE(h2);
    EXPECT_EQ(h2->tier(), memory_tier::device);
    EXPECT_EQ(store.find("job1/part0")->pins, 2);
    // A handle moves with its pin.
    pinned_partition moved = std::move(*h2);
    EXPECT_TRUE(moved);
    EXPECT_EQ(store.find("job1/part0")->pins, 2);
  }
  EXPECT_EQ(store.find("job1/part0")->pins, 0);

  // Unknown keys: a miss, not an error.
  EXPECT_FALSE(store.acquire("no/such/key").has_value());
  EXPECT_FALSE(store.contains("no/such/key"));
  EXPECT_FALSE(store.find("no/such/key").has_value());
  auto stats = store.stats();
  EXPECT_EQ(stats.hits, 2);
  EXPECT_GE(stats.tier_hits, 1);
  EXPECT_EQ(stats.misses, 1);
  EXPECT_EQ(stats.spills, 0);
  EXPECT_EQ(stats.device.partitions, 1u);

  // A taken key is a bug of the caller.
  auto again = copy_table(ref.view(), t.device);
  EXPECT_THROW(store.put("job1/part0", std::move(again), memory_tier::device, bytes), logic_error);
  expect_same(ref.view(), store.acquire("job1/part0")->rows());
  // Nothing is stored in the disk tier directly.
  EXPECT_THROW(put_copy(store, t, "job1/disk", ref, memory_tier::disk), invalid_input);
  EXPECT_FALSE(store.contains("job1/disk"));

  // erase and erase_prefix.
  put_copy(store, t, "job1/part1", every_type(10, 2));
  put_copy(store, t, "job10/part0", every_type(10, 3));
  put_copy(store, t, "job2/part0", every_type(0, 4), memory_tier::host);
  EXPECT_EQ(store.partitions().size(), 4u);
  expect_consistent(store);
  EXPECT_EQ(store.erase_prefix("job1/"), 2u);
  EXPECT_FALSE(store.contains("job1/part0"));
  EXPECT_FALSE(store.contains("job1/part1"));
  EXPECT_TRUE(store.contains("job10/part0"));
  EXPECT_EQ(store.erase_prefix("job3/"), 0u);
  auto empty = store.acquire("job2/part0", memory_tier::host);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->rows().num_rows(), 0);
  EXPECT_EQ(empty->rows().names(), every_type(0, 4).names());
  empty.reset();
  EXPECT_TRUE(store.erase("job2/part0"));
  EXPECT_FALSE(store.erase("job2/part0"));
  EXPECT_TRUE(store.erase("job10/part0"));
  EXPECT_TRUE(store.partitions().empty());
  // Every byte went back.
  EXPECT_EQ(t.device.used(), 0u);
  EXPECT_EQ(t.host.used(), 0u);
}

TEST(partition_store, slices_sharing_one_owner_free_it_once_all_moved) {
  tiers t(unlimited, unlimited);
  temp_dir dir("ember-store");
  partition_store store(options_for(t, dir.path()));
  auto ref = mixed(3000, 5);
  auto whole = std::make_shared<const table>(copy_table(ref.view(), t.device));
  const auto used = t.device.used();
  auto v = whole->view();
  store.put("s/0", whole, v.slice(0, 1000), memory_tier::device, 111);
  store.put("s/1", whole, v.slice(1000, 3000), memory_tier::device, 222);
  whole.reset();
  EXPECT_EQ(store.find("s/0")->bytes, 111);
  EXPECT_EQ(store.find("s/1")->bytes, 222);
  EXPECT_EQ(store.find("s/1")->rows, 2000);
  EXPECT_EQ(t.device.used(), used);
  {
    auto h = store.acquire("s/1");
    ASSERT_TRUE(h);
    expect_same(ref.view().slice(1000, 3000), h->rows());
  }
  EXPECT_GT(store.spill_all(memory_tier::device), 0);
  EXPECT_EQ(tier_of(store, "s/0"), memory_tier::host);
  EXPECT_EQ(tier_of(store, "s/1"), memory_tier::host);
  EXPECT_EQ(t.device.used(), 0u) << "the shared owner outlived both of its partitions' moves";
  expect_same(ref.view().slice(0, 1000), store.acquire("s/0", memory_tier::host)->rows());
  expect_same(ref.view().slice(1000, 3000), store.acquire("s/1", memory_tier::host)->rows());
}

TEST(partition_store, constructor_checks_its_options) {
  tiers t(unlimited, unlimited);
  temp_dir dir("ember-store");
  auto o = options_for(t, dir.path());
  o.device = nullptr;
  EXPECT_THROW(partition_store{o}, invalid_input);
  o = options_for(t, dir.path());
  o.host = nullptr;
  EXPECT_THROW(partition_store{o}, invalid_input);
  // A spill folder below a regular file cannot be created.
  auto file = dir.write("plain-file", "x");
  o = options_for(t, file / "spill");
  expect_rejected([&] { partition_store store(o); }, {(file / "spill").string()});
}

// ---- spilling --------------------------------------------------------------------------------

TEST(partition_store, lru_spill_device_to_host_keeps_the_device_budget) {
  constexpr std::size_t budget = 256 << 10;
  tiers t(budget, unlimited);
  temp_dir dir("ember-store");
  partition_store store(options_for(t, dir.path()));

  std::map<std::string, table> refs;
  std::vector<std::string> order;  // least recently used first
  auto touch = [&](const std::string& key) {
    order.erase(std::remove(order.begin(), order.end(), key), order.end());
    order.push_back(key);
  };
  bool first_spill_seen = false;
  std::int64_t total = 0;
  for (int i = 0; total < 4 * static_cast<std::int64_t>(budget); ++i) {
    std::string key = "p" + std::to_string(i);
    auto ref = mixed(1500 + 100 * (i % 5), 100 + i);
    const auto bytes = bytes_of(ref.view());
    ASSERT_LT(bytes, static_cast<std::int64_t>(budget) / 4);
    ASSERT_TRUE(store.make_room(memory_tier::device, static_cast<std::size_t>(bytes))) << key;
    EXPECT_LE(t.device.used() + static_cast<std::size_t>(bytes), budget) << key;
    put_copy(store, t, key, ref);
    refs.emplace(key, std::move(ref));
    touch(key);
    total += bytes;
    if (i == 2) {  // p0 becomes more recently used than p1 and p2
      auto h = store.acquire("p0");
      ASSERT_TRUE(h);
      EXPECT_EQ(h->tier(), memory_tier::device);
      touch("p0");
    }
    // Whatever left the device tier was used less recently than everything still there.
    auto now = tiers_of(store);
    ASSERT_EQ(now.size(), order.size());
    bool device_seen = false;
    for (const auto& k : order) {
      if (now[k] == memory_tier::device) {
        device_seen = true;
      } else {
        EXPECT_EQ(now[k], memory_tier::host) << k;
        EXPECT_FALSE(device_seen) << k << " was spilled before a less recently used partition"
                                  << " (after putting " << key << ")";
      }
    }
    if (!first_spill_seen && now["p1"] != memory_tier::device) {
      first_spill_seen = true;
      EXPECT_EQ(now["p0"], memory_tier::device) << "p0 was refreshed by acquire()";
      EXPECT_EQ(now["p1"], memory_tier::host);
    }
  }
  EXPECT_TRUE(first_spill_seen);
  EXPECT_LE(t.device.peak(), budget);
  auto stats = store.stats();
  EXPECT_GT(stats.spilled_to_host_bytes, 0);
  EXPECT_GT(stats.spills, 0);
  EXPECT_EQ(stats.spilled_to_disk_bytes, 0);
  EXPECT_EQ(stats.device.limit, budget);
  EXPECT_EQ(stats.device.used, t.device.used());
  EXPECT_EQ(stats.device.peak, t.device.peak());
  EXPECT_GT(stats.host.partitions, 0u);
  EXPECT_TRUE(files_in(dir.path()).empty());
  expect_consistent(store);

  // Every partition comes back up, equal to its reference, within the budget.
  for (const auto& [key, ref] : refs) {
    auto h = store.acquire(key);
    ASSERT_TRUE(h) << key;
    EXPECT_EQ(h->tier(), memory_tier::device) << key;
    EXPECT_EQ(tier_of(store, key), memory_tier::device) << key;
    EXPECT_TRUE(same_rows(ref.view(), h->rows())) << key;
  }
  EXPECT_LE(t.device.peak(), budget);
  stats = store.stats();
  EXPECT_GT(stats.unspilled_from_host_bytes, 0);
  EXPECT_GT(stats.unspills, 0);
  EXPECT_EQ(stats.misses, 0);
  expect_consistent(store);
  EXPECT_EQ(store.erase_prefix("p"), refs.size());
  EXPECT_EQ(t.device.used(), 0u);
  EXPECT_EQ(t.host.used(), 0u);
}

TEST(partition_store, spills_to_disk_under_both_budgets_and_removes_its_files) {
  constexpr std::size_t device_budget = 160 << 10, host_budget = 192 << 10;
  tiers t(device_budget, host_budget);
  temp_dir dir("ember-store");
  std::map<std::string, table> refs;
  {
    partition_store store(options_for(t, dir.path()));
    std::int64_t total = 0;
    for (int i = 0; total < 4 * static_cast<std::int64_t>(device_budget + host_budget); ++i) {
      std::string key = "d" + std::to_string(i);
      auto ref = mixed(1500 + 100 * (i % 4), 300 + i);
      const auto bytes = bytes_of(ref.view());
      ASSERT_TRUE(store.make_room(memory_tier::device, static_cast<std::size_t>(bytes))) << key;
      put_copy(store, t, key, ref, i % 3 == 2 ? memory_tier::host : memory_tier::device);
      refs.emplace(key, std::move(ref));
      total += bytes;
    }
    auto stats = store.stats();
    EXPECT_GT(stats.spilled_to_host_bytes, 0);
    EXPECT_GT(stats.spilled_to_disk_bytes, 0);
    EXPECT_GT(stats.disk.partitions, 0u);
    EXPECT_LE(t.device.peak(), device_budget);
    EXPECT_LE(t.host.peak(), host_budget);
    expect_consistent(store);

    // One spill file per partition on disk, as big as the store says.
    std::int64_t file_bytes = 0;
    std::size_t on_disk = 0;
    for (const auto& p : store.partitions()) {
      EXPECT_EQ(p.rows, refs.at(p.key).num_rows())
          << p.key << " in the " << to_string(p.tier) << " tier";
      if (p.tier != memory_tier::disk) continue;
      ++on_disk;
      file_bytes += p.file_bytes;
    }
    EXPECT_EQ(files_in(dir.path()).size(), on_disk);
    EXPECT_EQ(bytes_in(dir.path()), file_bytes);
    EXPECT_EQ(stats.disk.used, static_cast<std::size_t>(file_bytes));

    // Erasing a partition on disk removes its file.
    std::string erased;
    for (const auto& p : store.partitions())
      if (p.tier == memory_tier::disk) erased = p.key;
    ASSERT_FALSE(erased.empty());
    auto files_before = files_in(dir.path()).size();
    EXPECT_TRUE(store.erase(erased));
    refs.erase(erased);
    EXPECT_EQ(files_in(dir.path()).size(), files_before - 1);

    // Everything comes back equal to its reference, in random order, into either tier.
    std::vector<std::string> keys;
    for (const auto& [k, r] : refs) keys.push_back(k);
    std::shuffle(keys.begin(), keys.end(), std::mt19937_64(7));
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto want = i % 2 == 0 ? memory_tier::device : memory_tier::host;
      auto h = store.acquire(keys[i], want);
      ASSERT_TRUE(h) << keys[i];
      EXPECT_LE(static_cast<int>(h->tier()), static_cast<int>(want)) << keys[i];
      EXPECT_NE(h->tier(), memory_tier::disk);
      EXPECT_TRUE(same_rows(refs.at(keys[i]).view(), h->rows())) << keys[i];
    }
    stats = store.stats();
    EXPECT_GT(stats.unspilled_from_disk_bytes, 0);
    EXPECT_EQ(stats.corrupt_spills, 0);
    EXPECT_LE(t.device.peak(), device_budget);
    EXPECT_LE(t.host.peak(), host_budget);
    expect_consistent(store);
    // Some partitions are on disk again after all that coming and going.
    EXPECT_GT(store.spill_all(memory_tier::host), 0);
    EXPECT_FALSE(files_in(dir.path()).empty());
  }
  // The destructor removes the spill files (the folder was ours, so it stays).
  EXPECT_TRUE(fs::exists(dir.path()));
  EXPECT_TRUE(files_in(dir.path()).empty());
  EXPECT_EQ(t.device.used(), 0u);
  EXPECT_EQ(t.host.used(), 0u);
}

TEST(partition_store, private_spill_dir_is_removed_by_the_destructor) {
  tiers t(unlimited, unlimited);
  fs::path spill_dir;
  auto ref = mixed(500, 9);
  {
    auto o = options_for(t, {});
    partition_store store(o);
    spill_dir = store.spill_dir();
    ASSERT_FALSE(spill_dir.empty());
    EXPECT_TRUE(fs::is_directory(spill_dir)) << spill_dir;
    put_copy(store, t, "x", ref);
    EXPECT_GT(store.spill_all(memory_tier::device), 0);
    EXPECT_GT(store.spill_all(memory_tier::host), 0);
    EXPECT_EQ(tier_of(store, "x"), memory_tier::disk);
    EXPECT_EQ(files_in(spill_dir).size(), 1u);
    expect_same(ref.view(), store.acquire("x", memory_tier::host)->rows());
    EXPECT_GT(store.spill_all(memory_tier::host), 0);
  }
  EXPECT_FALSE(fs::exists(spill_dir)) << spill_dir;
}

// ---- damaged spill files ---------------------------------------------------------------------

// Puts `ref` under `key` in the host tier and spills it to disk; returns its (only new) file.
fs::path spill_to_disk(partition_store& store, tiers& t, const std::string& key, const table& ref) {
  auto before = files_in(store.spill_dir());
  put_copy(store, t, key, ref, memory_tier::host);
  EXPECT_GT(store.spill_all(memory_tier::host), 0);
  EXPECT_EQ(tier_of(store, key), memory_tier::disk);
  auto after = files_in(store.spill_dir());
  std::vector<fs::path> added;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                      std::back_inserter(added));
  EXPECT_EQ(added.size(), 1u);
  return added.empty() ? fs::path{} : added.front();
}

TEST(partition_store, flipped_byte_in_a_spill_file_is_reported_and_the_partition_dropped) {
  tiers t(unlimited, unlimited);
  temp_dir dir("ember-store");
  partition_store store(options_for(t, dir.path()));
  auto bad_ref = mixed(4000, 11);
  auto good_ref = mixed(4000, 12);
  auto bad_file = spill_to_disk(store, t, "job7/bad", bad_ref);
  auto good_file = spill_to_disk(store, t, "job7/good", good_ref);
  ASSERT_FALSE(bad_file.empty());
  {
    std::fstream f(bad_file, std::ios::in | std::ios::out | std::ios::binary);
    auto middle = static_cast<std::streamoff>(fs::file_size(bad_file) / 2);
    f.seekg(middle);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(middle);
    f.write(&c, 1);
  }
  auto what = expect_rejected([&] { (void)store.acquire("job7/bad", memory_tier::host); },
                              {"job7/bad", bad_file.string(), "checksum"});
  std::cout << "  message: " << what << "\n";
  EXPECT_FALSE(store.contains("job7/bad"));
  EXPECT_FALSE(store.find("job7/bad").has_value());
  EXPECT_FALSE(store.acquire("job7/bad").has_value());
  auto stats = store.stats();
  EXPECT_EQ(stats.corrupt_spills, 1);
  EXPECT_EQ(stats.disk.partitions, 1u);
  EXPECT_FALSE(fs::exists(bad_file)) << "the dropped partition's file stays behind";
  // The other partition is untouched.
  auto h = store.acquire("job7/good");
  ASSERT_TRUE(h);
  expect_same(good_ref.view(), h->rows());
  h.reset();
  expect_consistent(store);
}

TEST(partition_store, truncated_spill_file_is_reported_and_the_partition_dropped) {
  tiers t(unlimited, unlimited);
  temp_dir dir("ember-store");
  partition_store store(options_for(t, dir.path()));
  auto ref = mixed(4000, 13);
  auto file = spill_to_disk(store, t, "job8/cut", ref);
  ASSERT_FALSE(file.empty());
  fs::resize_file(file, fs::file_size(file) / 2);
  auto what = expect_rejected([&] { (void)store.acquire("job8/cut"); },
                              {"job8/cut", file.string(), "truncated"});
  std::cout << "  message: " << what << "\n";
  EXPECT_FALSE(store.contains("job8/cut"));
  EXPECT_EQ(store.stats().corrupt_spills, 1);
  EXPECT_EQ(store.stats().disk.partitions, 0u);
  EXPECT_TRUE(files_in(dir.path()).empty());
  EXPECT_EQ(t.device.used(), 0u);
  EXPECT_EQ(t.host.used(), 0u);
}

TEST(partition_store, missing_spill_file_is_reported_naming_the_key_and_never_returned) {
  tiers t(unlimited, unlimited);
  temp_dir dir("ember-store");
  partition_store store(options_for(t, dir.path()));
  auto file = spill_to_disk(store, t, "job9/gone", mixed(1000, 14));
  ASSERT_FALSE(file.empty());
  fs::remove(file);
  try {
    (void)store.acquire("job9/gone", memory_tier::host);
    ADD_FAILURE() << "acquire() of a partition whose spill file is gone did not throw";
  } catch (const error& e) {
    std::string what = e.what();
    std::cout << "  message: " << what << "\n";
    EXPECT_NE(what.find("job9/gone"), std::string::npos) << what;
    EXPECT_NE(what.find(file.string()), std::string::npos) << what;
  }
  EXPECT_FALSE(store.contains("job9/gone")) << "the partition's rows are lost: it stays listed";
}

TEST(partition_store, disk_limit_stops_spilling_to_disk) {
  tiers t(unlimited, unlimited);
  temp_dir dir("ember-store");
  auto o = options_for(t, dir.path());
  o.disk_limit = 1000;
  partition_store store(o);
  auto ref = mixed(1000, 15);
  put_copy(store, t, "big", ref, memory_tier::host);
  EXPECT_EQ(store.spill_all(memory_tier::host), 0);
  EXPECT_EQ(tier_of(store, "big"), memory_tier::host);
  EXPECT_TRUE(files_in(dir.path()).empty());
  auto stats = store.stats();
  EXPECT_EQ(stats.disk.limit, 1000u);
  EXPECT_EQ(stats.disk.used, 0u);
  EXPECT_EQ(stats.spills, 0);
  expect_same(ref.view(), store.acquire("big", memory_tier::host)->rows());
  // Tiers other than device and host cannot be asked for.
  EXPECT_THROW((void)store.acquire("big", memory_tier::disk), invalid_input);
  EXPECT_THROW((void)store.make_room(memory_tier::disk, 1), invalid_input);
}

// ---- pins ------------------------------------------------------------------------------------

TEST(partition_store, pinned_partitions_are_never_spilled) {
  constexpr std::size_t budget = 256 << 10;
  tiers t(budget, unlimited);
  temp_dir dir("ember-store");
  partition_store store(options_for(t, dir.path()));
  auto a = mixed(2000, 21), b = mixed(2000, 22), c = mixed(2000, 23);
  put_copy(store, t, "a", a);
  put_copy(store, t, "b", b);
  auto ha = store.acquire("a");
  auto hb = store.acquire("b");
  ASSERT_TRUE(ha && hb);
  EXPECT_EQ(store.find("a")->pins, 1);
  // Only pinned data occupies the tier: no room can be made.
  EXPECT_FALSE(store.make_room(memory_tier::device, budget));
  EXPECT_EQ(store.spill_all(memory_tier::device), 0);
  EXPECT_EQ(tier_of(store, "a"), memory_tier::device);
  EXPECT_EQ(tier_of(store, "b"), memory_tier::device);
  EXPECT_EQ(store.stats().spills, 0);

  // Unpinned, a goes (b is still pinned and stays).
  ha.reset();
  EXPECT_EQ(store.find("a")->pins, 0);
  EXPECT_TRUE(store.make_room(memory_tier::device, budget - t.device.used() + 1));
  EXPECT_EQ(tier_of(store, "a"), memory_tier::host);
  EXPECT_EQ(tier_of(store, "b"), memory_tier::device);
  expect_same(b.view(), hb->rows());
  hb.reset();
  EXPECT_TRUE(store.make_room(memory_tier::device, budget));
  EXPECT_EQ(tier_of(store, "b"), memory_tier::host);
  EXPECT_EQ(t.device.used(), 0u);

  // A handle keeps its rows readable after the key is erased, and its owner beyond that.
  put_copy(store, t, "c", c);
  auto hc = store.acquire("c");
  ASSERT_TRUE(hc);
  EXPECT_TRUE(store.erase("c"));
  EXPECT_FALSE(store.contains("c"));
  EXPECT_FALSE(store.acquire("c").has_value());
  put_copy(store, t, "c", a);  // the key is free again
  expect_same(c.view(), hc->rows());
  auto owner = hc->owner();
  auto rows = hc->rows();
  hc.reset();
  expect_same(c.view(), rows);
  EXPECT_TRUE(store.erase("c"));
  EXPECT_GT(t.device.used(), 0u);
  owner.reset();
  EXPECT_EQ(t.device.used(), 0u);
  EXPECT_TRUE(store.erase("a"));
  EXPECT_TRUE(store.erase("b"));
  EXPECT_EQ(t.host.used(), 0u);
}

// ---- the reclaimer ---------------------------------------------------------------------------

TEST(partition_store, allocations_of_a_tier_spill_unpinned_partitions_to_fit) {
  constexpr std::size_t budget = 256 << 10;
  tiers t(budget, unlimited);
  temp_dir dir("ember-store");
  std::optional<partition_store> store(std::in_place, options_for(t, dir.path()));
  std::vector<table> refs;
  for (int i = 0; i < 4; ++i) {
    refs.push_back(mixed(1500, 31 + i));
    put_copy(*store, t, "r" + std::to_string(i), refs.back());
  }
  ASSERT_GT(t.device.used(), budget / 2);
  const std::size_t scratch = budget - t.device.used() + budget / 4;
  {
    // An operator's scratch: more than is free, less than the budget.
    buffer b(scratch, t.device);
    EXPECT_GE(t.device.reclaimed_allocations(), 1u);
    EXPECT_LE(t.device.peak(), budget);
    EXPECT_EQ(tier_of(*store, "r0"), memory_tier::host) << "r0 is the least recently used";
    EXPECT_GT(store->stats().spilled_to_host_bytes, 0);
  }
  // With every partition pinned, the allocation cannot fit.
  std::vector<pinned_partition> pins;
  for (int i = 0; i < 4; ++i) {
    auto h = store->acquire("r" + std::to_string(i));
    ASSERT_TRUE(h);
    EXPECT_EQ(h->tier(), memory_tier::device);
    pins.push_back(std::move(*h));
  }
  EXPECT_THROW(buffer(scratch, t.device), out_of_memory);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(tier_of(*store, "r" + std::to_string(i)), memory_tier::device);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(same_rows(refs[i].view(), pins[i].rows()));
  pins.clear();
  {
    buffer b(scratch, t.device);  // unpinned again: room is made
  }
  // The store stops reclaiming when it goes.
  store.reset();
  EXPECT_EQ(t.device.used(), 0u);
  auto reclaimed = t.device.reclaimed_allocations();
  EXPECT_THROW(buffer(budget + 1, t.device), out_of_memory);
  EXPECT_EQ(t.device.reclaimed_allocations(), reclaimed);
}

// ---- residency changes -----------------------------------------------------------------------

std::map<std::string, partition_info> changed_by_key(const residency_changes& c) {
  std::map<std::string, partition_info> out;
  for (const auto& p : c.changed) EXPECT_TRUE(out.emplace(p.key, p).second) << "twice: " << p.key;
  return out;
}

TEST(partition_store, prefetch_brings_a_partition_up_without_pinning_or_counting_a_lookup) {
  tiers t(unlimited, unlimited);
  temp_dir dir("ember-store");
  partition_store store(options_for(t, dir.path()));
  put_copy(store, t, "p", mixed(200, 7));
  ASSERT_GT(store.spill_all(memory_tier::device), 0);
  ASSERT_GT(store.spill_all(memory_tier::host), 0);
  ASSERT_EQ(store.find("p")->tier, memory_tier::disk);
  auto bytes = store.prefetch("p", memory_tier::device);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_EQ(*bytes, store.find("p")->bytes);
  EXPECT_EQ(store.find("p")->tier, memory_tier::device);
  EXPECT_EQ(store.find("p")->pins, 0);
  EXPECT_FALSE(store.prefetch("unknown").has_value());
  auto st = store.stats();
  EXPECT_EQ(st.hits, 0);
  EXPECT_EQ(st.misses, 0);
  EXPECT_EQ(st.unspills, 1);
  // The acquire that follows counts once, as a hit in the tier asked for.
  auto p = store.acquire("p", memory_tier::device);
  ASSERT_TRUE(p.has_value());
  st = store.stats();
  EXPECT_EQ(st.hits, 1);
  EXPECT_EQ(st.tier_hits, 1);
  // Still spillable: nothing pinned it but the handle.
  p.reset();
  EXPECT_GT(store.spill_all(memory_tier::device), 0);
}

TEST(partition_store, take_changes_reports_each_change_once) {
  tiers t(unlimited, unlimited);
  temp_dir dir("ember-store");
  partition_store store(options_for(t, dir.path()));
  EXPECT_TRUE(store.take_changes().changed.empty());
  put_copy(store, t, "a", mixed(100, 41));
  put_copy(store, t, "b", mixed(100, 42));
  auto c = store.take_changes();
  auto by_key = changed_by_key(c);
  ASSERT_EQ(by_key.size(), 2u);
  EXPECT_EQ(by_key.at("a").tier, memory_tier::device);
  EXPECT_EQ(by_key.at("b").tier, memory_tier::device);
  EXPECT_EQ(by_key.at("b").rows, 100);
  EXPECT_TRUE(c.removed.empty());
  c = store.take_changes();
  EXPECT_TRUE(c.changed.empty());
  EXPECT_TRUE(c.removed.empty());

  // Moves.
  EXPECT_GT(store.spill_all(memory_tier::device), 0);
  by_key = changed_by_key(store.take_changes());
  ASSERT_EQ(by_key.size(), 2u);
  EXPECT_EQ(by_key.at("a").tier, memory_tier::host);
  EXPECT_EQ(by_key.at("b").tier, memory_tier::host);
  EXPECT_GT(store.spill_all(memory_tier::host), 0);
  by_key = changed_by_key(store.take_changes());
  ASSERT_EQ(by_key.size(), 2u);
  EXPECT_EQ(by_key.at("a").tier, memory_tier::disk);
  EXPECT_GT(by_key.at("a").file_bytes, 0);
  EXPECT_TRUE(store.take_changes().changed.empty());

  // acquire moves a up and pins it: reported once, as it is now.
  {
    auto h = store.acquire("a");
    ASSERT_TRUE(h);
  }
  c = store.take_changes();
  by_key = changed_by_key(c);
  ASSERT_EQ(by_key.size(), 1u);
  EXPECT_EQ(by_key.at("a").tier, memory_tier::device);
  EXPECT_EQ(by_key.at("a").pins, 0);
  EXPECT_TRUE(c.removed.empty());

  // Removals.
  EXPECT_TRUE(store.erase("b"));
  put_copy(store, t, "c", mixed(10, 43));
  EXPECT_TRUE(store.erase("c"));
  c = store.take_changes();
  EXPECT_EQ(std::count(c.removed.begin(), c.removed.end(), "b"), 1);
  EXPECT_LE(std::count(c.removed.begin(), c.removed.end(), "c"), 1);
  for (const auto& p : c.changed) EXPECT_NE(p.key, "b");
  for (const auto& p : c.changed) EXPECT_NE(p.key, "c") << "c is gone";
  c = store.take_changes();
  EXPECT_TRUE(c.changed.empty());
  EXPECT_TRUE(c.removed.empty());
}

// ---- threads ---------------------------------------------------------------------------------

TEST(partition_store, threads_putting_acquiring_and_erasing_keep_budgets_and_contents) {
  constexpr std::size_t device_budget = 96 << 10, host_budget = 128 << 10;
  constexpr int threads = 4, keys_per_thread = 16, ops_per_thread = 2000;
  tiers t(device_budget, host_budget);
  temp_dir dir("ember-store");
  partition_store store(options_for(t, dir.path()));

  std::vector<std::vector<table>> refs(threads);
  for (int th = 0; th < threads; ++th)
    for (int k = 0; k < keys_per_thread; ++k)
      refs[th].push_back(mixed(100 + (th * 37 + k * 53) % 250, 1000 + th * 100 + k));
  auto key_of = [](int th, int k) {
    std::string key = "t";  // appended, not "t" + ...: GCC 12 warns falsely (-Wrestrict) on that
    key += std::to_string(th);
    key += '/';
    key += std::to_string(k);
    return key;
  };

  std::mutex failures_mutex;  // guards failures
  std::vector<std::string> failures;
  std::atomic<int> out_of_memory_count{0};
  std::vector<std::vector<bool>> present(threads, std::vector<bool>(keys_per_thread, false));
  auto fail = [&](const std::string& what) {
    std::lock_guard lock(failures_mutex);
    if (failures.size() < 20) failures.push_back(what);
  };
  auto worker = [&](int th) {
    std::mt19937_64 rng(th + 1);
    auto& mine = present[th];
    for (int op = 0; op < ops_per_thread; ++op) {
      int k = static_cast<int>(rng() % keys_per_thread);
      auto key = key_of(th, k);
      auto roll = rng() % 10;
      try {
        if (roll < 4 && !mine[k]) {
          auto tier = rng() % 3 == 0 ? memory_tier::host : memory_tier::device;
          put_copy(store, t, key, refs[th][k], tier);
          mine[k] = true;
        } else if (roll < 8) {
          auto want = rng() % 2 == 0 ? memory_tier::device : memory_tier::host;
          auto h = store.acquire(key, want);
          if (h.has_value() != mine[k]) {
            fail(key + ": acquire found " + (h ? "it" : "nothing") + " at op " +
                 std::to_string(op));
          } else if (h) {
            if (static_cast<int>(h->tier()) > static_cast<int>(want))
              fail(key + ": acquired in tier " + std::string(to_string(h->tier())));
            if (!same_rows(refs[th][k].view(), h->rows())) fail(key + ": rows differ");
          }
        } else {
          bool erased = store.erase(key);
          if (erased != mine[k]) fail(key + ": erase returned " + (erased ? "true" : "false"));
          mine[k] = false;
        }
      } catch (const out_of_memory& e) {
        if (out_of_memory_count++ == 0) fail(key + ": " + e.what());
      } catch (const std::exception& e) {
        fail(key + ": " + e.what());
      }
    }
  };
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int th = 0; th < threads; ++th) pool.emplace_back(worker, th);
  for (auto& th : pool) th.join();
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "  " << threads * ops_per_thread << " operations in " << seconds << " s\n";

  for (const auto& f : failures) ADD_FAILURE() << f;
  EXPECT_EQ(out_of_memory_count.load(), 0);
  auto stats = store.stats();
  EXPECT_GT(stats.spilled_to_host_bytes, 0);
  EXPECT_GT(stats.spilled_to_disk_bytes, 0);
  EXPECT_EQ(stats.corrupt_spills, 0);
  EXPECT_LE(t.device.peak(), device_budget);
  EXPECT_LE(t.host.peak(), host_budget);
  expect_consistent(store);

  std::size_t remaining = 0;
  for (int th = 0; th < threads; ++th) {
    for (int k = 0; k < keys_per_thread; ++k) {
      auto key = key_of(th, k);
      EXPECT_EQ(store.contains(key), present[th][k]) << key;
      if (!present[th][k]) continue;
      ++remaining;
      auto h = store.acquire(key, memory_tier::host);
      ASSERT_TRUE(h) << key;
      EXPECT_TRUE(same_rows(refs[th][k].view(), h->rows())) << key;
    }
  }
  EXPECT_EQ(store.partitions().size(), remaining);
  EXPECT_LE(t.device.peak(), device_budget);
  EXPECT_LE(t.host.peak(), host_budget);
  for (int th = 0; th < threads; ++th) store.erase_prefix("t" + std::to_string(th) + "/");
  EXPECT_TRUE(store.partitions().empty());
  EXPECT_TRUE(files_in(dir.path()).empty());
  EXPECT_EQ(t.device.used(), 0u);
  EXPECT_EQ(t.host.used(), 0u);
}

}  // namespace
}  // namespace ember::test
