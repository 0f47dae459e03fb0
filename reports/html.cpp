// HTML/SVG building blocks (see html.h).
#include "reports/html.h"

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstdio>

namespace hrm::reports {
namespace {

constexpr int kBarHeight = 16;
constexpr int kBarGap = 4;
constexpr int kLabelWidth = 230;
constexpr int kValueWidth = 70;

std::string num(double v, int decimals = 1) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string page(std::string_view title, std::string_view body) {
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + escape(title) +
      "</title>\n<style>\n"
      "body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;"
      "max-width:1000px;color:#1d2330;padding:0 1em}\n"
      "h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #d5dae3}\n"
      "table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #d5dae3;padding:.3em .6em;"
      "text-align:left;vertical-align:top}th{background:#f1f4f9}td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
      ".meta{color:#5a6475;font-size:.9em}.good{color:#1d7a3a}.bad{color:#b3261e}\n"
      "pre{white-space:pre-wrap;word-break:break-word;background:#f7f8fa;padding:.5em;margin:.2em 0;"
      "max-height:14em;overflow:auto;font-size:.85em}\n"
      "svg text{font-size:11px;fill:#1d2330}\n"
      "</style></head><body>\n<h1>" +
      escape(title) + "</h1>\n";
  out += body;
  out += "\n</body></html>\n";
  return out;
}

std::string h2(std::string_view text) { return "<h2>" + escape(text) + "</h2>\n"; }

std::string bar_chart(const std::vector<std::pair<std::string, double>>& bars, const BarOptions& o) {
  double max = o.max;
  for (const auto& [label, v] : bars) max = std::max(max, v);
  for (double r : o.reference) max = std::max(max, r);
  if (max <= 0) max = 1;
  const int plot = o.width - kLabelWidth - kValueWidth;
  const int height = static_cast<int>(bars.size()) * (kBarHeight + kBarGap) + kBarGap;
  std::string svg = "<svg role=\"img\" width=\"" + std::to_string(o.width) + "\" height=\"" +
                    std::to_string(height) + "\" viewBox=\"0 0 " + std::to_string(o.width) + " " +
                    std::to_string(height) + "\">\n";
  for (size_t i = 0; i < bars.size(); ++i) {
    const auto& [label, v] = bars[i];
    const int y = kBarGap + static_cast<int>(i) * (kBarHeight + kBarGap);
    const double w = std::max(0.0, v) / max * plot;
    svg += "<text x=\"" + std::to_string(kLabelWidth - 6) + "\" y=\"" + std::to_string(y + kBarHeight - 4) +
           "\" text-anchor=\"end\">" + escape(label) + "</text>";
    svg += "<rect x=\"" + std::to_string(kLabelWidth) + "\" y=\"" + std::to_string(y) + "\" width=\"" +
           num(w) + "\" height=\"" + std::to_string(kBarHeight) + "\" fill=\"" + o.color + "\"/>";
    if (i < o.reference.size() && o.reference[i] >= 0) {
      const double x = kLabelWidth + o.reference[i] / max * plot;
      svg += "<line x1=\"" + num(x) + "\" x2=\"" + num(x) + "\" y1=\"" + std::to_string(y - 1) + "\" y2=\"" +
             std::to_string(y + kBarHeight + 1) + "\" stroke=\"#b3261e\" stroke-width=\"2\"/>";
    }
    svg += "<text x=\"" + num(kLabelWidth + w + 4) + "\" y=\"" + std::to_string(y + kBarHeight - 4) + "\">" +
           (o.percent ? num(100 * v) + "%" : num(v, 2)) + "</text>\n";
  }
  return svg + "</svg>\n";
}

std::string histogram(const std::vector<double>& values, double lo, double hi, int bins, std::string_view x_label) {
  constexpr int kWidth = 640, kHeight = 160, kPad = 28;
  std::vector<int> count(bins, 0);
  for (double v : values) {
    const double t = hi > lo ? (v - lo) / (hi - lo) : 0;
    const int b = std::clamp(static_cast<int>(std::floor(t * bins)), 0, bins - 1);
    ++count[b];
  }
  const int top = std::max(1, *std::max_element(count.begin(), count.end()));
  const double bw = static_cast<double>(kWidth - 2 * kPad) / bins;
  std::string svg = "<svg role=\"img\" width=\"" + std::to_string(kWidth) + "\" height=\"" +
                    std::to_string(kHeight + 30) + "\" viewBox=\"0 0 " + std::to_string(kWidth) + " " +
                    std::to_string(kHeight + 30) + "\">\n";
  for (int b = 0; b < bins; ++b) {
    const double h = static_cast<double>(count[b]) / top * (kHeight - kPad);
    svg += "<rect x=\"" + num(kPad + b * bw + 1) + "\" y=\"" + num(kHeight - h) + "\" width=\"" +
           num(std::max(1.0, bw - 2)) + "\" height=\"" + num(h) + "\" fill=\"#3b6ea8\"><title>" +
           std::to_string(count[b]) + "</title></rect>";
  }
  svg += "<line x1=\"" + std::to_string(kPad) + "\" x2=\"" + std::to_string(kWidth - kPad) + "\" y1=\"" +
         std::to_string(kHeight) + "\" y2=\"" + std::to_string(kHeight) + "\" stroke=\"#5a6475\"/>";
  svg += "<text x=\"" + std::to_string(kPad) + "\" y=\"" + std::to_string(kHeight + 14) + "\">" + num(lo, 0) +
         "</text><text x=\"" + std::to_string(kWidth - kPad) + "\" y=\"" + std::to_string(kHeight + 14) +
         "\" text-anchor=\"end\">" + num(hi, 0) + "</text><text x=\"" + std::to_string(kWidth / 2) + "\" y=\"" +
         std::to_string(kHeight + 26) + "\" text-anchor=\"middle\">" + escape(x_label) + "</text>";
  svg += "<text x=\"" + std::to_string(kPad) + "\" y=\"12\">max " + std::to_string(top) + "</text>\n";
  return svg + "</svg>\n";
}

std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                  bool raw_html) {
  std::string out = "<table><tr>";
  for (const auto& h : header) out += "<th>" + escape(h) + "</th>";
  out += "</tr>\n";
  for (const auto& r : rows) {
    out += "<tr>";
    for (const auto& c : r) {
      const bool numeric = !c.empty() && (std::isdigit(static_cast<unsigned char>(c[0])) || c[0] == '-' || c[0] == '+');
      out += numeric ? "<td class=\"n\">" : "<td>";
      out += raw_html ? c : escape(c);
      out += "</td>";
    }
    out += "</tr>\n";
  }
  return out + "</table>\n";
}

}  // namespace hrm::reports
