// Progress lines on stderr for long work: done/total, rate, ETA. Redraws in place on a terminal,
// prints a line every few seconds otherwise (CI logs). Internal to eval/.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace hrm::eval {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled);
  // `done` items finished; `tokens` generated so far (for the tok/s figure).
  void update(int64_t done, int64_t tokens);
  void finish();

 private:
  std::string label_;
  int64_t total_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_;
  int64_t done_ = 0, tokens_ = 0;
  void print(bool final_line);
};

std::string format_duration(double seconds);

}  // namespace hrm::eval
