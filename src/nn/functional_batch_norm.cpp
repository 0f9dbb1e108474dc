// symm::nn::functional::batch_norm_train (torch.ops.symm.batch_norm_train): eBatchNorm1d's training
// normalisation. The composition of ATen operators is the reference; on the CPU in plain eager mode a hand
// kernel with its own backward runs instead, over (batch, block) slices of Q's diagonal blocks: a step makes two
// products with the blocks each way and a few passes over x, where the composition's autograd graph made about
// twenty operators' passes (square, mean, index_add, the scales, the products and their backward).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include "symm/nn/functional.h"

#include "eager.h"
#include "parallel_grain.h"

namespace symm::nn::functional {

namespace {

// x86-64-v3 (AVX2 with FMA) and baseline clones of the loops below, chosen at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SYMM_FMA_CLONE __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SYMM_FMA_CLONE
#endif

// Blocks up to this size run in the loops below; larger ones (a representation without equal diagonal blocks,
// whose Q is one dense block) in the composition's BLAS products.
constexpr int64_t kBatchNormLoopBlock = 64;

/// y = m·x + shift (shift may be null) for one slice: m (b, b) row-major, x and y (b, inner) row-major. Tiles of 4 rows by two 32-byte vectors of columns stay in registers over the sum on j
/// (8 multiply-adds per two loads); the last rows and columns one at a time. A row at a time through memory ran
/// at a third of BLAS's speed (D8: b 16, inner 64).
template <typename T>
SYMM_FMA_CLONE void block_product(const T* __restrict m, const T* __restrict x, const T* __restrict shift, T* __restrict y,
                                  int64_t b, int64_t inner) {
  typedef T V __attribute__((vector_size(32)));
  constexpr int64_t L = 32 / sizeof(T), R = 4;
  auto tile = [&](int64_t i, int64_t rows, int64_t t0) {  // rows <= R, columns [t0, t0 + 2L)
    V acc[R][2];
    for (int64_t r = 0; r < rows; ++r) {
      const T s = shift ? shift[i + r] : T(0);
      acc[r][0] = V{} + s;
      acc[r][1] = V{} + s;
    }
    for (int64_t j = 0; j < b; ++j) {
      V x0, x1;
      __builtin_memcpy(&x0, x + j * inner + t0, sizeof(V));
      __builtin_memcpy(&x1, x + j * inner + t0 + L, sizeof(V));
      for (int64_t r = 0; r < rows; ++r) {
        const T mr = m[(i + r) * b + j];
        acc[r][0] += mr * x0;
        acc[r][1] += mr * x1;
      }
    }
    for (int64_t r = 0; r < rows; ++r) __builtin_memcpy(y + (i + r) * inner + t0, &acc[r], sizeof(acc[r]));  // unaligned
  };
  int64_t t0 = 0;
  for (; t0 + 2 * L <= inner; t0 += 2 * L) {
    int64_t i = 0;
    for (; i + R <= b; i += R) tile(i, R, t0);
    for (; i < b; ++i) tile(i, 1, t0);
  }
  if (t0 == inner) return;
  for (int64_t i = 0; i < b; ++i) {  // the last columns (all of them for (B, C) inputs, inner 1)
    T* yi = y + i * inner;
    for (int64_t t = t0; t < inner; ++t) yi[t] = shift ? shift[i] : T(0);
    for (int64_t j = 0; j < b; ++j) {
      const T mij = m[i * b + j];
      for (int64_t t = t0; t < inner; ++t) yi[t] += mij * x[j * inner + t];
    }
  }
}

/// Σ_t u[i, t]·v[i, t] added to out[i] for each row of two (b, inner) slices.
template <typename T>
SYMM_FMA_CLONE void add_row_dots(const T* __restrict u, const T* __restrict v, double* out, int64_t b, int64_t inner) {
  for (int64_t i = 0; i < b; ++i) {
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t t = 0; t < inner; ++t) sum += u[i * inner + t] * v[i * inner + t];
    out[i] += double(sum);
  }
}

template <typename T>
SYMM_FMA_CLONE void add_row_sums(const T* __restrict u, double* out, int64_t b, int64_t inner) {
  for (int64_t i = 0; i < b; ++i) {
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t t = 0; t < inner; ++t) sum += u[i * inner + t];
    out[i] += double(sum);
  }
}

/// x (outer, k·b, inner) contiguous: slice (o, kk) is the (b, inner) matrix of block kk in sample o.
struct BnShape {
  int64_t outer, k, b, inner;
  int64_t channels() const { return k * b; }
  int64_t count() const { return outer * inner; }  // N, the values per channel
  int64_t slice(int64_t o, int64_t kk) const { return (o * k + kk) * b * inner; }
};

BnShape bn_shape(const torch::Tensor& x, const torch::Tensor& basis) {
  return {x.size(0), basis.size(0), basis.size(1), x.dim() == 3 ? x.size(2) : 1};
}

/// Runs f(kk) over the blocks: each task owns whole blocks, so per-channel sums need no merging.
template <typename F>
void for_blocks(const BnShape& s, const F& f) {
  at::parallel_for(0, s.k, detail::parallel_grain(s.outer * s.b * s.b * s.inner), [&](int64_t first, int64_t last) {
    for (int64_t kk = first; kk < last; ++kk) f(kk);
  });
}

template <typename F>
void for_slices(const BnShape& s, const F& f) {
  at::parallel_for(0, s.outer * s.k, detail::parallel_grain(s.b * s.b * s.inner), [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) f(i / s.k, i % s.k);
  });
}

/// Q·v blockwise for v (k·b).
torch::Tensor blocks_times(const torch::Tensor& basis, const torch::Tensor& v) {
  return torch::bmm(basis, v.view({basis.size(0), basis.size(1), 1})).view({-1});
}

torch::Tensor blocks_t_times(const torch::Tensor& basis, const torch::Tensor& v) {
  return torch::bmm(basis.transpose(1, 2), v.view({basis.size(0), basis.size(1), 1})).view({-1});
}

// The reference: the same map from ATen operators, through which autograd, torch.func and torch.compile go.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> batch_norm_composite(const torch::Tensor& x, const torch::Tensor& basis,
                                                                             const torch::Tensor& copy_of, const torch::Tensor& dims,
                                                                             const torch::Tensor& trivial, const torch::Tensor& weight,
                                                                             const torch::Tensor& bias, double eps) {
  const int64_t k = basis.size(0), b = basis.size(1);
  const auto x3 = x.dim() == 3 ? x : x.unsqueeze(-1);  // (B, C, T)
  const auto x4 = x3.unflatten(1, {k, b});              // (B, k, b, T)
  // μ = Q·(trivial ⊙ Qᵀ x̄): the mean projected onto Fix(ρ), whose isotypic coordinates are the trivial ones.
  const auto mu_hat = blocks_t_times(basis, x3.mean(torch::IntArrayRef{0, 2})) * trivial;
  const auto mean = blocks_times(basis, mu_hat);
  const auto z = torch::matmul(basis.transpose(1, 2), x4) - mu_hat.view({k, b, 1});
  const auto var = torch::zeros({dims.size(0)}, x.options()).index_add(0, copy_of, z.square().mean(torch::IntArrayRef{0, 3}).view({-1})) / dims;
  auto scale = torch::rsqrt(var + eps);
  if (weight.defined()) scale = scale * weight;
  // The scales ride on the columns of Q's blocks: no pass over z for them.
  auto y = torch::matmul(basis * scale.index_select(0, copy_of).view({k, 1, b}), z).flatten(1, 2);
  if (bias.defined()) y = y + bias.view({-1, 1});
  // μ and var are statistics for the running averages, without gradient, as the hand kernel's.
  return {x.dim() == 3 ? y : y.squeeze(-1), mean.detach(), var.detach()};
}

/// a ⊙ u + e ⊙ v − c row by row for one slice (per-row coefficients), into w (which may be u).
template <typename T>
SYMM_FMA_CLONE void combine_rows(const T* a, const T* u, const T* e, const T* __restrict v, const T* c, T* w, int64_t b,
                                 int64_t inner) {
  for (int64_t i = 0; i < b; ++i) {
    const T ai = a[i], ei = e[i], ci = c[i];
#pragma omp simd
    for (int64_t t = 0; t < inner; ++t) w[i * inner + t] = ai * u[i * inner + t] + ei * v[i * inner + t] - ci;
  }
}

// In the isotypic coordinates u = Qᵀx of a slice: z = u − μ̂ (μ̂ the mean's trivial coordinates), w = a ⊙ z with
// a = γ_k/√(var_k + ε) on the columns of copy k, y = Q w + β. Two products with the blocks each way: forward
// z = Qᵀx − μ̂ (kept for the backward) and y = (Q·diag(a)) z + β; backward ĝ = Qᵀg and dx = Q du, with
// du = a ⊙ ĝ + e ⊙ z − trivial ⊙ a ⊙ mean(ĝ), e_k = −γ_k H_k / ((var_k + ε)^{3/2} d_k N) and
// H_k = Σ over the copy's columns and the batch of ĝ ⊙ z (the variance's and the centring's terms).
struct BatchNormTrain : torch::autograd::Function<BatchNormTrain> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                                                const torch::Tensor& basis_in, const torch::Tensor& copy_of, const torch::Tensor& dims,
                                                const torch::Tensor& trivial, const torch::Tensor& weight, const torch::Tensor& bias,
                                                double eps) {
    const auto x = x_in.contiguous();
    const auto basis = basis_in.contiguous();
    const auto s = bn_shape(x, basis);
    const double n = double(s.count());
    auto sums = torch::zeros({s.channels()}, x.options().dtype(torch::kFloat64));
    auto square_sums = torch::zeros_like(sums);
    auto z = torch::empty_like(x);
    torch::Tensor mu_hat;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "batch_norm_train", [&] {
      const scalar_t* xp = x.data_ptr<scalar_t>();
      double* sp = sums.data_ptr<double>();
      for_blocks(s, [&](int64_t kk) {
        for (int64_t o = 0; o < s.outer; ++o) add_row_sums(xp + s.slice(o, kk), sp + kk * s.b, s.b, s.inner);
      });
      mu_hat = blocks_t_times(basis, (sums / n).to(x.scalar_type())) * trivial;
      const auto qt = basis.transpose(1, 2).contiguous();
      const auto neg_mu_hat = -mu_hat;
      const scalar_t *qtp = qt.data_ptr<scalar_t>(), *nm = neg_mu_hat.data_ptr<scalar_t>();
      scalar_t* zp = z.data_ptr<scalar_t>();
      double* sq = square_sums.data_ptr<double>();
      for_blocks(s, [&](int64_t kk) {
        for (int64_t o = 0; o < s.outer; ++o) {
          scalar_t* zs = zp + s.slice(o, kk);
          block_product(qtp + kk * s.b * s.b, xp + s.slice(o, kk), nm + kk * s.b, zs, s.b, s.inner);
          add_row_dots(zs, zs, sq + kk * s.b, s.b, s.inner);
        }
      });
    });
    const auto var = torch::zeros({dims.size(0)}, x.options()).index_add(0, copy_of, (square_sums / n).to(x.scalar_type())) / dims;
    const auto inv_std = torch::rsqrt(var + eps);
    const auto a = (inv_std * weight).index_select(0, copy_of);
    const auto qa = (basis * a.view({s.k, 1, s.b})).contiguous();  // Q·diag(a), blockwise
    const auto b = bias.contiguous();
    auto y = torch::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "batch_norm_train", [&] {
      const scalar_t *zp = z.data_ptr<scalar_t>(), *ap = qa.data_ptr<scalar_t>(), *bp = b.data_ptr<scalar_t>();
      scalar_t* yp = y.data_ptr<scalar_t>();
      for_slices(s, [&](int64_t o, int64_t kk) {
        block_product(ap + kk * s.b * s.b, zp + s.slice(o, kk), bp + kk * s.b, yp + s.slice(o, kk), s.b, s.inner);
      });
    });
    const auto mean = blocks_times(basis, mu_hat);
    ctx->save_for_backward({x_in, basis_in, copy_of, dims, trivial, weight, bias, z, inv_std});
    ctx->saved_data["eps"] = eps;
    ctx->mark_non_differentiable({mean, var});
    return {y, mean, var};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto v = ctx->get_saved_variables();
    const auto &x_in = v[0], &basis_in = v[1], &copy_of = v[2], &dims = v[3], &trivial = v[4], &weight = v[5], &bias = v[6];
    const double eps = ctx->saved_data["eps"].toDouble();
    torch::autograd::variable_list out(8);
    if (!grads[0].defined()) return out;
    if (torch::GradMode::is_enabled()) {
      // create_graph: the gradient of the composition, itself differentiable, so higher derivatives are exact.
      std::vector<torch::Tensor> inputs;
      std::vector<size_t> slots;
      for (const size_t i : {size_t(0), size_t(5), size_t(6)})
        if (v[i].requires_grad()) inputs.push_back(v[i]), slots.push_back(i);
      if (inputs.empty()) return out;
      const auto y = std::get<0>(batch_norm_composite(x_in, basis_in, copy_of, dims, trivial, weight, bias, eps));
      const auto g = torch::autograd::grad({y}, inputs, {grads[0]}, /*retain_graph=*/true, /*create_graph=*/true, /*allow_unused=*/true);
      for (size_t i = 0; i < slots.size(); ++i) out[slots[i]] = g[i];
      return out;
    }
    const auto &z = v[7], &inv_std = v[8];
    const auto basis = basis_in.contiguous();
    const auto gy = grads[0].contiguous();
    const auto s = bn_shape(z, basis);
    const auto type = z.scalar_type();
    const double n = double(s.count());
    // ĝ = Qᵀg per slice, its sums and h_c = Σ ĝ_c z_c per isotypic coordinate.
    auto g_hat = torch::empty_like(z);
    auto h = torch::zeros({s.channels()}, z.options().dtype(torch::kFloat64));
    auto g_sums = torch::zeros_like(h);
    const auto qt = basis.transpose(1, 2).contiguous();
    AT_DISPATCH_FLOATING_TYPES(type, "batch_norm_train_backward", [&] {
      const scalar_t *zp = z.data_ptr<scalar_t>(), *gp = gy.data_ptr<scalar_t>(), *qtp = qt.data_ptr<scalar_t>();
      scalar_t* ghp = g_hat.data_ptr<scalar_t>();
      double *hp = h.data_ptr<double>(), *gs = g_sums.data_ptr<double>();
      for_blocks(s, [&](int64_t kk) {
        for (int64_t o = 0; o < s.outer; ++o) {
          const int64_t at = s.slice(o, kk);
          block_product(qtp + kk * s.b * s.b, gp + at, static_cast<const scalar_t*>(nullptr), ghp + at, s.b, s.inner);
          add_row_dots(ghp + at, zp + at, hp + kk * s.b, s.b, s.inner);
          add_row_sums(ghp + at, gs + kk * s.b, s.b, s.inner);
        }
      });
    });
    const auto hk = torch::zeros_like(inv_std).index_add(0, copy_of, h.to(type));
    const auto e = (-inv_std.pow(3) * weight * hk / (dims * n)).index_select(0, copy_of).contiguous();
    const auto a = (inv_std * weight).index_select(0, copy_of).contiguous();
    const auto g_hat_sum = g_sums.to(type);
    const auto c = (trivial * a * g_hat_sum / n).contiguous();
    auto dx = torch::empty_like(z);
    AT_DISPATCH_FLOATING_TYPES(type, "batch_norm_train_backward", [&] {
      const scalar_t *zp = z.data_ptr<scalar_t>(), *qp = basis.data_ptr<scalar_t>(), *ap = a.data_ptr<scalar_t>(),
                     *ep = e.data_ptr<scalar_t>(), *cp = c.data_ptr<scalar_t>();
      scalar_t *ghp = g_hat.data_ptr<scalar_t>(), *dp = dx.data_ptr<scalar_t>();
      for_slices(s, [&](int64_t o, int64_t kk) {
        const int64_t at = s.slice(o, kk), row = kk * s.b;
        combine_rows(ap + row, ghp + at, ep + row, zp + at, cp + row, ghp + at, s.b, s.inner);  // du, over ĝ
        block_product(qp + kk * s.b * s.b, static_cast<const scalar_t*>(ghp + at), static_cast<const scalar_t*>(nullptr), dp + at,
                      s.b, s.inner);
      });
    });
    out[0] = dx.view(x_in.sizes());
    out[5] = inv_std * hk;
    out[6] = blocks_times(basis, g_hat_sum);  // Σ g = Q Σ ĝ
    return out;
  }
};

torch::Tensor defined_or_empty(const c10::optional<torch::Tensor>& t) { return t.has_value() ? *t : torch::Tensor(); }

}  // namespace

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> batch_norm_train(const torch::Tensor& x, const torch::Tensor& basis,
                                                                         const torch::Tensor& copy_of, const torch::Tensor& dims,
                                                                         const torch::Tensor& trivial,
                                                                         const c10::optional<torch::Tensor>& weight,
                                                                         const c10::optional<torch::Tensor>& bias, double eps) {
  TORCH_CHECK(basis.dim() == 3 && basis.size(1) == basis.size(2), "symm::batch_norm_train: expected basis (k, b, b), got shape ",
              basis.sizes());
  const int64_t c = basis.size(0) * basis.size(1);
  TORCH_CHECK((x.dim() == 2 || x.dim() == 3) && x.size(1) == c, "symm::batch_norm_train: expected x (B, ", c, ") or (B, ", c,
              ", T), got shape ", x.sizes());
  TORCH_CHECK(copy_of.dim() == 1 && copy_of.size(0) == c && trivial.dim() == 1 && trivial.size(0) == c && dims.dim() == 1,
              "symm::batch_norm_train: expected copy_of and trivial (", c, ") and dims (copies), got ", copy_of.sizes(), ", ",
              trivial.sizes(), " and ", dims.sizes());
  const auto w = defined_or_empty(weight), b = defined_or_empty(bias);
  const auto type = x.scalar_type();
  auto same_type = [&](const torch::Tensor& t) { return !t.defined() || t.scalar_type() == type; };
  const bool loops = x.device().is_cpu() && (type == torch::kFloat || type == torch::kDouble) &&
                     basis.size(1) <= kBatchNormLoopBlock && same_type(basis) && same_type(trivial) && same_type(dims) &&
                     same_type(w) && same_type(b) && detail::plain_eager(x) && (!w.defined() || detail::plain_eager(w)) &&
                     (!b.defined() || detail::plain_eager(b));
  if (!loops) return batch_norm_composite(x, basis, copy_of, dims, trivial, w, b, eps);
  // The Function takes defined tensors only: a missing weight is ones, a missing bias zeros (neither needs a gradient).
  const auto r = BatchNormTrain::apply(x, basis, copy_of, dims, trivial, w.defined() ? w : torch::ones_like(dims),
                                       b.defined() ? b : torch::zeros_like(trivial), eps);
  return {r[0], r[1], r[2]};
}

}  // namespace symm::nn::functional
