// The backward ops against obviously-right references: the matmul gradients against naive double
// loops, and the elementwise / norm / attention gradients against central finite differences of the
// forward ops in ops.h (random inputs, several shapes; worst error printed).
#include "runtime/cpu/backward.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <random>

#include "runtime/cpu/ops.h"

namespace hrm::cpu {
namespace {

std::vector<float> rnd(std::mt19937_64& g, size_t n) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

double rel_err(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num = std::max(num, std::abs(got[i] - want[i]));
    den = std::max(den, std::abs(want[i]));
  }
  return num / den;
}

TEST(BackwardOps, MatmulGradientsMatchNaiveLoops) {
  std::mt19937_64 g(1);
  double worst = 0;
  for (auto [rows, out, in] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 5, 7}, {37, 19, 66}, {64, 130, 33}}) {
    const auto dy = rnd(g, rows * out), w = rnd(g, out * in), x = rnd(g, rows * in);
    std::vector<double> dx_ref(rows * in, 0.0), dw_ref(out * in, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) {
          dx_ref[r * in + i] += double(dy[r * out + o]) * w[o * in + i];
          dw_ref[o * in + i] += double(dy[r * out + o]) * x[r * in + i];
        }
    std::vector<float> dx(rows * in, 0.f), dw(out * in, 0.f);
    matmul_nn(dy.data(), rows, out, w.data(), in, dx.data());
    matmul_tn_acc(dy.data(), rows, out, x.data(), in, dw.data());
    worst = std::max({worst, rel_err(dx, dx_ref), rel_err(dw, dw_ref)});
    // Accumulation adds on top of what is there.
    matmul_tn_acc(dy.data(), rows, out, x.data(), in, dw.data());
    matmul_nn(dy.data(), rows, out, w.data(), in, dx.data(), /*accumulate=*/true);
    for (double& v : dw_ref) v *= 2;
    for (double& v : dx_ref) v *= 2;
    worst = std::max({worst, rel_err(dx, dx_ref), rel_err(dw, dw_ref)});
  }
  std::printf("matmul gradients: worst relative error %.3g\n", worst);
  EXPECT_LT(worst, 1e-5);
}

// Central differences of a scalar function L(x) = sum(f(x) * probe) at every entry of x.
std::vector<double> fd(std::vector<float> x, const std::function<double(const std::vector<float>&)>& loss) {
  std::vector<double> grad(x.size());
  const float eps = 1e-2f;
  for (size_t i = 0; i < x.size(); ++i) {
    const float keep = x[i];
    x[i] = keep + eps;
    const double up = loss(x);
    x[i] = keep - eps;
    const double down = loss(x);
    x[i] = keep;
    grad[i] = (up - down) / (2.0 * eps);
  }
  return grad;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

TEST(BackwardOps, RmsNormAndSiluMatchFiniteDifferences) {
  std::mt19937_64 g(2);
  const int64_t rows = 3, dim = 16;
  const auto x = rnd(g, rows * dim), probe = rnd(g, rows * dim);
  std::vector<float> dx(rows * dim);
  rms_norm_backward(x.data(), probe.data(), rows, dim, 1e-6f, dx.data(), false);
  const auto want = fd(x, [&](const std::vector<float>& v) {
    std::vector<float> y(v.size());
    rms_norm(v.data(), rows, dim, 1e-6f, y.data());
    return dot(y, probe);
  });
  const double e1 = rel_err(dx, want);
  const auto gate = rnd(g, 40), up = rnd(g, 40), p2 = rnd(g, 40);
  std::vector<float> dg(40), du(40);
  silu_mul_backward(gate.data(), up.data(), p2.data(), 40, dg.data(), du.data());
  auto silu_loss = [&](const std::vector<float>& gg, const std::vector<float>& uu) {
    std::vector<float> y(40);
    silu_mul(gg.data(), uu.data(), 40, y.data());
    return dot(y, p2);
  };
  const double e2 = rel_err(dg, fd(gate, [&](const std::vector<float>& v) { return silu_loss(v, up); }));
  const double e3 = rel_err(du, fd(up, [&](const std::vector<float>& v) { return silu_loss(gate, v); }));
  std::printf("rms_norm / silu_mul gradients: worst relative error %.3g %.3g %.3g\n", e1, e2, e3);
  EXPECT_LT(std::max({e1, e2, e3}), 2e-3);  // fp32 forward, eps 1e-2: FD truncation dominates
}

TEST(BackwardOps, PrefixAttentionMatchesFiniteDifferencesAndInference) {
  std::mt19937_64 g(3);
  const int64_t heads = 2, hd = 4, A = heads * hd;
  const std::vector<SeqSpan> seqs = {{0, 5, 2}, {5, 3, 3}, {8, 4, 1}};
  const int64_t T = 12;
  const auto q = rnd(g, T * A), k = rnd(g, T * A), v = rnd(g, T * A), probe = rnd(g, T * A);
  auto loss = [&](const std::vector<float>& qq, const std::vector<float>& kk, const std::vector<float>& vv) {
    std::vector<float> o(T * A);
    prefix_attention(qq.data(), kk.data(), vv.data(), seqs, heads, hd, o.data());
    return dot(o, probe);
  };
  std::vector<float> out(T * A), dq(T * A), dk(T * A), dv(T * A);
  prefix_attention(q.data(), k.data(), v.data(), seqs, heads, hd, out.data());
  prefix_attention_backward(q.data(), k.data(), v.data(), out.data(), probe.data(), seqs, heads, hd, dq.data(),
                            dk.data(), dv.data());
  const double eq = rel_err(dq, fd(q, [&](const std::vector<float>& x) { return loss(x, k, v); }));
  const double ek = rel_err(dk, fd(k, [&](const std::vector<float>& x) { return loss(q, x, v); }));
  const double ev = rel_err(dv, fd(v, [&](const std::vector<float>& x) { return loss(q, k, x); }));
  std::printf("prefix attention gradients: worst relative error q %.3g k %.3g v %.3g\n", eq, ek, ev);
  EXPECT_LT(std::max({eq, ek, ev}), 2e-3);

  // Forward equals the inference kernel (gate = +inf → sigmoid 1) on each sequence alone.
  const std::vector<float> open_gate(T * A, 1e30f);
  for (const SeqSpan& s : seqs) {
    std::vector<float> ref(s.len * A);
    gated_attention(q.data() + s.start * A, open_gate.data(), s.len, 0, k.data() + s.start * A,
                    v.data() + s.start * A, s.len, s.prefix, heads, hd, ref.data());
    for (int64_t i = 0; i < s.len * A; ++i) EXPECT_NEAR(out[s.start * A + i], ref[i], 1e-6);
  }
}

}  // namespace
}  // namespace hrm::cpu
