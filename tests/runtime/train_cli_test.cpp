// End-to-end tests of `hrmbench make-corpus`, `hrmbench train` and `hrmbench pack-stats`: the corpus
// with planted leaks, the loss log, the export, a resumed run whose exported weights equal an
// uninterrupted run's byte for byte, and the choice of packing.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "runtime/cuda_backend.h"
#include "test_util.h"

namespace hrm {
namespace {

namespace fs = std::filesystem;

using CmdRun = test::CmdResult;
// The binary with stderr captured too (progress and errors are on stderr).
CmdRun hrmbench(const std::string& args) { return test::hrmbench(args, /*with_stderr=*/true); }
using test::lines;

class TrainCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hrm_train_cli_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(TrainCli, MakeCorpusPlantsLeaks) {
  std::ofstream(dir_ / "leak.jsonl") << R"({"question": "What is the leaked question?", "answer": "#### 7"})" << "\n";
  const CmdRun r = hrmbench("make-corpus --out " + (dir_ / "c.jsonl").string() + " --n 40 --seed 3 --leak " +
                         (dir_ / "leak.jsonl").string() + " --leak-count 2");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto ls = lines(dir_ / "c.jsonl");
  ASSERT_EQ(ls.size(), 42u);
  int leaked = 0;
  for (const auto& l : ls) leaked += l.find("What is the leaked question?") != std::string::npos;
  EXPECT_EQ(leaked, 2);
  EXPECT_NE(r.out.find("2 planted leaks"), std::string::npos) << r.out;
}

TEST_F(TrainCli, MakeCorpusTokenizedMatchesJsonlTokens) {
  // --tokenized writes exactly the tokens `train` derives from the JSONL: train both for 2 steps from
  // the same seed and compare the loss logs.
  const std::string tok = (test::fixtures() / "tokenizer" / "tokenizer.json").string();
  const CmdRun r = hrmbench("make-corpus --out " + (dir_ / "c.jsonl").string() + " --n 30 --seed 5 --tokenized " +
                            (dir_ / "tok").string() + " --tokenizer " + tok);
  ASSERT_EQ(r.status, 0) << r.out;
  ASSERT_TRUE(fs::exists(dir_ / "tok" / "tokens.npy"));
  const std::string common = " --shape tiny --steps 2 --batch-tokens 256 --lr 1e-3 --warmup 1 --seed 2";
  ASSERT_EQ(hrmbench("train --data " + (dir_ / "c.jsonl").string() + " --tokenizer " + tok + common + " --out " +
                     (dir_ / "j").string()).status, 0);
  const CmdRun d = hrmbench("train --data " + (dir_ / "tok").string() + common + " --out " + (dir_ / "d").string());
  ASSERT_EQ(d.status, 0) << d.out;
  const auto a = lines(dir_ / "j" / "loss.jsonl"), b = lines(dir_ / "d" / "loss.jsonl");
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (size_t i = 0; i < 2; ++i)  // identical up to the timing fields
    EXPECT_EQ(a[i].substr(0, a[i].find("\"seconds\"")), b[i].substr(0, b[i].find("\"seconds\"")));
}

TEST_F(TrainCli, TrainLogsExportsAndResumesExactly) {
  ASSERT_EQ(hrmbench("make-corpus --out " + (dir_ / "c.jsonl").string() + " --n 60 --seed 1").status, 0);
  const std::string tok = (test::fixtures() / "tokenizer" / "tokenizer.json").string();
  const std::string common = "train --data " + (dir_ / "c.jsonl").string() + " --tokenizer " + tok +
                             " --shape tiny --batch-tokens 256 --lr 2e-3 --warmup 2 --ema 0.9 --seed 4";
  const CmdRun straight = hrmbench(common + " --steps 4 --out " + (dir_ / "a").string());
  ASSERT_EQ(straight.status, 0) << straight.out;
  EXPECT_NE(straight.out.find("step 4/4"), std::string::npos) << straight.out;
  EXPECT_NE(straight.out.find("tok/s"), std::string::npos) << straight.out;
  const auto log = lines(dir_ / "a" / "loss.jsonl");
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[3].rfind("{\"step\": 4, \"loss\": ", 0), 0u) << log[3];
  EXPECT_TRUE(fs::exists(dir_ / "a" / "hf" / "config.json"));
  EXPECT_TRUE(fs::exists(dir_ / "a" / "hf" / "tokenizer.json"));

  // Run b exports every 3 steps: step 3 on the way and step 4, the last, which is run a's final export.
  ASSERT_EQ(hrmbench(common + " --steps 2 --export-every 3 --out " + (dir_ / "b").string()).status, 0);
  EXPECT_TRUE(fs::exists(dir_ / "b" / "exports" / "step_2" / "model.safetensors"));  // the end of that run
  const CmdRun resumed = hrmbench(common + " --steps 4 --export-every 3 --resume --out " + (dir_ / "b").string());
  ASSERT_EQ(resumed.status, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("resumed at step 2"), std::string::npos) << resumed.out;
  EXPECT_EQ(lines(dir_ / "b" / "loss.jsonl").size(), 4u);
  EXPECT_EQ(test::read_text(dir_ / "a" / "hf" / "model.safetensors"),
            test::read_text(dir_ / "b" / "hf" / "model.safetensors"))
      << "a resumed run must export the same EMA weights as an uninterrupted one";
  EXPECT_EQ(test::read_text(dir_ / "b" / "exports" / "step_4" / "model.safetensors"),
            test::read_text(dir_ / "a" / "hf" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir_ / "b" / "exports" / "step_3" / "config.json"));
  EXPECT_TRUE(fs::exists(dir_ / "b" / "exports" / "step_3" / "tokenizer.json"));
  EXPECT_NE(test::read_text(dir_ / "b" / "exports" / "step_3" / "model.safetensors"),
            test::read_text(dir_ / "b" / "exports" / "step_4" / "model.safetensors"));
  int entries = 0;  // step_2, step_3, step_4 and no partial directory left behind
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_ / "b" / "exports")) ++entries;
  EXPECT_EQ(entries, 3);

  // --resume without --steps keeps the checkpoint's total: nothing left to do, nothing logged.
  const CmdRun again = hrmbench(common + " --resume --out " + (dir_ / "b").string());
  ASSERT_EQ(again.status, 0) << again.out;
  EXPECT_NE(again.out.find("done: 4 steps"), std::string::npos) << again.out;
  EXPECT_EQ(lines(dir_ / "b" / "loss.jsonl").size(), 4u);

  // The export generates with the inference runtime.
  const CmdRun gen = hrmbench("generate --model " + (dir_ / "a" / "hf").string() +
                           " --prompt-ids 6,40,41,7 --max-new-tokens 3 --ignore-eos --print-ids");
  EXPECT_EQ(gen.status, 0) << gen.out;
}

TEST_F(TrainCli, TrainsOnTokenizedDirectoryWithConfig) {
  // The pipeline's format (numpy-written fixture) with an explicit config.json (vocab 256 ≥ its ids).
  const std::string data = (test::fixtures() / "train" / "tokenized" / "part_b").string();
  const std::string config = (test::fixtures() / "train" / "step" / "config.json").string();
  const CmdRun r = hrmbench("train --data " + data + " --config " + config + " --steps 2 --batch-tokens 64 --out " +
                            (dir_ / "t").string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("corpus: 3 samples"), std::string::npos) << r.out;
  EXPECT_EQ(lines(dir_ / "t" / "loss.jsonl").size(), 2u);
  // --epochs sizes the run: 3 samples of 4-6 packed tokens in 64-token batches = 1 batch per epoch.
  const CmdRun e = hrmbench("train --data " + data + " --config " + config + " --epochs 2 --batch-tokens 64 --out " +
                            (dir_ / "e").string());
  ASSERT_EQ(e.status, 0) << e.out;
  EXPECT_NE(e.out.find("2 epochs = 2 steps"), std::string::npos) << e.out;
  EXPECT_EQ(lines(dir_ / "e" / "loss.jsonl").size(), 2u);
  // Token ids beyond the config's vocabulary are rejected, naming the corpus.
  const CmdRun bad = hrmbench("train --data " + (test::fixtures() / "train" / "tokenized").string() + " --config " +
                              config + " --steps 1 --out " + (dir_ / "u").string());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("outside the vocabulary"), std::string::npos) << bad.out;
}

TEST_F(TrainCli, EpochsOfAPreparedCorpusAreCountedEachAndBounded) {
  // The reference's prepared layout (fixture: 3 epoch directories, 7 samples). Each epoch's shuffle packs
  // on its own, so `--epochs 3` is the sum of the three epochs' steps, and the run must reach its end.
  const std::string data = (test::fixtures() / "train" / "prepared").string();
  const std::string common = "train --data " + data + " --shape tiny --tokenizer " +
                             (test::fixtures() / "tokenizer" / "tokenizer.json").string() + " --batch-tokens 48";
  const CmdRun r = hrmbench(common + " --epochs 3 --out " + (dir_ / "p").string());
  ASSERT_EQ(r.status, 0) << r.out;
  const size_t at = r.out.find("3 epochs = ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const long steps = std::stol(r.out.substr(at + 11));
  EXPECT_GE(steps, 3);
  EXPECT_EQ(lines(dir_ / "p" / "loss.jsonl").size(), static_cast<size_t>(steps));
  EXPECT_NE(lines(dir_ / "p" / "loss.jsonl").back().find("\"epoch\": 2"), std::string::npos);
  // A fourth epoch does not exist: refused before training, naming the count.
  const CmdRun four = hrmbench(common + " --epochs 4 --out " + (dir_ / "q").string());
  EXPECT_NE(four.status, 0);
  EXPECT_NE(four.out.find("--epochs 4: the prepared corpus"), std::string::npos) << four.out;
  EXPECT_NE(four.out.find("has 3 epoch directories"), std::string::npos) << four.out;
}

TEST_F(TrainCli, PackingIsSelectableAndReported) {
  ASSERT_EQ(hrmbench("make-corpus --out " + (dir_ / "c.jsonl").string() + " --n 80 --seed 6").status, 0);
  const std::string tok = (test::fixtures() / "tokenizer" / "tokenizer.json").string();
  const std::string data = " --data " + (dir_ / "c.jsonl").string() + " --tokenizer " + tok;
  const std::string common = "train" + data + " --shape tiny --steps 3 --batch-tokens 300 --lr 1e-3 --seed 3";
  const CmdRun m = hrmbench(common + " --out " + (dir_ / "m").string());
  ASSERT_EQ(m.status, 0) << m.out;
  EXPECT_NE(m.out.find("packing: multipack, "), std::string::npos) << m.out;
  const CmdRun g = hrmbench(common + " --packing greedy --out " + (dir_ / "g").string());
  ASSERT_EQ(g.status, 0) << g.out;
  EXPECT_NE(g.out.find("packing: greedy, "), std::string::npos) << g.out;
  // One rank: both packings put the same samples into each step (multipack only orders them longest
  // first), so every step has the same token counts.
  const auto lm = lines(dir_ / "m" / "loss.jsonl"), lg = lines(dir_ / "g" / "loss.jsonl");
  ASSERT_EQ(lm.size(), 3u);
  ASSERT_EQ(lg.size(), 3u);
  auto counts = [](const std::string& l) {  // "tokens": T, "loss_tokens": L
    const size_t from = l.find("\"tokens\"");
    return l.substr(from, l.find(", \"epoch\"") - from);
  };
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(counts(lm[i]), counts(lg[i])) << lm[i] << "\n" << lg[i];
  const CmdRun bad = hrmbench(common + " --packing bestfit --out " + (dir_ / "b").string());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("packing must be 'greedy' or 'multipack'"), std::string::npos) << bad.out;

  const CmdRun st = hrmbench("pack-stats" + data + " --batch-tokens 300 --world-sizes 1,4 --epochs 2");
  ASSERT_EQ(st.status, 0) << st.out;
  std::istringstream rows(st.out);
  std::vector<std::string> table;
  for (std::string l; std::getline(rows, l);)
    if (l.rfind("greedy ", 0) == 0 || l.rfind("multipack ", 0) == 0) table.push_back(l);
  ASSERT_EQ(table.size(), 4u) << st.out;
  EXPECT_EQ(table[0].substr(10), table[2].substr(10)) << "one rank: the same steps and fill\n" << st.out;
  EXPECT_NE(table[3].find("%"), std::string::npos) << st.out;
}

TEST_F(TrainCli, RejectsBadArguments) {
  const CmdRun r = hrmbench("train --data " + (dir_ / "none.jsonl").string() + " --out " + (dir_ / "o").string() +
                         " --bp-warmup cubic");
  EXPECT_NE(r.status, 0);
  const CmdRun no_tok = hrmbench("train --data " + (dir_ / "none.jsonl").string() + " --out " + (dir_ / "o").string());
  EXPECT_NE(no_tok.status, 0);
  EXPECT_NE(no_tok.out.find("none.jsonl"), std::string::npos) << no_tok.out;
  const CmdRun resume = hrmbench("make-corpus --out " + (dir_ / "x.jsonl").string() + " --n 3 --leak-count 2");
  EXPECT_NE(resume.status, 0);
  EXPECT_NE(resume.out.find("--leak"), std::string::npos) << resume.out;
}

TEST_F(TrainCli, BackendIsCheckedAndCudaRunsOrSaysWhyNot) {
  ASSERT_EQ(hrmbench("make-corpus --out " + (dir_ / "c.jsonl").string() + " --n 30 --seed 8").status, 0);
  const std::string common = "train --data " + (dir_ / "c.jsonl").string() + " --tokenizer " +
                             (test::fixtures() / "tokenizer" / "tokenizer.json").string() +
                             " --shape tiny --steps 2 --batch-tokens 256 --warmup 1";
  const CmdRun bad = hrmbench(common + " --backend tpu --out " + (dir_ / "x").string());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("--backend tpu: expected cpu or cuda"), std::string::npos) << bad.out;

  const CmdRun gpu = hrmbench(common + " --backend cuda --out " + (dir_ / "g").string());
  std::string why;
  if (!cuda_available(&why)) {
    EXPECT_NE(gpu.status, 0);
    EXPECT_NE(gpu.out.find("--backend cuda: " + why), std::string::npos) << gpu.out;
    return;
  }
  ASSERT_EQ(gpu.status, 0) << gpu.out;
  EXPECT_EQ(lines(dir_ / "g" / "loss.jsonl").size(), 2u);
  EXPECT_TRUE(fs::exists(dir_ / "g" / "hf" / "model.safetensors"));
}

TEST_F(TrainCli, MakeCorpusDifficultyIsPassedAndChecked) {
  ASSERT_EQ(hrmbench("make-corpus --out " + (dir_ / "easy.jsonl").string() + " --n 20 --seed 4 --difficulty 1").status,
            0);
  ASSERT_EQ(hrmbench("make-corpus --out " + (dir_ / "hard.jsonl").string() + " --n 20 --seed 4").status, 0);
  // Level 1 is one operation on numbers below 10: its responses are shorter than the default's.
  size_t easy = 0, hard = 0;
  for (const auto& l : lines(dir_ / "easy.jsonl")) easy += l.size();
  for (const auto& l : lines(dir_ / "hard.jsonl")) hard += l.size();
  EXPECT_LT(easy, hard);
  const CmdRun bad = hrmbench("make-corpus --out " + (dir_ / "x.jsonl").string() + " --n 5 --difficulty 9");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("9"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace hrm
