#pragma once
// ember::dataset_store: named, versioned, partitioned tables under a storage root (a local folder,
// or a shared filesystem whose rename is atomic and whose flock works). A dataset's versions are
// immutable; readers see one committed version at a time; a job's output becomes a new version
// by an atomic commit that a crash at any point leaves either fully done or not done at all.
//
// Layout, per dataset ROOT/NAME/ (versions are numbered from 1; <v> is 20 decimal digits):
//
//   CURRENT                        the current version: its 20 digits and a newline
//   manifest-<v>.json              version v's manifest (below)
//   v<v>/part-<n>.emb              version v's partitions: ember partition files
//   .lock                          flock'ed while a writer begins or commits, and by clean_up
//                                  and remove
//   _staging/<writer id>/          the partitions of a write in progress
//   _staging/<writer id>.lock      flock'ed by that writer for as long as it lives
//   _staging/<writer id>.aborted/  an abandoned write's partitions while they are removed
//   .CURRENT.tmp, .manifest-<v>.json.tmp   files of a commit in progress
// and ROOT/.trash/ holds removed datasets while they are deleted.
//
// A manifest is JSON (so `ember data show` and people can read it): the dataset's name, the
// version, its parent (the version current when it was committed; 0 for none), when and by whom
// (the writer id) it was written, the writer's fencing token (if it gave one), the schema (name,
// type, nullable), every partition (file name, rows, bytes, the partition file's footer
// checksum, and per column the null and NaN counts and min/max of the file's statistics), the
// total rows and bytes, and "checksum": XXH3-64 over the canonical text of everything else (the
// manifest as this code writes it, without that field). Readers check everything: the format
// and its version, every field and its type (no field missing, unknown or repeated), the name
// and version against the file's, the totals, the checksum; and a partition file's size, footer
// checksum, rows and schema against its manifest entry before they read it. Damage is reported
// as ember::invalid_input naming the file.
//
// The committed versions are CURRENT and its ancestors by `parent_version` whose manifests are
// still there (clean_up expires old ones). A manifest or version folder that is not on that chain
// is the leftover of a commit that did not finish: it was never visible, and clean_up removes it.
//
// Commit protocol (dataset_writer::commit). The commit point is step 7's rename of CURRENT.
//   1. fsync the staged partition files (those written without sync) and the staging folder.
//   2. flock ROOT/NAME/.lock (held until the end: commits to one dataset are serial; the lock
//      file is checked to still be the one at its path, so a dataset removed meanwhile is seen).
//   3. Checks, before anything changes: CURRENT still is the expected parent version (when the
//      caller gives one), and the writer's fencing token is not older than the one that
//      committed the current version under the same lock name.
//   4. The new version is 1 + the highest version that CURRENT, a manifest or a version folder
//      names (so a crashed commit's leftovers are never reused while they exist).
//   5. Rename _staging/<id>/ to v<new>/; fsync the dataset folder and _staging/.
//   6. Write the manifest to .manifest-<new>.json.tmp, fsync it, rename it to
//      manifest-<new>.json, fsync the folder. Then call commit_options::before_publish(new): the
//      caller's last check (a fencing token against the lock service); if it throws, steps 5
//      and 6 are undone and the exception propagates.
//   7. Write the version to .CURRENT.tmp, fsync it, rename it over CURRENT, fsync the folder.
// A crash before step 7's rename leaves CURRENT (and so every reader) on the previous version,
// whose files the commit never touches; what the commit had made is a leftover for clean_up.
// A crash after it leaves the new version complete: everything it names was synced before.
// Readers take no lock: they read CURRENT once (a rename replaces it whole) and then only that
// version's immutable files.
//
// Concurrency: a dataset_store holds only its root, so any number of them, in any threads and
// processes, may use one root at once. Writers of one dataset stage in parallel and commit one
// at a time; by default the last to commit wins (each commit makes a new version), and with
// commit_options::expected_parent the others fail (optimistic concurrency). clean_up only
// removes the staging folder of a writer that is gone (its flock is free), and versions older
// than the `keep_versions` newest committed ones: a reader still reading such a version then
// fails with a clear error (the scheduler's catalog is what keeps versions alive while in use).
// remove() renames the dataset folder into ROOT/.trash/ (atomic: readers see all of it or none)
// and then deletes it.
//
// Test hook: when the environment variable EMBER_DATASET_CRASH_AT names a step of the commit,
// the process calls _exit(42) right after it: after_stage (1), after_version_dir (5),
// after_manifest_tmp (the temporary manifest synced), after_manifest (6, renamed),
// after_current_tmp (the temporary CURRENT synced), after_current (7, renamed and synced).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ember/host/memory_resource.hpp>
#include <ember/host/partition_file.hpp>
#include <ember/host/table.hpp>

namespace ember {

/// The version of the manifest format that this build writes and reads.
inline constexpr int dataset_manifest_version = 1;

/// A fencing token handed out by a lock service with the lock's name: tokens of one lock only
/// grow, so storage can refuse a write from a holder whose lock has since passed to another.
struct fence_token {
  std::string lock;
  std::uint64_t token = 0;

  friend bool operator==(const fence_token&, const fence_token&) = default;
};

/// One partition of a dataset version, as its manifest records it.
struct dataset_partition {
  /// The file's name in the version's folder: "part-<digits>.emb".
  std::string file;
  size_type rows = 0;
  /// The file's size.
  size_type bytes = 0;
  /// The partition file's footer checksum (XXH3-64 of its footer, which holds every chunk's
  /// checksum): it identifies the file's contents.
  std::uint64_t footer_checksum = 0;
  /// Per column, in schema order: the file's statistics (what a scan checks to skip it).
  std::vector<column_stats> stats;

  friend bool operator==(const dataset_partition&, const dataset_partition&) = default;
};

/// What a manifest says about one version of a dataset.
struct dataset_manifest {
  std::string dataset;
  std::uint64_t version = 0;
  /// The version that was current when this one was committed; 0 for the first.
  std::uint64_t parent_version = 0;
  /// When it was committed (millisecond precision).
  std::chrono::system_clock::time_point created;
  /// The id of the writer that made it.
  std::string writer;
  /// The fencing token the writer gave, if any.
  std::optional<fence_token> fence;
  /// The columns: names and types as in every partition; nullable when any partition's is.
  /// Empty for a version with no partitions.
  std::vector<partition_column> schema;
  std::vector<dataset_partition> partitions;
  size_type rows = 0;   ///< sum of the partitions' rows
  size_type bytes = 0;  ///< sum of the partitions' file sizes
  /// XXH3-64 of the canonical manifest without this field (set by to_json and by parsing).
  std::uint64_t checksum = 0;

  /// The column names, in schema order.
  [[nodiscard]] std::vector<std::string> names() const;

  friend bool operator==(const dataset_manifest&, const dataset_manifest&) = default;
};

/// The manifest as it is stored: canonical, indented JSON ending with its "checksum" field
/// (computed here: the `checksum` member is ignored).
[[nodiscard]] std::string to_json(const dataset_manifest& manifest);

/// Parses and validates a stored manifest (see the file comment); `where` names it in errors
/// (a path). Does not check the dataset name or version against anything outside the text.
/// Throws ember::invalid_input naming `where` and what is wrong.
[[nodiscard]] dataset_manifest parse_dataset_manifest(std::string_view json,
                                                      const std::string& where);

struct commit_options {
  /// When set, the commit fails unless the current version still is this one (0: the dataset
  /// has no committed version): a writer that read version N and writes N + 1 from it passes
  /// N (see dataset_writer::base_version) so that it never replaces a version it has not seen.
  std::optional<std::uint64_t> expected_parent;
  /// Called with the new version under the dataset's commit lock, once the version's files and
  /// manifest are in place and synced, right before CURRENT switches to it: the caller's last
  /// chance to refuse (a fencing token checked against the lock service). If it throws, the
  /// commit is undone and the exception propagates; the writer keeps its staged partitions.
  std::function<void(std::uint64_t new_version)> before_publish;
};

/// A write in progress: partitions staged under ROOT/NAME/_staging/<id>/, then committed as one
/// new version, or abandoned. Made by dataset_store::begin_write. Movable, not copyable.
class dataset_writer {
 public:
  dataset_writer(dataset_writer&&) noexcept;
  dataset_writer& operator=(dataset_writer&&) noexcept;
  dataset_writer(const dataset_writer&) = delete;
  dataset_writer& operator=(const dataset_writer&) = delete;
  /// Abandons the write unless it was committed (see abort). Never throws.
  ~dataset_writer();

  [[nodiscard]] const std::string& dataset() const noexcept;
  /// This writer's id: <host>-<pid>-<random>, unique, the name of its staging folder.
  [[nodiscard]] const std::string& id() const noexcept;
  /// The version that was current when the write began (0: none).
  [[nodiscard]] std::uint64_t base_version() const noexcept;
  /// The folder the partitions are staged in.
  [[nodiscard]] const std::filesystem::path& staging_dir() const noexcept;

  /// Writes `table` (host or pinned host memory) as the next partition into the staging folder
  /// and returns its manifest entry. With options.sync (the default) the file is synced now;
  /// otherwise commit syncs it. Every partition of a write must have the same column names and
  /// types, in the same order. Thread-safe (partitions are numbered in the order the calls
  /// begin); not concurrent with commit. Throws ember::invalid_input for a schema that differs
  /// from the write's other partitions (naming both) or what write_partition_file refuses,
  /// ember::error on I/O failure, ember::logic_error after commit or abort.
  dataset_partition write_partition(const table_view& table,
                                    const partition_write_options& options = {});

  /// Adopts a partition file that another process (a worker of a job) wrote into staging_dir()
  /// as the next partition of this write, and returns its manifest entry as the commit records
  /// it. `written.file` is the file's name in staging_dir() (one path component, not starting
  /// with '.', and not a name like part-00000.emb, which this writer gives its own partitions);
  /// its rows, bytes and footer_checksum are what the writing process reported, and its stats,
  /// when not empty, too. The file's footer is read and checked against all of them and its
  /// schema against the write's other partitions; then the file is renamed to the next
  /// part-<n>.emb (partitions are numbered in the order they are written or adopted), and commit
  /// syncs it like a partition written without sync. Thread-safe; not concurrent with commit.
  /// Throws ember::invalid_input, naming the file, for a bad or missing name, a damaged or
  /// truncated file, a file that differs from what was reported, or a schema that differs from
  /// the write's other partitions (naming both); ember::error on I/O failure; ember::logic_error
  /// after commit or abort. A refused file stays where it is (abort removes it with the staging
  /// folder).
  dataset_partition adopt_partition(const dataset_partition& written);

  /// Commits the staged partitions as a new version (the protocol in the file comment) and
  /// returns its number. A write with no partitions commits a version with no rows and no
  /// columns. Throws ember::invalid_input when the current version is not
  /// options.expected_parent ("dataset 'x': version 5 was committed since this write began at
  /// version 4"), when the writer's fencing token is stale, or when the dataset was removed
  /// meanwhile; what before_publish throws; ember::error on I/O failure (naming the path). After
  /// any of these, nothing of this write is visible and the writer may try again or abort;
  /// except for an error syncing the folder after CURRENT was renamed (the message says so), when
  /// the new version is visible but may not survive a crash. ember::logic_error when called
  /// twice, after abort, or while write_partition runs.
  std::uint64_t commit(const commit_options& options = {});

  /// Removes the staging folder: renamed first (so other processes still writing partition
  /// files for this write can create no more), then deleted; what cannot be deleted (a file
  /// another process is still writing) is left for clean_up. Does nothing after commit. Never
  /// throws.
  void abort() noexcept;

 private:
  friend class dataset_store;
  struct impl;
  explicit dataset_writer(std::unique_ptr<impl> state);
  std::unique_ptr<impl> _impl;
};

/// What clean_up removed.
struct dataset_cleanup_report {
  std::size_t staging = 0;      ///< staging folders of writers that are gone
  std::size_t uncommitted = 0;  ///< versions of commits that did not finish
  std::size_t expired = 0;      ///< committed versions beyond the ones kept
  std::size_t temporary = 0;    ///< temporary files of commits, and removed datasets in .trash

  [[nodiscard]] std::size_t total() const noexcept {
    return staging + uncommitted + expired + temporary;
  }
};

/// The datasets under one storage root. Holds nothing but the root: every call reads the files,
/// so any number of stores in any threads and processes may share a root (see the file comment).
class dataset_store {
 public:
  /// Opens the store at `root`, creating the folder when missing. Throws ember::error when it
  /// cannot be created.
  explicit dataset_store(std::filesystem::path root);

  [[nodiscard]] const std::filesystem::path& root() const noexcept { return _root; }

  /// Throws ember::invalid_input unless `name` is a valid dataset name: 1 to 200 characters of
  /// A-Z a-z 0-9 . _ - not starting with '.'.
  static void validate_name(std::string_view name);

  /// Begins a write of a new version of `name` (the dataset is created by its first commit).
  /// `fence`, when given, is recorded in the manifest and checked at commit (see the file
  /// comment). Throws ember::invalid_input for a bad name, ember::error on I/O failure.
  [[nodiscard]] dataset_writer begin_write(std::string_view name,
                                           std::optional<fence_token> fence = std::nullopt);

  /// The current version of `name`; std::nullopt when it has none (no such dataset, or no commit
  /// finished yet). Throws ember::invalid_input for a bad name or a damaged CURRENT file.
  [[nodiscard]] std::optional<std::uint64_t> current_version(std::string_view name) const;

  /// The committed versions of `name` still present, newest first (empty when none). Throws
  /// like read_manifest for a damaged manifest on the way.
  [[nodiscard]] std::vector<std::uint64_t> versions(std::string_view name) const;

  /// The validated manifest of version `version` of `name` (the current one by default). Throws
  /// ember::invalid_input for an unknown dataset ("no dataset 'x' (the store has: a, b)"), a
  /// version that is not committed or no longer kept (listing those there are), or a damaged or
  /// missing manifest (naming the file); ember::error on I/O failure.
  [[nodiscard]] dataset_manifest read_manifest(std::string_view name,
                                               std::optional<std::uint64_t> version = {}) const;

  /// Reads the columns named in `columns` (all of them when empty), in that order, of every
  /// partition of a version of `name` (the current one by default) into one host table from
  /// `mr`, partition after partition. Each partition file is checked against the manifest and
  /// every chunk against its checksum. Throws like read_manifest, and ember::invalid_input for
  /// an unknown column (listing the dataset's) or a missing, truncated or damaged partition file
  /// (naming it); ember::out_of_memory when `mr` refuses.
  [[nodiscard]] table read(std::string_view name, std::optional<std::uint64_t> version = {},
                           const std::vector<std::string>& columns = {},
                           memory_resource& mr = default_host_resource()) const;

  /// Reads partition `index` of the version `manifest` describes (checked like read).
  [[nodiscard]] table read_partition(const dataset_manifest& manifest, std::size_t index,
                                     const std::vector<std::string>& columns = {},
                                     memory_resource& mr = default_host_resource()) const;

  /// Where partition `index` of the version `manifest` describes lies.
  [[nodiscard]] std::filesystem::path partition_path(const dataset_manifest& manifest,
                                                     std::size_t index) const;

  /// The datasets with a committed version, sorted by name.
  [[nodiscard]] std::vector<std::string> list() const;

  /// Removes dataset `name` with all its versions, atomically: it disappears at once (renamed
  /// into ROOT/.trash/, waiting for commits in progress), then its files are deleted. A write in
  /// progress fails at commit. Throws ember::invalid_input for an unknown dataset, ember::error
  /// on I/O failure.
  void remove(std::string_view name);

  /// Removes what crashed or abandoned writes left (staging folders of writers that are gone,
  /// versions that were never committed, temporary files, removed datasets in ROOT/.trash/) and
  /// committed versions older than the `keep_versions` newest ones (at least 1: the current
  /// version is never removed), in every dataset of the store. Versions below a damaged manifest
  /// are left alone. Safe while other processes read, write and commit. Throws
  /// ember::invalid_input when keep_versions is 0, ember::error on I/O failure.
  dataset_cleanup_report clean_up(std::size_t keep_versions = 2);
  /// The same for dataset `name` only (ROOT/.trash/ is left alone).
  dataset_cleanup_report clean_up(std::string_view name, std::size_t keep_versions = 2);

 private:
  std::filesystem::path _root;
};

}  // namespace ember
