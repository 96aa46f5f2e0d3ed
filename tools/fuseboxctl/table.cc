// tools/fuseboxctl/table.cc: see table.h.
#include "tools/fuseboxctl/table.h"

#include <algorithm>
#include <cassert>

namespace fusebox::fuseboxctl {

namespace {

// Code points, counted by the bytes that start one (any but 10xxxxxx).
size_t display_width(const std::string& s) {
  const auto starts_one = [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; };
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), starts_one));
}

}  // namespace

void Table::add_row(std::vector<std::string> cells) {
  assert(cells.size() == columns_.size());
  for (std::string& cell : cells)
    for (char& c : cell)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  rows_.push_back(std::move(cells));
}

std::string Table::render() const {
  std::vector<size_t> widths;
  for (const Column& column : columns_) widths.push_back(display_width(column.title));
  for (const auto& row : rows_)
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], display_width(row[i]));

  std::string out;
  const auto line = [&](auto&& cell_of) {
    std::string text;
    for (size_t i = 0; i < columns_.size(); ++i) {
      const std::string& cell = cell_of(i);
      const std::string pad(widths[i] - display_width(cell), ' ');
      if (i > 0) text += "  ";
      text += columns_[i].align == Align::Right ? pad + cell : cell + pad;
    }
    text.erase(text.find_last_not_of(' ') + 1);  // the last column's padding, or an empty cell's
    out += text + "\n";
  };
  line([&](size_t i) -> const std::string& { return columns_[i].title; });
  for (const auto& row : rows_) line([&](size_t i) -> const std::string& { return row[i]; });
  return out;
}

}  // namespace fusebox::fuseboxctl
