// Progress lines (see progress.h).
#include "eval/progress.h"

#include <unistd.h>

#include <cstdio>

namespace hrm::eval {
namespace {
constexpr double kTtyInterval = 0.25;  // seconds between redraws on a terminal
constexpr double kLogInterval = 10.0;  // seconds between lines in a log
}  // namespace

std::string format_duration(double s) {
  char buf[32];
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

void Progress::update(int64_t done, int64_t tokens) {
  done_ = done;
  tokens_ = tokens;
  const auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_).count() < (tty_ ? kTtyInterval : kLogInterval)) return;
  last_ = now;
  print(false);
}

void Progress::finish() { print(true); }

void Progress::print(bool final_line) {
  if (!enabled_) return;
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = el > 0 ? done_ / el : 0;
  const std::string eta = rate > 0 && done_ < total_ ? format_duration((total_ - done_) / rate) : "-";
  std::fprintf(stderr, "%s%s %ld/%ld (%.0f%%) | %.2f items/s | %.1f tok/s | elapsed %s | ETA %s%s",
               tty_ ? "\r\033[K" : "", label_.c_str(), done_, total_,
               total_ > 0 ? 100.0 * done_ / total_ : 100.0, rate, el > 0 ? tokens_ / el : 0.0,
               format_duration(el).c_str(), eta.c_str(), tty_ && !final_line ? "" : "\n");
  std::fflush(stderr);
}

}  // namespace hrm::eval
