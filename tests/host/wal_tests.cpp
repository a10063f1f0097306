// The write-ahead log: what is appended replays in order; a torn or corrupted tail replays to
// the last good record and the log goes on from there; snapshots replace what they cover and a
// damaged one falls back to the one before.
#include <gtest/gtest.h>

#include <ember/host/error.hpp>
#include <ember/host/wal.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "common/temp_dir.hpp"

namespace ember {
namespace {

namespace fs = std::filesystem;

std::vector<std::uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }
std::string text_of(std::span<const std::uint8_t> b) { return {b.begin(), b.end()}; }

// What a replay delivered.
struct replayed {
  std::uint64_t snapshot_seq = 0;
  std::string snapshot;
  std::vector<std::pair<std::uint64_t, std::string>> records;
  wal_replay_report report;
  std::unique_ptr<write_ahead_log> log;
};

replayed open_log(const fs::path& dir, std::size_t segment_bytes = std::size_t{64} << 20,
                  bool sync = true) {
  replayed r;
  wal_options o;
  o.dir = dir;
  o.segment_bytes = segment_bytes;
  o.sync = sync;
  r.log = write_ahead_log::open(
      o,
      [&](std::uint64_t seq, std::span<const std::uint8_t> s) {
        r.snapshot_seq = seq;
        r.snapshot = text_of(s);
      },
      [&](std::uint64_t seq, std::span<const std::uint8_t> p) {
        r.records.emplace_back(seq, text_of(p));
      },
      &r.report);
  return r;
}

std::string payload(std::uint64_t i) {
  return "record " + std::to_string(i) + std::string(static_cast<std::size_t>(i % 97), 'x');
}

std::vector<fs::path> files(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(wal, appended_records_replay_in_order_across_segments) {
  test::temp_dir dir("ember-wal");
  {
    auto r = open_log(dir.path(), 4096);
    EXPECT_EQ(r.log->last_seq(), 0u);
    for (std::uint64_t i = 1; i <= 500; ++i) EXPECT_EQ(r.log->append(bytes_of(payload(i))), i);
  }
  EXPECT_GT(files(dir.path(), "wal-").size(), 5u);  // small segments rotate
  auto r = open_log(dir.path(), 4096);
  ASSERT_EQ(r.records.size(), 500u);
  for (std::uint64_t i = 1; i <= 500; ++i) {
    EXPECT_EQ(r.records[i - 1].first, i);
    EXPECT_EQ(r.records[i - 1].second, payload(i));
  }
  EXPECT_EQ(r.report.dropped_bytes, 0u);
  EXPECT_EQ(r.log->append(bytes_of("next")), 501u);
}

// Group commit: appends without a sync each, then one sync() for the batch; segments that
// rotate meanwhile are synced before they close. Every record is there after a reopen.
TEST(wal, group_commit_appends_then_syncs_once) {
  test::temp_dir dir("ember-wal");
  {
    auto r = open_log(dir.path(), 4096, false);
    for (std::uint64_t i = 1; i <= 300; ++i) {
      r.log->append(bytes_of(payload(i)));
      if (i % 50 == 0) r.log->sync();
    }
    r.log->sync();
    r.log->sync();  // nothing pending: a no-op
  }
  auto r = open_log(dir.path(), 4096, false);
  ASSERT_EQ(r.records.size(), 300u);
  EXPECT_EQ(r.records.back().second, payload(300));
}

TEST(wal, a_torn_tail_replays_to_the_last_good_record_and_the_log_goes_on) {
  test::temp_dir dir("ember-wal");
  {
    auto r = open_log(dir.path());
    for (std::uint64_t i = 1; i <= 20; ++i) r.log->append(bytes_of(payload(i)));
  }
  auto segment = files(dir.path(), "wal-").back();
  // Cut into the last record: its header survives, half its payload does not.
  fs::resize_file(segment, fs::file_size(segment) - payload(20).size() / 2);
  {
    auto r = open_log(dir.path());
    ASSERT_EQ(r.records.size(), 19u);
    EXPECT_EQ(r.report.last_seq, 19u);
    EXPECT_GT(r.report.dropped_bytes, 0u);
    EXPECT_NE(r.report.dropped_reason.find("torn"), std::string::npos) << r.report.dropped_reason;
    EXPECT_EQ(r.log->append(bytes_of("after the tear")), 20u);
  }
  auto r = open_log(dir.path());
  ASSERT_EQ(r.records.size(), 20u);
  EXPECT_EQ(r.records.back().second, "after the tear");
  EXPECT_EQ(r.report.dropped_bytes, 0u);
}

TEST(wal, a_corrupted_record_ends_the_replay_there_and_later_segments_go) {
  test::temp_dir dir("ember-wal");
  {
    auto r = open_log(dir.path(), 4096);
    for (std::uint64_t i = 1; i <= 300; ++i) r.log->append(bytes_of(payload(i)));
  }
  auto segments = files(dir.path(), "wal-");
  ASSERT_GE(segments.size(), 3u);
  // Flip one payload byte in the middle of the second segment.
  auto victim = segments[1];
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(victim) / 2));
    char c;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(fs::file_size(victim) / 2));
    c = static_cast<char>(c ^ 0x5a);
    f.write(&c, 1);
  }
  auto r = open_log(dir.path(), 4096);
  EXPECT_GT(r.records.size(), 0u);
  EXPECT_LT(r.records.size(), 300u);
  for (std::size_t i = 0; i < r.records.size(); ++i) EXPECT_EQ(r.records[i].second, payload(i + 1));
  EXPECT_EQ(files(dir.path(), "wal-").size(), 2u);  // the later ones are gone
  EXPECT_FALSE(r.report.dropped_reason.empty());
  auto seq = r.log->append(bytes_of("continues"));
  EXPECT_EQ(seq, r.records.size() + 1);
}

TEST(wal, garbage_and_a_bad_length_are_corruption_not_crashes) {
  test::temp_dir dir("ember-wal");
  {
    auto r = open_log(dir.path());
    for (std::uint64_t i = 1; i <= 5; ++i) r.log->append(bytes_of(payload(i)));
  }
  auto segment = files(dir.path(), "wal-").back();
  {
    std::ofstream f(segment, std::ios::app | std::ios::binary);
    // A header that claims 4 GiB - 1 bytes, then random bytes.
    std::vector<char> junk = {'E', 'M', 'B', 'L', '\xff', '\xff', '\xff', '\xff'};
    std::mt19937 gen(3);
    for (int i = 0; i < 100; ++i) junk.push_back(static_cast<char>(gen()));
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto r = open_log(dir.path());
  EXPECT_EQ(r.records.size(), 5u);
  EXPECT_EQ(r.report.dropped_bytes, 108u);
}

TEST(wal, snapshots_replace_what_they_cover) {
  test::temp_dir dir("ember-wal");
  {
    auto r = open_log(dir.path(), 4096);
    for (std::uint64_t i = 1; i <= 100; ++i) r.log->append(bytes_of(payload(i)));
    r.log->snapshot(bytes_of("state at 100"));
    for (std::uint64_t i = 101; i <= 150; ++i) r.log->append(bytes_of(payload(i)));
  }
  {
    auto r = open_log(dir.path(), 4096);
    EXPECT_EQ(r.snapshot_seq, 100u);
    EXPECT_EQ(r.snapshot, "state at 100");
    ASSERT_EQ(r.records.size(), 50u);
    EXPECT_EQ(r.records.front().first, 101u);
    EXPECT_EQ(r.records.back().second, payload(150));
    r.log->snapshot(bytes_of("state at 150"));
    r.log->append(bytes_of(payload(151)));
  }
  // The snapshot at 100 stays as the fallback; nothing older than it does.
  EXPECT_EQ(files(dir.path(), "snapshot-").size(), 2u);
  auto r = open_log(dir.path(), 4096);
  EXPECT_EQ(r.snapshot_seq, 150u);
  EXPECT_EQ(r.snapshot, "state at 150");
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].first, 151u);
}

TEST(wal, a_damaged_snapshot_falls_back_to_the_one_before) {
  test::temp_dir dir("ember-wal");
  {
    auto r = open_log(dir.path(), 4096);
    for (std::uint64_t i = 1; i <= 40; ++i) r.log->append(bytes_of(payload(i)));
    r.log->snapshot(bytes_of("state at 40"));
    for (std::uint64_t i = 41; i <= 80; ++i) r.log->append(bytes_of(payload(i)));
    r.log->snapshot(bytes_of("state at 80"));
    for (std::uint64_t i = 81; i <= 90; ++i) r.log->append(bytes_of(payload(i)));
  }
  auto newest = files(dir.path(), "snapshot-").back();
  fs::resize_file(newest, fs::file_size(newest) - 3);
  auto r = open_log(dir.path(), 4096);
  EXPECT_EQ(r.snapshot_seq, 40u);
  EXPECT_EQ(r.snapshot, "state at 40");
  ASSERT_EQ(r.records.size(), 50u);  // 41..90
  EXPECT_EQ(r.records.front().first, 41u);
  EXPECT_EQ(r.records.back().first, 90u);
}

TEST(wal, bad_options_and_oversized_records_are_refused) {
  test::temp_dir dir("ember-wal");
  wal_options o;
  auto nothing = [](std::uint64_t, std::span<const std::uint8_t>) {};
  EXPECT_THROW((void)write_ahead_log::open(o, nothing, nothing), invalid_input);
  o.dir = dir.path();
  o.segment_bytes = 100;
  EXPECT_THROW((void)write_ahead_log::open(o, nothing, nothing), invalid_input);
  auto r = open_log(dir.path());
  std::vector<std::uint8_t> huge(max_wal_record_bytes + 1);
  EXPECT_THROW(r.log->append(huge), invalid_input);
  EXPECT_EQ(r.log->last_seq(), 0u);
}

}  // namespace
}  // namespace ember
