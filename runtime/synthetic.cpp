// Synthetic arithmetic word problems and planted leaks (see synthetic.h).
#include "runtime/synthetic.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>
#include <fstream>

#include "common/error.h"

namespace hrm {
namespace {

// splitmix64: a portable stream (std distributions differ between standard libraries).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int64_t range(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1)); }
  template <class T, size_t N>
  const T& pick(const std::array<T, N>& a) { return a[next() % N]; }
};

constexpr std::array<const char*, 12> kNames = {"Ana", "Ben", "Chloe", "Dev", "Elena", "Farid",
                                                 "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Liam"};
constexpr std::array<const char*, 10> kItems = {"apples", "marbles", "stickers", "books", "pencils",
                                                 "cookies", "stamps", "shells", "cards", "beads"};

std::string s(int64_t v) { return std::to_string(v); }

SyntheticSample word_problem(Rng& r, const std::string& condition) {
  const std::string name = r.pick(kNames), item = r.pick(kItems);
  SyntheticSample out;
  out.condition = condition;
  switch (r.next() % 4) {
    case 0: {  // buy then give away
      const int64_t a = r.range(5, 60), b = r.range(2, 40), c = r.range(1, a + b);
      const int64_t t = a + b, ans = t - c;
      out.instruction = name + " has " + s(a) + " " + item + ". " + name + " buys " + s(b) +
                        " more and then gives away " + s(c) + ". How many " + item + " does " + name +
                        " have now?";
      out.response = name + " starts with " + s(a) + " " + item + ". After buying " + s(b) + " more: " + s(a) +
                     " + " + s(b) + " = " + s(t) + ". After giving away " + s(c) + ": " + s(t) + " - " + s(c) +
                     " = " + s(ans) + ". \\boxed{" + s(ans) + "}";
      break;
    }
    case 1: {  // boxes of rows
      const int64_t rows = r.range(2, 9), per = r.range(2, 12), boxes = r.range(2, 6);
      const int64_t per_box = rows * per, total = per_box * boxes, used = r.range(1, total);
      const int64_t ans = total - used;
      out.instruction = "A box holds " + s(rows) + " rows of " + s(per) + " " + item + ". " + name + " fills " +
                        s(boxes) + " boxes and then uses " + s(used) + " " + item + ". How many " + item +
                        " are left?";
      out.response = "Each box holds " + s(rows) + " * " + s(per) + " = " + s(per_box) + " " + item + ". " +
                     s(boxes) + " boxes hold " + s(per_box) + " * " + s(boxes) + " = " + s(total) + ". After using " +
                     s(used) + ": " + s(total) + " - " + s(used) + " = " + s(ans) + ". \\boxed{" + s(ans) + "}";
      break;
    }
    case 2: {  // wages
      const int64_t rate = r.range(8, 30), hours = r.range(2, 10), days = r.range(2, 7);
      const int64_t daily = rate * hours, ans = daily * days;
      out.instruction = name + " earns $" + s(rate) + " per hour and works " + s(hours) + " hours a day for " +
                        s(days) + " days. How many dollars does " + name + " earn in total?";
      out.response = "In one day " + name + " earns " + s(rate) + " * " + s(hours) + " = " + s(daily) +
                     " dollars. Over " + s(days) + " days: " + s(daily) + " * " + s(days) + " = " + s(ans) +
                     ". \\boxed{" + s(ans) + "}";
      break;
    }
    default: {  // share equally, then eat some
      const int64_t friends = r.range(2, 8), each = r.range(3, 15), eaten = r.range(1, each);
      const int64_t total = friends * each, ans = each - eaten;
      out.instruction = name + " shares " + s(total) + " " + item + " equally among " + s(friends) +
                        " friends. Each friend then loses " + s(eaten) + ". How many " + item +
                        " does each friend have left?";
      out.response = "Each friend gets " + s(total) + " / " + s(friends) + " = " + s(each) + ". After losing " +
                     s(eaten) + ": " + s(each) + " - " + s(eaten) + " = " + s(ans) + ". \\boxed{" + s(ans) + "}";
      break;
    }
  }
  return out;
}

// Difficulty 1: one addition or subtraction on numbers below 10.
SyntheticSample one_step_problem(Rng& r, const std::string& condition) {
  const std::string name = r.pick(kNames), item = r.pick(kItems);
  SyntheticSample out;
  out.condition = condition;
  if (r.next() % 2 == 0) {
    const int64_t a = r.range(1, 9), b = r.range(1, 9), ans = a + b;
    out.instruction = name + " has " + s(a) + " " + item + ". " + name + " gets " + s(b) + " more. How many " +
                      item + " does " + name + " have now?";
    out.response = s(a) + " + " + s(b) + " = " + s(ans) + ". \\boxed{" + s(ans) + "}";
  } else {
    const int64_t a = r.range(2, 18), b = r.range(1, std::min<int64_t>(9, a - 1)), ans = a - b;
    out.instruction = name + " has " + s(a) + " " + item + " and gives away " + s(b) + ". How many " + item +
                      " are left?";
    out.response = s(a) + " - " + s(b) + " = " + s(ans) + ". \\boxed{" + s(ans) + "}";
  }
  return out;
}

// Difficulty 2: an addition and a subtraction, in either order, on numbers up to 20.
SyntheticSample two_step_problem(Rng& r, const std::string& condition) {
  const std::string name = r.pick(kNames), item = r.pick(kItems);
  SyntheticSample out;
  out.condition = condition;
  if (r.next() % 2 == 0) {
    const int64_t a = r.range(2, 20), b = r.range(1, 20), c = r.range(1, std::min<int64_t>(20, a + b));
    const int64_t t = a + b, ans = t - c;
    out.instruction = name + " has " + s(a) + " " + item + ", buys " + s(b) + " more and then gives away " + s(c) +
                      ". How many " + item + " does " + name + " have now?";
    out.response = s(a) + " + " + s(b) + " = " + s(t) + ". " + s(t) + " - " + s(c) + " = " + s(ans) + ". \\boxed{" +
                   s(ans) + "}";
  } else {
    const int64_t a = r.range(2, 20), c = r.range(1, a), b = r.range(1, 20);
    const int64_t t = a - c, ans = t + b;
    out.instruction = name + " has " + s(a) + " " + item + ", loses " + s(c) + " and then finds " + s(b) +
                      ". How many " + item + " does " + name + " have now?";
    out.response = s(a) + " - " + s(c) + " = " + s(t) + ". " + s(t) + " + " + s(b) + " = " + s(ans) + ". \\boxed{" +
                   s(ans) + "}";
  }
  return out;
}

}  // namespace

std::vector<SyntheticSample> make_synthetic_corpus(const SyntheticOptions& o) {
  if (o.n < 0 || o.leak_count < 0) throw Error(cat("corpus sizes must be >= 0, got n=", o.n, " leak-count=", o.leak_count));
  if (o.difficulty < kMinDifficulty || o.difficulty > kMaxDifficulty)
    throw Error(cat("difficulty must be ", kMinDifficulty, " to ", kMaxDifficulty, ", got ", o.difficulty));
  if (o.leak_count > 0 && o.leaks.empty()) throw Error("--leak-count > 0 needs questions to plant (--leak FILE)");
  Rng r{o.seed};
  std::vector<SyntheticSample> out;
  out.reserve(o.n + o.leak_count);
  for (int64_t i = 0; i < o.n; ++i)
    out.push_back(o.difficulty == 1   ? one_step_problem(r, o.condition)
                  : o.difficulty == 2 ? two_step_problem(r, o.condition)
                                      : word_problem(r, o.condition));
  // Plant each copy at a random position (insertion keeps the earlier ones in order).
  for (int64_t k = 0; k < o.leak_count; ++k) {
    const LeakQuestion& q = o.leaks[k % static_cast<int64_t>(o.leaks.size())];
    SyntheticSample leak{q.question, q.answer.empty() ? std::string("\\boxed{0}") : q.answer, o.condition, true};
    const int64_t at = r.range(0, static_cast<int64_t>(out.size()));
    out.insert(out.begin() + at, std::move(leak));
  }
  return out;
}

std::vector<LeakQuestion> read_leak_questions(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(cat(path.string(), ": cannot open the leak questions"));
  std::vector<LeakQuestion> out;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    rapidjson::Document d;
    d.Parse(line.c_str(), line.size());
    if (d.HasParseError() || !d.IsObject()) throw Error(cat(path.string(), ":", line_no, ": not a JSON object"));
    auto first = [&](std::initializer_list<const char*> keys) -> std::string {
      for (const char* k : keys) {
        auto it = d.FindMember(k);
        if (it != d.MemberEnd() && it->value.IsString())
          return std::string(it->value.GetString(), it->value.GetStringLength());
      }
      return "";
    };
    LeakQuestion q{first({"question", "problem", "instruction", "text"}), first({"answer", "solution", "response"})};
    if (q.question.empty())
      throw Error(cat(path.string(), ":", line_no, ": no \"question\", \"problem\", \"instruction\" or \"text\" string"));
    out.push_back(std::move(q));
  }
  if (out.empty()) throw Error(cat(path.string(), ": no questions"));
  return out;
}

std::string boxed_answer(const std::string& response) {
  const size_t b = response.rfind("\\boxed{");
  const size_t e = b == std::string::npos ? b : response.find('}', b);
  if (e == std::string::npos) throw Error(cat("synthetic response without \\boxed{}: '", response, "'"));
  return response.substr(b + 7, e - b - 7);
}

std::string to_gsm8k_jsonl(const SyntheticSample& x) {
  std::string reasoning = x.response.substr(0, x.response.rfind("\\boxed{"));
  while (!reasoning.empty() && reasoning.back() == ' ') reasoning.pop_back();
  const std::string answer = reasoning + "\n#### " + boxed_answer(x.response);
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("question");
  w.String(x.instruction.c_str(), static_cast<rapidjson::SizeType>(x.instruction.size()));
  w.Key("answer");
  w.String(answer.c_str(), static_cast<rapidjson::SizeType>(answer.size()));
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string to_jsonl(const SyntheticSample& x) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("instruction");
  w.String(x.instruction.c_str(), static_cast<rapidjson::SizeType>(x.instruction.size()));
  w.Key("response");
  w.String(x.response.c_str(), static_cast<rapidjson::SizeType>(x.response.size()));
  w.Key("condition");
  w.String(x.condition.c_str(), static_cast<rapidjson::SizeType>(x.condition.size()));
  w.EndObject();
  return buf.GetString();
}

}  // namespace hrm
