#include "symm/nn/normalization.h"

#include <algorithm>
#include <cmath>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <torch/version.h>

#include "isotypic_layout.h"

namespace symm::nn {

namespace {

// Below this norm the invariant part of the all-ones direction is taken to be zero: no centring.
constexpr double kNoCentre = 1e-9;

void check_rep_and_eps(const char* module, const Representation& rep, double eps) {
  TORCH_CHECK(rep.group(), module, ": in_rep must be set");
  TORCH_CHECK(eps > 0, module, ": eps must be positive, got ", eps);
}

torch::Tensor in_float_if_reduced(const torch::Tensor& x) {
  const auto t = x.scalar_type();
  return t == torch::kHalf || t == torch::kBFloat16 ? x.to(torch::kFloat) : x;
}

// Code built for baseline x86-64 (SSE2) gets an AVX2 clone chosen at load time, as LibTorch's own kernels do.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SYMM_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#else
#define SYMM_AVX2_CLONE
#endif

constexpr int64_t kRmsBlock = 256;

/// Columns [c0, c0 + n) of rms_over_rows.
template <typename T>
SYMM_AVX2_CLONE void rms_block(const T* x, T* y, T* r, int64_t rows, int64_t cols, int64_t c0, int64_t n, double eps) {
  double sum[kRmsBlock] = {};
  for (int64_t i = 0; i < rows; ++i) {
    const T* xi = x + i * cols + c0;
    for (int64_t j = 0; j < n; ++j) sum[j] += double(xi[j]) * double(xi[j]);
  }
  for (int64_t j = 0; j < n; ++j) r[c0 + j] = T(1.0 / std::sqrt(sum[j] / double(rows) + eps));
  for (int64_t i = 0; i < rows; ++i) {
    const T* xi = x + i * cols + c0;
    T* yi = y + i * cols + c0;
    for (int64_t j = 0; j < n; ++j) yi[j] = xi[j] * r[c0 + j];
  }
}

/// y = x·r and r = 1/sqrt(mean of x² over the rows + eps) for x (rows, cols) contiguous on the CPU, the
/// isotypic (D, N) layout: one pass per block of columns on LibTorch's threads. Across rows, LibTorch 1.13's
/// linalg_vector_norm took 471 µs at D=384, N=512 (one thread); square, mean, rsqrt and mul were four
/// passes whose reduction ran on one thread.
template <typename T>
void rms_over_rows(const T* x, T* y, T* r, int64_t rows, int64_t cols, double eps) {
  at::parallel_for(0, (cols + kRmsBlock - 1) / kRmsBlock, 1, [&](int64_t first, int64_t last) {
    for (int64_t block = first; block < last; ++block) {
      const int64_t c0 = block * kRmsBlock;
      rms_block(x, y, r, rows, cols, c0, std::min(kRmsBlock, cols - c0), eps);
    }
  });
}

// x / sqrt(mean(x², dim) + eps); the mean square is invariant because ρ is orthogonal. Its own backward,
// dx = r·(g − y·mean(g·y)) with r = 1/sqrt(mean(x²) + eps) and y = x·r, makes three passes over x where
// autograd through norm, square, rsqrt and mul made seven (2.9x faster at D=64 on the CPU; LibTorch 1.13
// has no fused kernel). Reduced precision is reduced in float, as LibTorch's rms_norm does.
struct RMSNormalise : torch::autograd::Function<RMSNormalise> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, int64_t dim, double eps) {
    const auto xf = in_float_if_reduced(x);
    torch::Tensor r, y;
    if (dim == 0 && xf.dim() == 2 && xf.device().is_cpu() && xf.is_contiguous() &&
        (xf.scalar_type() == torch::kFloat || xf.scalar_type() == torch::kDouble)) {
      // The isotypic (D, N) layout.
      y = torch::empty_like(xf);
      r = torch::empty({1, xf.size(1)}, xf.options());
      AT_DISPATCH_FLOATING_TYPES(xf.scalar_type(), "rms_over_rows", [&] {
        rms_over_rows(xf.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), xf.size(0), xf.size(1), eps);
      });
    } else {
      r = at::linalg_vector_norm(xf, 2, {dim}, /*keepdim=*/true).square_().div_(double(x.size(dim))).add_(eps).rsqrt_();
      y = xf * r;
    }
    ctx->save_for_backward({x, y, r});
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["eps"] = eps;
    return y.to(x.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto dim = ctx->saved_data["dim"].toInt();
    auto y = saved[1], r = saved[2];
    const auto g = grads[0].to(y.scalar_type());
    if (torch::GradMode::is_enabled()) {
      // create_graph: the same formula from x through differentiable ops, so higher derivatives are exact.
      const auto& x = saved[0];
      const auto xf = in_float_if_reduced(x);
      r = torch::rsqrt(xf.square().mean(dim, /*keepdim=*/true) + ctx->saved_data["eps"].toDouble());
      y = xf * r;
      return {((g - y * (g * y).mean(dim, true)) * r).to(grads[0].scalar_type()), {}, {}};
    }
    return {torch::addcmul(g, y, (g * y).mean(dim, true), -1).mul_(r).to(grads[0].scalar_type()), {}, {}};
  }
};

torch::Tensor rms_normalise(const torch::Tensor& x, int64_t dim, double eps) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  // LibTorch's fused kernel where it has one (CUDA); not measured against the function above there.
  if (x.is_cuda() && (dim == -1 || dim == x.dim() - 1)) return at::rms_norm(x, {x.size(-1)}, c10::nullopt, eps);
#endif
  return RMSNormalise::apply(x, dim, eps);
}

}  // namespace

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
  return rms_normalise(x, -1, options.eps());
}

torch::Tensor eRMSNormImpl::forward(const torch::Tensor& x) {
  const auto y = normalise(x);
  return affine ? affine->forward(y) : y;
}

torch::Tensor eRMSNormImpl::normalise_isotypic(const torch::Tensor& z, const detail::IsotypicLayout&) {
  return rms_normalise(z, 0, options.eps());
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
  // u = F Fᵀ 1 / |F Fᵀ 1|: invariant, and 1/sqrt(D) times the all-ones vector when every channel is fixed.
  const Eigen::MatrixXd f = rep.invariant_basis();
  const Eigen::VectorXd v = f * (f.transpose() * Eigen::VectorXd::Ones(rep.size()));
  const double norm = v.norm();
  constants_ = norm > kNoCentre * std::sqrt(double(rep.size())) ? Constants({to_tensor(Eigen::VectorXd(v / norm))}) : Constants();
  affine = options.equiv_affine()
               ? register_module("affine", eAffine(eAffineOptions(rep).bias(options.bias())))
               : eAffine(nullptr);
}

void eLayerNormImpl::reset_parameters() {
  if (affine) affine->reset_parameters();
}

torch::Tensor eLayerNormImpl::normalise(const torch::Tensor& x) {
  check_features("eLayerNorm", x, options.in_rep().size());
  torch::Tensor centred = x;
  if (constants_.size() > 0) {
    const auto& u = constants_.get(x)[0];
    centred = x - torch::matmul(x, u).unsqueeze(-1) * u;
  }
  return rms_normalise(centred, -1, options.eps());
}

torch::Tensor eLayerNormImpl::forward(const torch::Tensor& x) {
  const auto y = normalise(x);
  return affine ? affine->forward(y) : y;
}

torch::Tensor eLayerNormImpl::normalise_isotypic(const torch::Tensor& z, const detail::IsotypicLayout& layout) {
  torch::Tensor centred = z;
  if (constants_.size() > 0) {
    const auto u = layout.to_isotypic(constants_.get(z)[0].view({1, -1}));  // (D, 1)
    centred = z - u * torch::mm(u.t(), z);
  }
  return rms_normalise(centred, 0, options.eps());
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
