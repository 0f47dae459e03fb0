// The evaluation report: Markdown and self-contained HTML from a real (tiny) run, and that headless
// Chromium renders the HTML (skipped where Chromium is not installed).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "common/error.h"
#include "eval/harness.h"
#include "eval/report_data.h"
#include "reports/html.h"
#include "reports/run_report.h"
#include "eval_test_env.h"

namespace hrm::eval {
namespace {

namespace fs = std::filesystem;

class Report : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path data = test::benchmark_data();
    if (!fs::exists(data / "mmlu" / "test.jsonl")) return;
    dir_ = test::fresh_dir("report");
    RunOptions o;
    o.model_dir = test::tiny_text_model();
    o.data_dir = data;
    o.out_dir = dir_;
    o.suites = {"mmlu", "gsm8k"};
    o.limit = 12;
    o.max_new_tokens = 16;
    o.quiet = true;
    run(o);
  }
  void SetUp() override {
    if (dir_.empty()) GTEST_SKIP() << "no benchmark data";
  }
  static fs::path dir_;
};
fs::path Report::dir_;

TEST_F(Report, MarkdownHasHeadlineAgainstPublishedNumbers) {
  const reports::RunView v = load_run_view(dir_);
  const std::string md = reports::render_markdown(v);
  EXPECT_NE(md.find("| mmlu | acc (macro) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 60.7 | 56.9 |"), std::string::npos) << md;  // MMLU, DESIGN §4
  EXPECT_NE(md.find("| 84.5 | 78.4 |"), std::string::npos) << md;  // GSM8K
  EXPECT_NE(md.find("limit 12"), std::string::npos) << md;
}

TEST_F(Report, HtmlIsSelfContained) {
  const reports::RunView v = load_run_view(dir_);
  const std::string html = reports::render_html(v, &v);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(html.find("http"), std::string::npos) << "no network resources";
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("abstract_algebra (12)"), std::string::npos);  // per-subject bars
  EXPECT_NE(html.find("Example failures"), std::string::npos);
  EXPECT_NE(html.find("other run"), std::string::npos);  // --compare column
  // Generations are escaped: nothing from a sample can open a tag.
  size_t opens = 0, closes = 0;
  for (size_t p = 0; (p = html.find("<pre>", p)) != std::string::npos; ++p) ++opens;
  for (size_t p = 0; (p = html.find("</pre>", p)) != std::string::npos; ++p) ++closes;
  EXPECT_EQ(opens, closes);
}

TEST(ReportHtml, EscapesMarkup) {
  EXPECT_EQ(reports::escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
}

TEST_F(Report, ChromiumRendersIt) {
  if (std::system("command -v chromium >/dev/null 2>&1") != 0) GTEST_SKIP() << "chromium not installed";
  const fs::path html = dir_ / "report.html", png = dir_ / "report.png";
  std::ofstream(html) << reports::render_html(load_run_view(dir_));
  const std::string cmd = "timeout 120 chromium --headless --no-sandbox --disable-gpu --window-size=1100,1600 "
                          "--screenshot=" + png.string() + " file://" + html.string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  ASSERT_TRUE(fs::exists(png));
  // A blank page compresses to a few KB; the rendered report (tables, bars, text) is far larger.
  EXPECT_GT(fs::file_size(png), 20000u);
}

TEST(ReportData, NotARunDirIsAClearError) {
  try {
    load_run_view("/nonexistent/run");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hrmbench run"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hrm::eval
