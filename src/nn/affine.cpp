#include "symm/nn/affine.h"

#include "isotypic_layout.h"

#include <cmath>

namespace symm::nn {

namespace {

// Entries of Q below this are structural zeros when deciding whether the scaling is elementwise.
constexpr double kZero = 1e-12;

// Irrep copy of each column of Q.
std::vector<int64_t> column_copies(const Representation& rep) {
  std::vector<int64_t> out;
  out.reserve(rep.size());
  for (size_t k = 0; k < rep.irreps().size(); ++k) out.insert(out.end(), rep.group()->irrep(rep.irreps()[k]).dim, int64_t(k));
  return out;
}

}  // namespace

eAffineImpl::eAffineImpl(eAffineOptions options_) : options(std::move(options_)) { reset(); }

void eAffineImpl::reset() {
  const auto& rep = options.rep();
  TORCH_CHECK(rep.group(), "eAffine: rep must be set");
  const Eigen::MatrixXd& q = rep.change_of_basis();
  const auto d = rep.size();
  const auto copies = static_cast<int64_t>(rep.irreps().size());

  const auto column_copy = column_copies(rep);
  TORCH_CHECK(static_cast<int64_t>(column_copy.size()) == d, "eAffine: the irreps of ", rep.name(), " add up to ",
              column_copy.size(), " dimensions, but the representation has ", d);

  // Elementwise iff every channel (row of Q) lies in a single irrep copy: then Q_k Q_kᵀ is a diagonal 0/1
  // projector for every copy k and Q·diag(α)·Qᵀ = diag(α of each channel's copy).
  std::vector<int64_t> channel_copy(d);
  diagonal_ = true;
  for (int64_t i = 0; i < d && diagonal_; ++i) {
    Eigen::Index best = 0;
    q.row(i).cwiseAbs().maxCoeff(&best);
    channel_copy[i] = column_copy[best];
    for (int64_t c = 0; c < d; ++c) {
      if (column_copy[c] != channel_copy[i] && std::abs(q(i, c)) > kZero) {
        diagonal_ = false;
        break;
      }
    }
  }
  copy_of_ = torch::tensor(diagonal_ ? channel_copy : column_copy, torch::kInt64);
  constants_ = Constants({to_tensor(q), to_tensor(rep.invariant_basis())});

  num_fix_ = rep.invariant_basis().cols();
  const auto n_fix = num_fix_;
  if (options.learnable()) {
    scale_dof = register_parameter("scale_dof", torch::empty({copies}));
    bias_dof = options.bias() && n_fix > 0 ? register_parameter("bias_dof", torch::empty({n_fix})) : torch::Tensor();
  } else {
    scale_dof = torch::Tensor();
    bias_dof = torch::Tensor();
  }
  scale_cache_.clear();
  bias_cache_.clear();
  reset_parameters();
}

void eAffineImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  if (scale_dof.defined()) scale_dof.fill_(1.0);
  if (bias_dof.defined()) bias_dof.zero_();
}

NamedConstants eAffineImpl::functional_constants() const {
  const auto& c = constants_.masters();
  return {{"change_of_basis", c[0]}, {"fix", c[1]}, {"copy_of", copy_of_.cpu()}, {"diagonal", torch::tensor(diagonal_)}};
}

int64_t eAffineImpl::num_copies() const { return static_cast<int64_t>(options.rep().irreps().size()); }

int64_t eAffineImpl::num_fix() const { return num_fix_; }

torch::Tensor eAffineImpl::expand(const torch::Tensor& scale) {
  if (copy_of_.device() != scale.device()) {
    c10::InferenceMode normal(false);  // kept for later forwards, which may save it for backward
    copy_of_ = copy_of_.to(scale.device());
  }
  return scale.index_select(scale.dim() - 1, copy_of_);
}

torch::Tensor eAffineImpl::channel_scale() {
  if (!use_eval_cache(is_training(), {scale_dof})) return expand(scale_dof);
  return scale_cache_.get({scale_dof}, [&] { return expand(scale_dof); });
}

torch::Tensor eAffineImpl::synthesize_scale_matrix() const {
  const auto& q = constants_.get(scale_dof)[0];
  const auto copy_of = copy_of_.device() == scale_dof.device() ? copy_of_ : copy_of_.to(scale_dof.device());
  return torch::matmul(q * scale_dof.index_select(0, copy_of), q.t());
}

torch::Tensor eAffineImpl::scale_matrix() {
  TORCH_CHECK(scale_dof.defined(), "eAffine::scale_matrix: the module is not learnable; its scales are given to forward");
  if (diagonal_) return torch::diag(channel_scale());
  if (!use_eval_cache(is_training(), {scale_dof})) return synthesize_scale_matrix();
  return scale_cache_.get({scale_dof}, [&] { return synthesize_scale_matrix(); });
}

torch::Tensor eAffineImpl::bias_vector() {
  TORCH_CHECK(options.learnable(), "eAffine::bias_vector: the module is not learnable; its bias is given to forward");
  if (!bias_dof.defined()) return {};
  auto compute = [&] { return torch::mv(constants_.get(bias_dof)[1], bias_dof); };
  if (!use_eval_cache(is_training(), {bias_dof})) return compute();
  return bias_cache_.get({bias_dof}, compute);
}

void eAffineImpl::check_film(const char* what, const torch::Tensor& t, int64_t size, const torch::Tensor& x) const {
  TORCH_CHECK(t.dim() >= 1 && t.size(-1) == size, "eAffine: expected ", what, " with last dimension ", size, " (",
              what == std::string("scale") ? "one per irrep copy" : "the dimension of Fix(rho)", "), got shape ",
              t.sizes());
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), "eAffine: ", what, " has dtype ", t.scalar_type(),
              " but the input has ", x.scalar_type());
  bool broadcasts = t.dim() <= x.dim();
  for (int64_t i = 2; broadcasts && i <= t.dim(); ++i) broadcasts = t.size(-i) == 1 || t.size(-i) == x.size(-i);
  TORCH_CHECK(broadcasts, "eAffine: ", what, " of shape ", t.sizes(), " does not broadcast over the leading dimensions of the input ",
              x.sizes());
}

torch::Tensor eAffineImpl::forward(const torch::Tensor& x, const torch::Tensor& scale, const torch::Tensor& bias) {
  check_features("eAffine", x, options.rep().size());
  if (options.learnable()) {
    check_device_and_dtype("eAffine", x, scale_dof);
  } else {
    TORCH_CHECK(scale.defined(), "eAffine: learnable(false), so forward needs a scale of shape [..., ", num_copies(),
                "] (one per irrep copy)");
    TORCH_CHECK(bias.defined() || !options.bias() || num_fix() == 0, "eAffine: learnable(false) with bias, so forward needs a bias of shape [..., ",
                num_fix(), "] (coordinates in Fix(rho))");
  }
  TORCH_CHECK(!bias.defined() || options.bias(), "eAffine: a bias was given but the module was built with bias(false)");
  if (scale.defined()) check_film("scale", scale, num_copies(), x);
  if (bias.defined()) check_film("bias", bias, num_fix(), x);

  // Bias: given coordinates (FiLM), the learned vector, or none.
  torch::Tensor b;
  if (bias.defined()) {
    if (num_fix() > 0) b = torch::matmul(bias, constants_.get(x)[1].t());
  } else if (options.learnable()) {
    b = bias_vector();
  }

  torch::Tensor y;
  if (diagonal_) {
    const auto s = scale.defined() ? expand(scale) : channel_scale();
    y = b.defined() ? torch::addcmul(b, x, s) : x * s;
  } else if (scale.defined()) {
    const auto& q = constants_.get(x)[0];
    y = torch::matmul(torch::matmul(x, q) * expand(scale), q.t());
    if (b.defined()) y = y + b;
  } else {
    // S is symmetric, so x·Sᵀ = x·S.
    y = torch::nn::functional::linear(x, scale_matrix(), b);
  }
  return y;
}

torch::Tensor eAffineImpl::forward_isotypic(const torch::Tensor& z, const detail::IsotypicLayout& layout) {
  TORCH_CHECK(options.learnable(), "eAffine::forward_isotypic: the module is not learnable");
  const auto s = scale_dof.index_select(0, layout.copy_of_row(z.device())).unsqueeze(1);
  const auto b = layout.invariant(bias_dof);
  return b.defined() ? torch::addcmul(b.unsqueeze(1), z, s) : z * s;
}

void eAffineImpl::set_dense(const torch::Tensor& weight, const torch::Tensor& bias) {
  const auto d = options.rep().size();
  TORCH_CHECK(options.learnable(), "eAffine::set_dense: the module is not learnable; its scales are given to forward");
  TORCH_CHECK(weight.defined() && weight.dim() == 1 && weight.size(0) == d, "eAffine::set_dense: expected a weight of shape [",
              d, "], got ", weight.defined() ? weight.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(!bias.defined() || options.bias(), "eAffine::set_dense: a bias was given but the module was built with bias(false)");
  torch::NoGradGuard no_grad;
  // Closest Q·diag(α)·Qᵀ to diag(w) in Frobenius norm: α_k = Σ_{c ∈ copy k} Σ_i Q_ic² w_i / dim_k, the mean
  // of the channels' scales when the scaling is elementwise.
  const auto& c = constants_.get(torch::kCPU, torch::kFloat64);
  const auto w = weight.detach().to(torch::kCPU, torch::kFloat64);
  const auto per_column = torch::mv(c[0].square().t(), w);
  const auto copy_of_column = torch::tensor(column_copies(options.rep()), torch::kInt64);
  const auto sums = torch::zeros({num_copies()}, torch::kFloat64).index_add_(0, copy_of_column, per_column);
  const auto dims = torch::zeros({num_copies()}, torch::kFloat64).index_add_(0, copy_of_column, torch::ones({d}, torch::kFloat64));
  scale_dof.copy_(sums / dims);
  if (bias.defined() && bias_dof.defined()) {
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == d, "eAffine::set_dense: expected a bias of shape [", d, "], got ", bias.sizes());
    bias_dof.copy_(torch::mv(c[1].t(), bias.detach().to(torch::kCPU, torch::kFloat64)));
  }
}

void eAffineImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eAffine(rep=" << options.rep().name() << ", copies=" << num_copies() << ", fix=" << num_fix()
         << ", learnable=" << (options.learnable() ? "true" : "false") << ", bias=" << (options.bias() ? "true" : "false")
         << ", diagonal=" << (diagonal_ ? "true" : "false") << ")";
}

}  // namespace symm::nn
