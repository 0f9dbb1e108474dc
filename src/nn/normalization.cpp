#include "symm/nn/normalization.h"

#include <cmath>

#include "symm/nn/functional.h"

#include "isotypic_layout.h"

namespace symm::nn {

namespace {

// Below this norm the invariant part of the all-ones direction is taken to be zero: no centring.
constexpr double kNoCentre = 1e-9;

void check_rep_and_eps(const char* module, const Representation& rep, double eps) {
  TORCH_CHECK(rep.group(), module, ": in_rep must be set");
  TORCH_CHECK(eps > 0, module, ": eps must be positive, got ", eps);
}

// u = F Fᵀ 1 / |F Fᵀ 1|: invariant, and 1/sqrt(D) times the all-ones vector when every channel is fixed.
// Undefined when the all-ones direction has no invariant part.
torch::Tensor centre(const Representation& rep) {
  const Eigen::MatrixXd f = rep.invariant_basis();
  const Eigen::VectorXd v = f * (f.transpose() * Eigen::VectorXd::Ones(rep.size()));
  const double norm = v.norm();
  return norm > kNoCentre * std::sqrt(double(rep.size())) ? to_tensor(Eigen::VectorXd(v / norm)) : torch::Tensor();
}

}  // namespace

namespace functional {

NamedConstants layer_norm_constants(const Representation& rep) {
  TORCH_CHECK(rep.group(), "layer_norm_constants: rep must be set");
  const auto u = centre(rep);
  if (!u.defined()) return {};
  return {{"centre", u}};
}

}  // namespace functional

eRMSNormImpl::eRMSNormImpl(eRMSNormOptions options_) : options(std::move(options_)) { reset(); }

void eRMSNormImpl::reset() {
  check_rep_and_eps("eRMSNorm", options.in_rep(), options.eps());
  affine = options.equiv_affine() ? register_module("affine", eAffine(eAffineOptions(options.in_rep()).bias(false)))
                                  : eAffine(nullptr);
}

void eRMSNormImpl::reset_parameters() {
  if (affine) affine->reset_parameters();
}

torch::Tensor eRMSNormImpl::normalise(const torch::Tensor& x) {
  check_features("eRMSNorm", x, options.in_rep().size());
  return functional::rms_normalise(x, -1, options.eps());
}

torch::Tensor eRMSNormImpl::forward(const torch::Tensor& x) {
  const auto y = normalise(x);
  return affine ? affine->forward(y) : y;
}

torch::Tensor eRMSNormImpl::normalise_isotypic(const torch::Tensor& z, const detail::IsotypicLayout&) {
  return functional::rms_normalise(z, 0, options.eps());
}

torch::Tensor eRMSNormImpl::forward_isotypic(const torch::Tensor& z, const detail::IsotypicLayout& layout) {
  const auto y = normalise_isotypic(z, layout);
  return affine ? affine->forward_isotypic(y, layout) : y;
}

void eRMSNormImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eRMSNorm(in=" << options.in_rep().name() << ", eps=" << options.eps()
         << ", equiv_affine=" << (options.equiv_affine() ? "true" : "false") << ")";
}

eLayerNormImpl::eLayerNormImpl(eLayerNormOptions options_) : options(std::move(options_)) { reset(); }

void eLayerNormImpl::reset() {
  const auto& rep = options.in_rep();
  check_rep_and_eps("eLayerNorm", rep, options.eps());
  const auto u = centre(rep);
  constants_ = u.defined() ? Constants({u}) : Constants();
  affine = options.equiv_affine()
               ? register_module("affine", eAffine(eAffineOptions(rep).bias(options.bias())))
               : eAffine(nullptr);
}

void eLayerNormImpl::reset_parameters() {
  if (affine) affine->reset_parameters();
}

c10::optional<torch::Tensor> eLayerNormImpl::centre_vector(const torch::Tensor& x) {
  if (constants_.size() == 0) return c10::nullopt;
  return constants_.get(x)[0];
}

torch::Tensor eLayerNormImpl::normalise(const torch::Tensor& x) {
  check_features("eLayerNorm", x, options.in_rep().size());
  return functional::layer_normalise(x, centre_vector(x), -1, options.eps());
}

torch::Tensor eLayerNormImpl::forward(const torch::Tensor& x) {
  const auto y = normalise(x);
  return affine ? affine->forward(y) : y;
}

torch::Tensor eLayerNormImpl::normalise_isotypic(const torch::Tensor& z, const detail::IsotypicLayout& layout) {
  c10::optional<torch::Tensor> u;
  if (constants_.size() > 0) u = layout.to_isotypic(constants_.get(z)[0].view({1, -1})).view({-1});
  return functional::layer_normalise(z, u, 0, options.eps());
}

torch::Tensor eLayerNormImpl::forward_isotypic(const torch::Tensor& z, const detail::IsotypicLayout& layout) {
  const auto y = normalise_isotypic(z, layout);
  return affine ? affine->forward_isotypic(y, layout) : y;
}

void eLayerNormImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eLayerNorm(in=" << options.in_rep().name() << ", eps=" << options.eps()
         << ", equiv_affine=" << (options.equiv_affine() ? "true" : "false")
         << ", bias=" << (options.bias() ? "true" : "false")
         << ", centred=" << (constants_.size() > 0 ? "true" : "false") << ")";
}

}  // namespace symm::nn
