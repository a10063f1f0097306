#pragma once
#include <string>
#include <string_view>
#include <vector>

#include <ember/host/column.hpp>

namespace ember {

/// A non-owning view of named columns of equal length.
class table_view {
 public:
  table_view() = default;
  /// Throws ember::invalid_input when the columns differ in length, the counts differ, or a
  /// name repeats.
  table_view(std::vector<column_view> columns, std::vector<std::string> names);

  [[nodiscard]] size_type num_rows() const noexcept {
    return _columns.empty() ? 0 : _columns.front().size();
  }
  [[nodiscard]] size_type num_columns() const noexcept {
    return static_cast<size_type>(_columns.size());
  }
  [[nodiscard]] const column_view& column(size_type i) const { return _columns.at(i); }
  /// The column called `name`; throws ember::invalid_input naming the column and listing the
  /// table's columns when there is none.
  [[nodiscard]] const column_view& column(std::string_view name) const {
    return _columns[index_of(name)];
  }
  [[nodiscard]] size_type index_of(std::string_view name) const;
  [[nodiscard]] bool has_column(std::string_view name) const noexcept;
  [[nodiscard]] const std::vector<std::string>& names() const noexcept { return _names; }
  [[nodiscard]] const std::vector<column_view>& columns() const noexcept { return _columns; }
  /// The named columns, in the order given (throws like column(name)).
  [[nodiscard]] table_view select(const std::vector<std::string>& names) const;
  /// Rows [begin, end) of every column.
  [[nodiscard]] table_view slice(size_type begin, size_type end) const;

 private:
  std::vector<column_view> _columns;
  std::vector<std::string> _names;
};

/// Owns named columns of equal length.
class table {
 public:
  table() = default;
  /// Throws ember::invalid_input like table_view's constructor.
  table(std::vector<ember::column> columns, std::vector<std::string> names);

  [[nodiscard]] size_type num_rows() const noexcept {
    return _columns.empty() ? 0 : _columns.front().size();
  }
  [[nodiscard]] size_type num_columns() const noexcept {
    return static_cast<size_type>(_columns.size());
  }
  [[nodiscard]] table_view view() const;
  [[nodiscard]] const std::vector<std::string>& names() const noexcept { return _names; }
  [[nodiscard]] ember::column& column(size_type i) { return _columns.at(i); }
  /// Gives up the columns (the table is empty afterwards).
  [[nodiscard]] std::vector<ember::column> release() noexcept;

 private:
  std::vector<ember::column> _columns;
  std::vector<std::string> _names;
};

}  // namespace ember
