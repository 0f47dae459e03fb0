// Python string semantics (tasks/pytext.h): float() and repr() against CPython on
// tests/fixtures/tasks/pyfloat.tsv (scripts/tasks_make_pyfloat_fixture.py), plus strip/split/lower
// cases worked out by hand from the Python documentation.
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tasks/pytext.h"
#include "tests/tasks/test_env.h"

namespace {

namespace py = hrm::tasks::py;

TEST(PyText, FloatParseAndReprMatchCPython) {
  std::ifstream f(hrm::tasks::testing::fixtures_dir() / "tasks/pyfloat.tsv");
  ASSERT_TRUE(f) << "missing fixture; run scripts/tasks_make_pyfloat_fixture.py";
  std::string line;
  std::size_t cases = 0, bad = 0;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::size_t tab = line.rfind('\t');
    ASSERT_NE(tab, std::string::npos);
    std::string in = line.substr(0, tab), want = line.substr(tab + 1);
    auto v = py::parse_float(in);
    std::string got = v ? py::float_repr(*v) : "ERR";
    ++cases;
    if (got != want && bad++ < 10) ADD_FAILURE() << "'" << in << "': got " << got << ", CPython " << want;
  }
  EXPECT_GE(cases, 2900u);
  EXPECT_EQ(bad, 0u);
}

TEST(PyText, StripSplitLower) {
  // str.strip() removes Unicode whitespace (U+00A0, U+3000) but not U+200B (not whitespace).
  EXPECT_EQ(py::strip("\xC2\xA0 x \xE3\x80\x80"), "x");
  EXPECT_EQ(py::strip("\xE2\x80\x8Bx"), "\xE2\x80\x8Bx");
  EXPECT_EQ(py::split(" a\tb\n\x1c c "), (std::vector<std::string_view>{"a", "b", "c"}));
  EXPECT_EQ(py::lower("\xC3\x89T\xC3\x89 \xD0\x94"), "\xC3\xA9t\xC3\xA9 \xD0\xB4");  // "ÉTÉ Д" -> "été д"
  EXPECT_TRUE(py::is_word_char(U'\u00E9'));
  EXPECT_FALSE(py::is_word_char(U'\u2014'));  // em dash
}

}  // namespace
