// Paired statistics and the regression gate of `compare`, on hand-made runs.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "common/error.h"
#include "eval/harness.h"
#include "eval/samples.h"
#include "eval/stats.h"

namespace hrm::eval {
namespace {

namespace fs = std::filesystem;

TEST(Stats, McNemarExactMatchesHandComputedBinomialTails) {
  // b=10, c=2: p = 2 * (C(12,0)+C(12,1)+C(12,2)) / 2^12 = 2 * 79 / 4096.
  EXPECT_NEAR(mcnemar_exact_p(10, 2), 158.0 / 4096.0, 1e-12);
  EXPECT_NEAR(mcnemar_exact_p(2, 10), 158.0 / 4096.0, 1e-12);
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(5, 5), 1.0);  // capped at 1
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(0, 0), 1.0);
  // b=0, c=20: 2 / 2^20.
  EXPECT_NEAR(mcnemar_exact_p(0, 20), 2.0 / 1048576.0, 1e-15);
  // Large n stays finite: 600 vs 400 discordant pairs is overwhelming evidence.
  const double p = mcnemar_exact_p(600, 400);
  EXPECT_GT(p, 0.0);
  EXPECT_LT(p, 1e-8);
}

TEST(Stats, BootstrapIntervalCoversTheDifferenceAndIsDeterministic) {
  std::vector<double> a(400), b(400);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = (i % 2 == 0);       // 50%
    b[i] = (i % 10 < 7);       // 70%
  }
  const auto ci = paired_bootstrap_ci(a, b, mean_of, 2000, 1);
  EXPECT_LT(ci.first, 0.2);
  EXPECT_GT(ci.second, 0.2);
  EXPECT_GT(ci.first, 0.1);  // clearly excludes 0 at n = 400
  EXPECT_EQ(ci, paired_bootstrap_ci(a, b, mean_of, 2000, 1));
  const auto same = paired_bootstrap_ci(a, a, mean_of, 500, 1);
  EXPECT_EQ(same.first, 0.0);
  EXPECT_EQ(same.second, 0.0);
}

// Writes a minimal run directory with GSM8K-like per-item accuracies.
fs::path fake_run(const std::string& name, const std::vector<int>& correct, const std::string& data_hash = "d1") {
  const fs::path dir = fs::path(::testing::TempDir()) / ("hrm_fake_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "samples");
  std::ofstream(dir / "results.json")
      << R"({"results":{"gsm8k":{"name":"gsm8k"}},"protocol":{"gsm8k":{"shots":0}},"data_hashes":{"gsm8k":")"
      << data_hash << R"("}})";
  std::ofstream s(dir / "samples" / "gsm8k.jsonl");
  for (size_t i = 0; i < correct.size(); ++i) {
    Sample x;
    x.doc_id = static_cast<int64_t>(i);
    x.prompt_hash = "h" + std::to_string(i);
    x.prompt = "q";
    x.generation = "g";
    x.finish = "stop";
    x.metrics = {{"acc", double(correct[i])}, {"invalid", 0.0}};
    s << sample_to_json_line(x);
  }
  return dir;
}

TEST(Compare, SignificantDropBeyondThresholdFails) {
  std::vector<int> good(300, 1), bad(300, 1);
  for (size_t i = 0; i < bad.size(); i += 3) bad[i] = 0;  // 100% -> 66.7%
  const fs::path a = fake_run("good", good), b = fake_run("bad", bad);
  std::string md;
  EXPECT_EQ(compare(a, b, {.fail_on_regression_pct = 5.0}, md), 1);
  EXPECT_NE(md.find("REGRESSION"), std::string::npos) << md;
  EXPECT_NE(md.find("-33.33"), std::string::npos) << md;
  // Above the threshold it only reports.
  EXPECT_EQ(compare(a, b, {.fail_on_regression_pct = 50.0}, md), 0);
  EXPECT_NE(md.find("worse"), std::string::npos) << md;
  // The other direction is an improvement, never a failure.
  EXPECT_EQ(compare(b, a, {.fail_on_regression_pct = 5.0}, md), 0);
  EXPECT_NE(md.find("better"), std::string::npos) << md;
}

TEST(Compare, SmallNoisyDropIsNotSignificant) {
  std::vector<int> a(40), b(40);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = i % 2;
    b[i] = (i % 2) ^ (i == 1);  // one item flipped
  }
  std::string md;
  EXPECT_EQ(compare(fake_run("na", a), fake_run("nb", b), {.fail_on_regression_pct = 0.0}, md), 0);
  EXPECT_NE(md.find("no significant change"), std::string::npos) << md;
}

TEST(Compare, RefusesRunsOnDifferentData) {
  std::string md;
  try {
    compare(fake_run("d1", {1, 0}), fake_run("d2", {1, 0}, "d2"), {}, md);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data_hashes.gsm8k"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hrm::eval
