#include "symm/nn/linear.h"

#include <cmath>

namespace symm::nn {

namespace {

torch::Tensor invariant_basis_tensor(const Representation& rep) { return to_tensor(rep.invariant_basis()); }

}  // namespace

eLinearImpl::eLinearImpl(eLinearOptions options_) : options(std::move(options_)) { reset(); }

void eLinearImpl::reset() {
  const auto& in = options.in_rep();
  const auto& out = options.out_rep();
  TORCH_CHECK(in.group() && out.group(), "eLinear: in_rep and out_rep must be set");
  TORCH_CHECK(in.group() == out.group(), "eLinear: in_rep is of group ", in.group()->name(), " but out_rep of ",
              out.group()->name());
  symm::linalg::parse_init_scheme(options.init_scheme());
  basis_ = std::make_shared<symm::linalg::HomBasis>(in, out);
  TORCH_CHECK(basis_->dim() > 0, "eLinear: Hom_G(", in.name(), ", ", out.name(),
              ") is zero-dimensional: no irrep of the output occurs in the input");
  const auto& g = *in.group();
  batches_.clear();
  std::vector<torch::Tensor> master;
  std::vector<torch::Tensor> q_in_all;
  const auto& blocks = basis_->blocks();
  for (size_t i = 0; i < blocks.size();) {
    size_t j = i + 1;
    auto same = [&](const auto& a, const auto& b) {
      return a.endo == b.endo && a.dim == b.dim && a.m_out == b.m_out && a.m_in == b.m_in;
    };
    while (j < blocks.size() && same(blocks[i], blocks[j])) ++j;
    const auto& b0 = blocks[i];
    batches_.push_back({b0.offset, static_cast<int>(j - i), b0.endo, b0.dim, b0.m_out, b0.m_in});
    std::vector<torch::Tensor> psi, q_out, q_in;
    for (size_t k = i; k < j; ++k) {
      std::vector<torch::Tensor> endo;
      for (const auto& e : g.irrep(blocks[k].irrep).endomorphisms) endo.push_back(to_tensor(e));
      psi.push_back(torch::stack(endo));
      q_out.push_back(to_tensor(blocks[k].q_out));
      q_in.push_back(to_tensor(blocks[k].q_in));
      q_in_all.push_back(q_in.back());
    }
    master.push_back(torch::stack(psi));
    master.push_back(torch::stack(q_out));
    i = j;
  }
  master.push_back(torch::cat(q_in_all, 1).t().contiguous());  // (Σ m_in d, D_in)
  master.push_back(invariant_basis_tensor(out));
  constants_ = Constants(std::move(master));

  weight_dof = register_parameter("weight_dof", torch::empty({basis_->dim()}));
  const auto n_fix = out.invariant_basis().cols();
  if (options.bias() && n_fix > 0) {
    bias_dof = register_parameter("bias_dof", torch::empty({n_fix}));
  } else {
    bias_dof = torch::Tensor();
  }
  weight_cache_.clear();
  bias_cache_.clear();
  reset_parameters();
}

void eLinearImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  const auto scheme = symm::linalg::parse_init_scheme(options.init_scheme());
  const auto std = to_tensor(basis_->init_std(scheme)).to(weight_dof.options());
  const bool uniform = scheme == symm::linalg::InitScheme::xavier_uniform || scheme == symm::linalg::InitScheme::kaiming_uniform;
  if (uniform) {
    weight_dof.uniform_(-1.0, 1.0).mul_(std * std::sqrt(3.0));
  } else {
    weight_dof.normal_().mul_(std);
  }
  if (bias_dof.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.in_rep().size()));
    bias_dof.uniform_(-bound, bound);
  }
}

torch::Tensor eLinearImpl::synthesize_weight() const {
  const auto& c = constants_.get(weight_dof);
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < batches_.size(); ++i) {
    const auto& b = batches_[i];
    const auto theta = weight_dof.narrow(0, b.offset, int64_t(b.count) * b.endo * b.m_out * b.m_in)
                           .view({b.count, b.endo, b.m_out, b.m_in});
    // Block of each irrep: Σ_s Θ_s ⊗ Ψ_s, laid out (copy_out, component, copy_in, component).
    torch::Tensor k = b.endo == 1 && b.dim == 1
                          ? theta.view({b.count, b.m_out, b.m_in})
                          : torch::einsum("bsij,bsac->biajc", {theta, c[2 * i]})
                                .reshape({b.count, int64_t(b.m_out) * b.dim, int64_t(b.m_in) * b.dim});
    // Q_out,k · K_k for every block, then side by side along the isotypic input columns.
    parts.push_back(torch::bmm(c[2 * i + 1], k).permute({1, 0, 2}).reshape({c[2 * i + 1].size(1), -1}));
  }
  return torch::matmul(parts.size() == 1 ? parts[0] : torch::cat(parts, 1), c[2 * batches_.size()]);
}

torch::Tensor eLinearImpl::weight() {
  if (is_training()) return synthesize_weight();
  return weight_cache_.get({weight_dof}, [&] { return synthesize_weight(); });
}

torch::Tensor eLinearImpl::bias() {
  if (!bias_dof.defined()) return {};
  auto compute = [&] { return torch::mv(constants_.get(bias_dof).back(), bias_dof); };
  if (is_training()) return compute();
  return bias_cache_.get({bias_dof}, compute);
}

torch::Tensor eLinearImpl::forward(const torch::Tensor& x) {
  check_features("eLinear", x, options.in_rep().size());
  TORCH_CHECK(x.scalar_type() == weight_dof.scalar_type(), "eLinear: input dtype ", x.scalar_type(),
              " differs from the module's ", weight_dof.scalar_type(), "; move the module with ->to(dtype)");
  return torch::nn::functional::linear(x, weight(), bias());
}

void eLinearImpl::set_dense(const torch::Tensor& w, const torch::Tensor& b) {
  const auto out = options.out_rep().size(), in = options.in_rep().size();
  TORCH_CHECK(w.dim() == 2 && w.size(0) == out && w.size(1) == in, "eLinear::set_dense: expected a weight of shape [",
              out, ", ", in, "], got ", w.sizes());
  torch::NoGradGuard no_grad;
  weight_dof.copy_(to_tensor(Eigen::VectorXd(basis_->coefficients(to_eigen(w)))));
  if (b.defined() && bias_dof.defined()) {
    TORCH_CHECK(b.dim() == 1 && b.size(0) == out, "eLinear::set_dense: expected a bias of shape [", out, "], got ", b.sizes());
    bias_dof.copy_(torch::mv(constants_.get(torch::kCPU, torch::kFloat64).back().t(), b.detach().to(torch::kCPU, torch::kFloat64)));
  }
}

void eLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eLinear(in=" << options.in_rep().name() << ", out=" << options.out_rep().name()
         << ", bias=" << (bias_dof.defined() ? "true" : "false") << ", dof=" << basis_->dim() << ")";
}

InvariantBiasImpl::InvariantBiasImpl(InvariantBiasOptions options_) : options(std::move(options_)) { reset(); }

void InvariantBiasImpl::reset() {
  constants_ = Constants({invariant_basis_tensor(options.rep())});
  bias_dof = register_parameter("bias_dof", torch::zeros({options.rep().invariant_basis().cols()}));
  reset_parameters();
}

void InvariantBiasImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  bias_dof.zero_();
}

torch::Tensor InvariantBiasImpl::bias() { return torch::mv(constants_.get(bias_dof)[0], bias_dof); }

torch::Tensor InvariantBiasImpl::forward(const torch::Tensor& x) {
  check_features("InvariantBias", x, options.rep().size());
  if (bias_dof.numel() == 0) return x;
  return x + bias();
}

void InvariantBiasImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::InvariantBias(rep=" << options.rep().name() << ", dof=" << bias_dof.numel() << ")";
}

}  // namespace symm::nn
