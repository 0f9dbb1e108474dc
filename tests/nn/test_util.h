#pragma once
// Helpers shared by the nn tests.
#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "symm/group/random.h"
#include "symm/group/representation.h"

namespace symm::test {

/// Equivariance tolerance relative to |f(x)|∞.
/// Names "<group>_f32" or "<group>_f64" for the suites parameterised by (group spec, dtype).
struct GroupAndDtypeName {
  template <typename Info>
  std::string operator()(const Info& info) const {
    return std::string(std::get<0>(info.param)) + (std::get<1>(info.param) == torch::kFloat32 ? "_f32" : "_f64");
  }
};

/// max |a − b| / max |b|, in float64 on the CPU.
inline double relative(const torch::Tensor& a, const torch::Tensor& b) {
  const auto ad = a.to(torch::kCPU, torch::kFloat64), bd = b.to(torch::kCPU, torch::kFloat64);
  return (ad - bd).abs().max().item<double>() / std::max(bd.abs().max().item<double>(), 1e-30);
}

inline double tolerance(torch::Dtype dtype) { return dtype == torch::kFloat64 ? 1e-10 : 1e-5; }

/// The representation in a random orthogonal basis: no structure of the original basis survives.
inline symm::group::Representation scrambled(const symm::group::Representation& rep, std::uint64_t seed) {
  symm::group::Rng rng(seed);
  Eigen::MatrixXd a(rep.size(), rep.size());
  for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = rng.normal();
  const Eigen::MatrixXd q = Eigen::HouseholderQR<Eigen::MatrixXd>(a).householderQ();
  return rep.change_basis(q, rep.name() + "'");
}

/// (1/|G|) Σ_g ρ_y(g) W ρ_x(g)ᵀ: the average of W over the group, an equivariant map x → y.
inline Eigen::MatrixXd group_average(const Eigen::MatrixXd& w, const symm::group::Representation& x,
                                     const symm::group::Representation& y) {
  Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(w.rows(), w.cols());
  for (int g = 0; g < x.group()->order(); ++g) sum += y(g) * w * x(g).transpose();
  return sum / x.group()->order();
}

/// Expects f to throw c10::Error or std::invalid_argument whose message contains every fragment.
inline void expect_error(const std::function<void()>& f, std::initializer_list<std::string> fragments) {
  std::string message;
  try {
    f();
  } catch (const c10::Error& e) {
    message = e.what_without_backtrace();
  } catch (const std::invalid_argument& e) {
    message = e.what();
  }
  ASSERT_FALSE(message.empty()) << "no error was raised";
  for (const auto& f : fragments) EXPECT_NE(message.find(f), std::string::npos) << "'" << f << "' not in: " << message;
}

/// LibTorch's intra-op threads set to n for a scope (inference splits attention heads between them).
class ThreadsForScope {
 public:
  explicit ThreadsForScope(int n) : saved_(torch::get_num_threads()) { torch::set_num_threads(n); }
  ~ThreadsForScope() { torch::set_num_threads(saved_); }
  ThreadsForScope(const ThreadsForScope&) = delete;
  ThreadsForScope& operator=(const ThreadsForScope&) = delete;

 private:
  int saved_;
};

/// The gradient `grad` of `loss` against central differences in the coordinates `at` of the float64 tensor p
/// (changed in place and restored): |analytic − numeric| ≤ tol·max(1, |numeric|).
inline void expect_central_differences(const torch::Tensor& p, const torch::Tensor& grad, const std::function<double()>& loss,
                                       const std::vector<int64_t>& at, const std::string& what, double tol = 1e-6) {
  const double h = 1e-6;
  auto flat = p.detach().view({-1});
  const auto g = grad.reshape({-1});
  for (const int64_t i : at) {
    const double v = flat[i].item<double>();
    flat[i].fill_(v + h);
    const double up = loss();
    flat[i].fill_(v - h);
    const double down = loss();
    flat[i].fill_(v);
    const double fd = (up - down) / (2 * h);
    EXPECT_NEAR(g[i].item<double>(), fd, tol * std::max(1.0, std::abs(fd))) << what << "[" << i << "]";
  }
}

/// 0, 1, ..., n − 1: every coordinate of a tensor of n elements.
inline std::vector<int64_t> all_coordinates(int64_t n) {
  std::vector<int64_t> at(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) at[static_cast<size_t>(i)] = i;
  return at;
}

}  // namespace symm::test
