#include "symm/nn/batchnorm.h"

#include "symm/nn/functional.h"

namespace symm::nn {

eBatchNorm1dImpl::eBatchNorm1dImpl(eBatchNorm1dOptions options_) : options(std::move(options_)) { reset(); }

void eBatchNorm1dImpl::reset() {
  const auto& rep = options.in_rep();
  TORCH_CHECK(rep.group(), "eBatchNorm1d: in_rep must be set");
  TORCH_CHECK(options.eps() > 0, "eBatchNorm1d: expected eps > 0, got ", options.eps());
  TORCH_CHECK(!options.momentum() || (*options.momentum() >= 0 && *options.momentum() <= 1),
              "eBatchNorm1d: expected momentum in [0, 1] or none, got ", *options.momentum());
  std::vector<int64_t> copy_of;
  std::vector<double> dims, trivial;
  for (size_t k = 0; k < rep.irreps().size(); ++k) {
    const auto& irrep = rep.group()->irrep(rep.irreps()[k]);
    copy_of.insert(copy_of.end(), irrep.dim, int64_t(k));
    trivial.insert(trivial.end(), irrep.dim, irrep.is_trivial() ? 1.0 : 0.0);
    dims.push_back(irrep.dim);
  }
  TORCH_CHECK(int64_t(copy_of.size()) == rep.size(), "eBatchNorm1d: the irreps of ", rep.name(), " add up to ",
              copy_of.size(), " dimensions, but the representation has ", rep.size());
  copy_of_ = torch::tensor(copy_of, torch::kInt64);
  const auto q = to_tensor(rep.change_of_basis());
  // Regular copies have Q block diagonal, one |G|×|G| block per copy: batch_norm_train then multiplies by the
  // blocks alone.
  const int64_t b = rep.group()->order(), blocks = rep.size() / b;
  auto basis = q.unsqueeze(0);
  if (blocks > 1 && rep.size() % b == 0) {
    const auto diagonal = q.view({blocks, b, blocks, b}).diagonal(0, 0, 2).permute({2, 0, 1}).contiguous();
    if (torch::equal(torch::block_diag(diagonal.unbind(0)), q)) basis = diagonal;
  }
  constants_ = Constants({q, basis, torch::tensor(dims, torch::kFloat64), torch::tensor(trivial, torch::kFloat64)});
  affine = options.affine() ? register_module("affine", eAffine(eAffineOptions(rep).bias(true))) : eAffine(nullptr);
  if (options.track_running_stats()) {
    running_mean = register_buffer("running_mean", torch::zeros({rep.size()}));
    running_var = register_buffer("running_var", torch::ones({num_copies()}));
    // Shape (1), not torch's 0-dim: symm::load reads every stored tensor as a vector or matrix.
    num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({1}, torch::kInt64));
  } else {
    running_mean = running_var = num_batches_tracked = torch::Tensor();
  }
  reset_parameters();
}

void eBatchNorm1dImpl::reset_running_stats() {
  if (!options.track_running_stats()) return;
  torch::NoGradGuard no_grad;
  running_mean.zero_();
  running_var.fill_(1);
  num_batches_tracked.zero_();
}

void eBatchNorm1dImpl::reset_parameters() {
  reset_running_stats();
  if (affine) affine->reset_parameters();
}

torch::Tensor eBatchNorm1dImpl::forward(const torch::Tensor& x) {
  const auto c = options.in_rep().size();
  TORCH_CHECK(x.defined() && (x.dim() == 2 || x.dim() == 3), "eBatchNorm1d: expected an input (B, ", c, ") or (B, ", c,
              ", T), got ", x.defined() ? x.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(x.size(1) == c, "eBatchNorm1d: expected ", c, " channels (the representation's size) in dimension 1, got shape ",
              x.sizes());
  TORCH_CHECK(x.is_floating_point(), "eBatchNorm1d: expected a floating-point input, got ", x.scalar_type());
  if (running_mean.defined()) check_device_and_dtype("eBatchNorm1d", x, running_mean);
  const int64_t n = x.numel() / c;
  TORCH_CHECK(!is_training() || n > 1, "eBatchNorm1d: expected more than 1 value per channel when training, got input size ",
              x.sizes());
  const auto& k = constants_.get(x);
  if (copy_of_.device() != x.device()) copy_of_ = copy_of_.to(x.device());
  if (is_training() || !options.track_running_stats()) {
    const auto bias = affine ? affine->bias_vector() : torch::Tensor();
    auto [y, mean, var] = functional::batch_norm_train(x, k[1], copy_of_, k[2], k[3],
                                                       affine ? affine->scale_dof : torch::Tensor(), bias, options.eps());
    if (is_training() && options.track_running_stats()) {
      torch::NoGradGuard no_grad;
      num_batches_tracked.add_(1);
      const double m = options.momentum() ? *options.momentum() : 1.0 / num_batches_tracked.item<double>();
      running_mean.mul_(1 - m).add_(mean, m);
      // torch's running variance is the unbiased one.
      running_var.mul_(1 - m).add_(var * (double(n) / double(n - 1)), m);
    }
    return y;
  }
  const auto& q = k[0];
  const auto flat = x.dim() == 3 ? x.transpose(1, 2).reshape({-1, c}) : x;  // (N, C)
  auto y = torch::matmul(torch::matmul(flat - running_mean, q) * torch::rsqrt(running_var + options.eps()).index_select(0, copy_of_),
                         q.t());
  if (affine) y = affine(y);
  return x.dim() == 3 ? y.view({x.size(0), x.size(2), c}).transpose(1, 2) : y;
}

void eBatchNorm1dImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eBatchNorm1d(rep=" << options.in_rep().name() << ", copies=" << num_copies() << ", eps=" << options.eps()
         << ", momentum=";
  if (options.momentum()) stream << *options.momentum(); else stream << "none";
  stream << ", affine=" << (options.affine() ? "true" : "false")
         << ", track_running_stats=" << (options.track_running_stats() ? "true" : "false") << ")";
}

}  // namespace symm::nn
