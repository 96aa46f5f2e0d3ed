// tools/fuseboxctl/table.h: a text table with a header row and aligned columns, two spaces apart,
// as kubectl and ps print them, so that people read it and awk '{print $1}' still works. Widths
// count UTF-8 code points ("≥" in a reason is one column); wide East Asian characters and
// combining marks are not handled: cluster names are ASCII.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace fusebox::fuseboxctl {

enum class Align { Left, Right };

struct Column {
  std::string title;
  Align align = Align::Left;
};

class Table {
 public:
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  // As many cells as columns. A control character in a cell (a newline in a reason) becomes a
  // space, so that one row stays one line.
  void add_row(std::vector<std::string> cells);

  // The header, then the rows, each line ending in "\n", none with trailing spaces.
  std::string render() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace fusebox::fuseboxctl
