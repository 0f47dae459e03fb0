// Building blocks for self-contained HTML reports: escaping, a page shell with inline CSS, and
// inline SVG charts (horizontal bars, histograms). No scripts, fonts or network resources, so a
// report opens anywhere, including as a CI artifact. Not for: reading result files.
//
// Example:
//   std::string body = hrm::reports::h2("Invalid answers") +
//                      hrm::reports::bar_chart({{"gsm8k", 0.02}, {"math", 0.10}}, {.max = 1, .percent = true});
//   std::string page = hrm::reports::page("Run report", body);
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hrm::reports {

std::string escape(std::string_view text);  // &, <, >, ", '
std::string page(std::string_view title, std::string_view body);
std::string h2(std::string_view text);

struct BarOptions {
  double max = 0;         // 0: the largest value
  bool percent = false;   // label values as percentages of 1
  int width = 640;        // px of the drawing
  std::string color = "#3b6ea8";
  // Optional reference value per bar drawn as a tick (e.g. the published score); < 0: none.
  std::vector<double> reference;
};
// One horizontal bar per (label, value).
std::string bar_chart(const std::vector<std::pair<std::string, double>>& bars, const BarOptions& o);

// Histogram of `values` in `bins` equal bins over [lo, hi]; values outside are clamped into the
// edge bins.
std::string histogram(const std::vector<double>& values, double lo, double hi, int bins, std::string_view x_label);

// A plain table; cells are escaped unless `raw_html` is set.
std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                  bool raw_html = false);

}  // namespace hrm::reports
