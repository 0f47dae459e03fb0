// One training step against PyTorch: loss, per-tensor gradient norms, raw gradient entries and the
// weights after one Adam-atan2 step, for a packed batch through transformers' HrmTextForCausalLM
// driven like the reference trainer (fixtures: scripts/make_train_fixture.py; `step` has weights 1.5x
// an init's width, `step_init` an init's width).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>

#include "runtime/model.h"
#include "runtime/optimizer.h"
#include "runtime/train.h"
#include "test_util.h"

namespace hrm {
namespace {

std::vector<TokenId> ids(const rapidjson::Value& a) {
  std::vector<TokenId> out;
  for (const auto& v : a.GetArray()) out.push_back(v.GetInt());
  return out;
}

double norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

class TrainStep : public ::testing::TestWithParam<const char*> {};

TEST_P(TrainStep, MatchesPyTorch) {
  const auto dir = test::fixtures() / "train" / GetParam();
  Model model = Model::load(dir);
  const ModelConfig& cfg = model.config();
  const rapidjson::Document doc = test::read_json(dir / "expected.json");
  PackedBatch batch;
  for (const auto& s : doc["samples"].GetArray()) batch.add_sample(ids(s["instruction"]), ids(s["response"]));

  for (const auto& cs : doc["cases"].GetArray()) {
    const int64_t bp = cs["bp_steps"].GetInt64();
    ModelWeights w = model.weights();
    ModelWeights grads = zeros_like(w);
    const LossResult r = cpu_forward_backward(cfg, w, batch, bp, &grads);
    const double want_loss = cs["loss"].GetDouble();
    const double loss_err = std::abs(r.loss - want_loss) / want_loss;
    EXPECT_LT(loss_err, 1e-5) << "bp_steps " << bp << ": loss " << r.loss << " vs " << want_loss;

    std::map<std::string, std::vector<float>*> by_name;
    for (NamedTensor& t : trainable_tensors(grads)) by_name[t.name] = t.data;
    double worst_norm = 0;
    std::string worst_name;
    ASSERT_EQ(cs["grad_norms"].MemberCount(), by_name.size());
    for (const auto& m : cs["grad_norms"].GetObject()) {
      ASSERT_TRUE(by_name.count(m.name.GetString())) << m.name.GetString();
      const double want = m.value.GetDouble(), got = norm(*by_name[m.name.GetString()]);
      const double err = want == 0 ? got : std::abs(got - want) / want;
      if (err > worst_norm) {
        worst_norm = err;
        worst_name = m.name.GetString();
      }
    }
    EXPECT_LT(worst_norm, 1e-4) << "bp_steps " << bp << ": gradient norm of " << worst_name;
    double worst_entry = 0;
    for (const auto& e : cs["grad_entries"].GetArray()) {
      const double want = e["value"].GetDouble();
      const double got = (*by_name.at(e["tensor"].GetString()))[e["index"].GetInt64()];
      // Entries are judged against the tensor's RMS so near-zero entries do not dominate.
      const auto* t = by_name.at(e["tensor"].GetString());
      const double rms = norm(*t) / std::sqrt(static_cast<double>(t->size()));
      worst_entry = std::max(worst_entry, std::abs(got - want) / (std::abs(want) + rms + 1e-30));
    }
    EXPECT_LT(worst_entry, 1e-4) << "bp_steps " << bp;
    std::printf("bp_steps %lld: loss %.7f (torch %.7f, rel. err %.2g), worst grad-norm rel. err %.2g (%s), "
                "worst entry err %.2g\n",
                static_cast<long long>(bp), r.loss, want_loss, loss_err, worst_norm, worst_name.c_str(),
                worst_entry);

    if (!cs.HasMember("adam")) continue;
    const auto& a = cs["adam"];
    AdamAtan2Config oc;
    oc.beta1 = a["betas"][0].GetDouble();
    oc.beta2 = a["betas"][1].GetDouble();
    oc.weight_decay = a["weight_decay"].GetDouble();
    const ModelWeights before = w;
    AdamAtan2 opt(oc, w);
    opt.step(w, grads, a["lr"].GetDouble(), r.active(w));
    std::map<std::string, std::vector<float>*> wn;
    for (NamedTensor& t : trainable_tensors(w)) wn[t.name] = t.data;
    // Tensors PyTorch left without a gradient are not touched at all (not even weight decay).
    ModelWeights before_copy = before;
    std::map<std::string, std::vector<float>*> bn;
    for (NamedTensor& t : trainable_tensors(before_copy)) bn[t.name] = t.data;
    size_t unchanged = 0;
    for (const auto& [name, data] : wn) unchanged += *data == *bn.at(name);
    EXPECT_EQ(unchanged, a["skipped"].Size()) << "bp_steps " << bp;
    for (const auto& n : a["skipped"].GetArray()) EXPECT_EQ(*wn.at(n.GetString()), *bn.at(n.GetString())) << n.GetString();
    double worst = 0;
    for (const auto& e : a["updated"].GetArray()) {
      const double want = e["value"].GetDouble();
      const double got = (*wn.at(e["tensor"].GetString()))[e["index"].GetInt64()];
      worst = std::max(worst, std::abs(got - want) / std::max(std::abs(want), 1e-3));
    }
    std::printf("after one Adam-atan2 step: worst rel. weight error %.2g\n", worst);
    EXPECT_LT(worst, 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TrainStep, ::testing::Values("step", "step_init"));

}  // namespace
}  // namespace hrm
