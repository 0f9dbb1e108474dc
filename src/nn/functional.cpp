#include "symm/nn/functional.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include <ATen/Dispatch.h>
#include <ATen/FuncTorchTLS.h>
#include <ATen/Parallel.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/version.h>
#if TORCH_VERSION_MAJOR >= 2
#include <ATen/functorch/DynamicLayer.h>
#endif

#include "eager.h"
#include "parallel_grain.h"

namespace symm::nn::functional {

namespace {

[[maybe_unused]] const bool kOperatorsLinked = operators_registered();

bool has_symbolic_sizes(const torch::Tensor& t) {
#if TORCH_VERSION_MAJOR >= 2
  return t.unsafeGetTensorImpl()->has_symbolic_sizes_strides();
#else
  return false;  // LibTorch 1.13 traces with concrete sizes
#endif
}

// A feature extent (static under torch.compile / torch.export, where only batch and sequence extents are
// symbolic): read through sym_size, which a tensor with symbolic sizes allows where size() refuses.
int64_t static_size(const torch::Tensor& t, int64_t d) {
#if TORCH_VERSION_MAJOR >= 2
  return t.sym_size(d).guard_int(__FILE__, __LINE__);
#else
  return t.size(d);
#endif
}

using detail::plain_eager;

struct TileShape { int64_t m_out, m_in, s_out, s_in, r; };

// Up to this many multiply-adds per tile, loops over the tiles beat a matmul: C2's 2x2 tiles (r = 2) made
// the (m_out·m_in, 2)·(2, 4) matmul and the permute into W's layout take 55 µs for a 256x64 weight, as much
// again backward, over five autograd nodes; the loops below take one node, and 23 µs for the 192x64 in_proj
// of C2 m=32 (bench/RESULTS.md).
constexpr int64_t kLoopTile = 64;

// W[(i,a),(j,c)] = Σ_k φ[(i,j),k] E[k,(a,c)]. Row a of E sits in a local array (at most kLoopTile values),
// and S_IN, R > 0 fix s_in and r at compile time, so that the inner loops unroll: 2.5-4x faster than loops
// over run-time sizes that read E in the innermost loop.
template <typename T, int S_IN, int R>
void tiles_to_weight(const T* phi, const T* e, T* w, const TileShape& t) {
  const int64_t s_in = S_IN > 0 ? S_IN : t.s_in, r = R > 0 ? R : t.r;
  const int64_t tile = t.s_out * s_in, row = t.m_in * s_in;
  T ea[kLoopTile];  // E[k, (a, c)] for one a, as (k, c)
  for (int64_t a = 0; a < t.s_out; ++a) {
    for (int64_t k = 0; k < r; ++k)
      for (int64_t c = 0; c < s_in; ++c) ea[k * s_in + c] = e[k * tile + a * s_in + c];
    for (int64_t i = 0; i < t.m_out; ++i) {
      T* out = w + (i * t.s_out + a) * row;
      const T* p = phi + i * t.m_in * r;
      for (int64_t j = 0; j < t.m_in; ++j, p += r, out += s_in) {
        for (int64_t c = 0; c < s_in; ++c) {
          T sum = 0;
          for (int64_t k = 0; k < r; ++k) sum += p[k] * ea[k * s_in + c];
          out[c] = sum;
        }
      }
    }
  }
}

// The adjoint: dφ[(i,j),k] = Σ_{a,c} dW[(i,a),(j,c)] E[k,(a,c)]
template <typename T, int S_IN, int R>
void weight_to_tiles(const T* dw, const T* e, T* dphi, const TileShape& t) {
  const int64_t s_in = S_IN > 0 ? S_IN : t.s_in, r = R > 0 ? R : t.r;
  const int64_t tile = t.s_out * s_in, row = t.m_in * s_in;
  T ea[kLoopTile];
  std::fill(dphi, dphi + t.m_out * t.m_in * r, T(0));
  for (int64_t a = 0; a < t.s_out; ++a) {
    for (int64_t k = 0; k < r; ++k)
      for (int64_t c = 0; c < s_in; ++c) ea[k * s_in + c] = e[k * tile + a * s_in + c];
    for (int64_t i = 0; i < t.m_out; ++i) {
      const T* g = dw + (i * t.s_out + a) * row;
      T* q = dphi + i * t.m_in * r;
      for (int64_t j = 0; j < t.m_in; ++j, q += r, g += s_in) {
        for (int64_t k = 0; k < r; ++k) {
          T sum = 0;
          for (int64_t c = 0; c < s_in; ++c) sum += g[c] * ea[k * s_in + c];
          q[k] += sum;
        }
      }
    }
  }
}

// One of the loops above, with the sizes of regular copies of C2, C3 and C4 fixed at compile time.
template <typename T>
void tile_loops(bool adjoint, const T* in, const T* e, T* out, const TileShape& t) {
  auto run = [&](auto size) {
    constexpr int n = decltype(size)::value;
    adjoint ? weight_to_tiles<T, n, n>(in, e, out, t) : tiles_to_weight<T, n, n>(in, e, out, t);
  };
  const int64_t n = t.s_in == t.r ? t.r : 0;
  if (n == 2) run(std::integral_constant<int, 2>{});
  else if (n == 3) run(std::integral_constant<int, 3>{});
  else if (n == 4) run(std::integral_constant<int, 4>{});
  else run(std::integral_constant<int, 0>{});
}

TileShape tile_shape(const torch::autograd::AutogradContext* ctx) {
  const auto v = ctx->saved_data.at("shape").toIntVector();
  return {v[0], v[1], v[2], v[3], v[4]};
}

// The two loops above as one autograd node (CPU, float and double).
struct TileSynthesis : torch::autograd::Function<TileSynthesis> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& phi, const torch::Tensor& e,
                               std::vector<int64_t> shape) {
    ctx->save_for_backward({e});
    ctx->saved_data["shape"] = shape;
    const TileShape t = tile_shape(ctx);
    auto w = torch::empty({t.m_out * t.s_out, t.m_in * t.s_in}, phi.options());
    const auto p = phi.contiguous();
    const auto ec = e.contiguous();
    AT_DISPATCH_FLOATING_TYPES(phi.scalar_type(), "TileSynthesis", [&] {
      tile_loops(false, p.data_ptr<scalar_t>(), ec.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), t);
    });
    return w;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto e = ctx->get_saved_variables()[0];
    const TileShape t = tile_shape(ctx);
    if (torch::GradMode::is_enabled()) {
      // create_graph: the same adjoint through differentiable ops, so higher derivatives stay exact.
      const auto dw = grads[0].reshape({t.m_out, t.s_out, t.m_in, t.s_in}).permute({0, 2, 1, 3});
      return {torch::mm(dw.reshape({t.m_out * t.m_in, t.s_out * t.s_in}), e.t()), {}, {}};
    }
    const auto dw = grads[0].contiguous();
    const auto ec = e.contiguous();
    auto dphi = torch::empty({t.m_out * t.m_in, t.r}, dw.options());
    AT_DISPATCH_FLOATING_TYPES(dw.scalar_type(), "TileSynthesis", [&] {
      tile_loops(true, dw.data_ptr<scalar_t>(), ec.data_ptr<scalar_t>(), dphi.data_ptr<scalar_t>(), t);
    });
    return {dphi, {}, {}};
  }
};

torch::Tensor in_float_if_reduced(const torch::Tensor& x) {
  const auto t = x.scalar_type();
  return t == torch::kHalf || t == torch::kBFloat16 ? x.to(torch::kFloat) : x;
}

constexpr int64_t kRmsBlock = 256;

/// x (outer, n, inner) contiguous, normalised over its middle extent n: (B, C, T) over the channels, the
/// isotypic (D, N) layout (outer 1), (..., D) features (inner 1).
struct RmsShape {
  int64_t outer, n, inner;
};

RmsShape rms_shape(const torch::Tensor& x, int64_t dim) {
  const int64_t d = c10::maybe_wrap_dim(dim, x.dim());
  RmsShape s{1, x.size(d), 1};
  for (int64_t i = 0; i < d; ++i) s.outer *= x.size(i);
  for (int64_t i = d + 1; i < x.dim(); ++i) s.inner *= x.size(i);
  return s;
}

/// Whether the loops below serve x: float or double on the CPU (any strides: the caller makes it contiguous).
bool rms_loops_serve(const torch::Tensor& x) {
  return x.dim() >= 1 && x.device().is_cpu() && (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble);
}

/// The forward of `len` adjacent columns of one (n, inner) slice: y = x·r, r = 1/sqrt(mean of x² over the n rows
/// + eps), r stored where given. Two passes over the block (it stays in cache): across rows LibTorch 1.13's
/// linalg_vector_norm took 471 µs at D=384, N=512 (one thread), and square().mean(1) is four passes.
template <typename T>
SYMM_AVX2_CLONE void rms_columns(const T* x, T* y, T* r, int64_t n, int64_t inner, int64_t len, double eps) {
  double sum[kRmsBlock] = {};
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * inner;
    for (int64_t j = 0; j < len; ++j) sum[j] += double(xi[j]) * double(xi[j]);
  }
  T rj[kRmsBlock];
  for (int64_t j = 0; j < len; ++j) rj[j] = T(1.0 / std::sqrt(sum[j] / double(n) + eps));
  if (r) std::copy(rj, rj + len, r);
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * inner;
    T* yi = y + i * inner;
    for (int64_t j = 0; j < len; ++j) yi[j] = xi[j] * rj[j];
  }
}

/// The forward of rows [first, last) of x (rows, n), each normalised over its n contiguous values.
template <typename T>
SYMM_AVX2_CLONE void rms_rows(const T* x, T* y, T* r, int64_t first, int64_t last, int64_t n, double eps) {
  for (int64_t i = first; i < last; ++i) {
    const T* xi = x + i * n;
    T* yi = y + i * n;
    double sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += double(xi[j]) * double(xi[j]);
    const T ri = T(1.0 / std::sqrt(sum / double(n) + eps));
    if (r) r[i] = ri;
    for (int64_t j = 0; j < n; ++j) yi[j] = xi[j] * ri;
  }
}

/// The backward dx = r·(g − y·mean(g·y)) of `len` adjacent columns of one (n, inner) slice, two passes.
template <typename T>
SYMM_AVX2_CLONE void rms_backward_columns(const T* g, const T* y, const T* r, T* dx, int64_t n, int64_t inner, int64_t len) {
  double sum[kRmsBlock] = {};
  for (int64_t i = 0; i < n; ++i) {
    const T *gi = g + i * inner, *yi = y + i * inner;
    for (int64_t j = 0; j < len; ++j) sum[j] += double(gi[j]) * double(yi[j]);
  }
  T c[kRmsBlock];
  for (int64_t j = 0; j < len; ++j) c[j] = T(double(r[j]) * sum[j] / double(n));
  for (int64_t i = 0; i < n; ++i) {
    const T *gi = g + i * inner, *yi = y + i * inner;
    T* di = dx + i * inner;
    for (int64_t j = 0; j < len; ++j) di[j] = gi[j] * r[j] - yi[j] * c[j];
  }
}

template <typename T>
SYMM_AVX2_CLONE void rms_backward_rows(const T* g, const T* y, const T* r, T* dx, int64_t first, int64_t last, int64_t n) {
  for (int64_t i = first; i < last; ++i) {
    const T *gi = g + i * n, *yi = y + i * n;
    T* di = dx + i * n;
    double sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += double(gi[j]) * double(yi[j]);
    const T ri = r[i], c = T(double(ri) * sum / double(n));
    for (int64_t j = 0; j < n; ++j) di[j] = gi[j] * ri - yi[j] * c;
  }
}

/// Runs `rows(first, last)` over the rows of x when inner is 1, else `columns(offset into x, offset into r,
/// len)` over blocks of at most kRmsBlock columns of each (n, inner) slice, on LibTorch's threads (a task: at
/// least kMinTaskWork, two passes of a multiply-add each).
template <typename Rows, typename Columns>
void for_rms_blocks(const RmsShape& s, const Rows& rows, const Columns& columns) {
  if (s.inner == 1) {
    at::parallel_for(0, s.outer, detail::parallel_grain(2 * s.n), rows);
    return;
  }
  const int64_t blocks = (s.inner + kRmsBlock - 1) / kRmsBlock;
  at::parallel_for(0, s.outer * blocks, detail::parallel_grain(2 * s.n * std::min(kRmsBlock, s.inner)),
                   [&](int64_t first, int64_t last) {
                     for (int64_t k = first; k < last; ++k) {
                       const int64_t o = k / blocks, c0 = (k % blocks) * kRmsBlock;
                       columns(o * s.n * s.inner + c0, o * s.inner + c0, std::min(kRmsBlock, s.inner - c0));
                     }
                   });
}

/// y = x / sqrt(mean(x², dim) + eps) by the loops, with r (x's shape, 1 along dim) where wanted; x contiguous.
std::pair<torch::Tensor, torch::Tensor> rms_forward_loops(const torch::Tensor& x, int64_t dim, double eps, bool want_r) {
  const auto s = rms_shape(x, dim);
  auto y = torch::empty_like(x);
  torch::Tensor r;
  if (want_r) {
    auto shape = x.sizes().vec();
    shape[c10::maybe_wrap_dim(dim, x.dim())] = 1;
    r = torch::empty(shape, x.options());
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rms_normalise", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t *yp = y.data_ptr<scalar_t>(), *rp = want_r ? r.data_ptr<scalar_t>() : nullptr;
    for_rms_blocks(
        s, [&](int64_t first, int64_t last) { rms_rows(xp, yp, rp, first, last, s.n, eps); },
        [&](int64_t off, int64_t roff, int64_t len) { rms_columns(xp + off, yp + off, rp ? rp + roff : nullptr, s.n, s.inner, len, eps); });
  });
  return {y, r};
}

torch::Tensor rms_backward_loops(const torch::Tensor& g, const torch::Tensor& y, const torch::Tensor& r, int64_t dim) {
  const auto s = rms_shape(y, dim);
  auto dx = torch::empty_like(y);
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "rms_normalise_backward", [&] {
    const scalar_t *gp = g.data_ptr<scalar_t>(), *yp = y.data_ptr<scalar_t>(), *rp = r.data_ptr<scalar_t>();
    scalar_t* dp = dx.data_ptr<scalar_t>();
    for_rms_blocks(
        s, [&](int64_t first, int64_t last) { rms_backward_rows(gp, yp, rp, dp, first, last, s.n); },
        [&](int64_t off, int64_t roff, int64_t len) { rms_backward_columns(gp + off, yp + off, rp + roff, dp + off, s.n, s.inner, len); });
  });
  return dx;
}

// x / sqrt(mean(x², dim) + eps); the mean square is invariant because ρ is orthogonal. Its own backward,
// dx = r·(g − y·mean(g·y)) with r = 1/sqrt(mean(x²) + eps) and y = x·r: on the CPU two passes of the loops
// above each way, along any dimension (autograd through norm, square, rsqrt and mul made seven; LibTorch 1.13
// has no fused kernel). Reduced precision is reduced in float, as LibTorch's rms_norm does.
struct RMSNormalise : torch::autograd::Function<RMSNormalise> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, int64_t dim, double eps) {
    const auto xf = in_float_if_reduced(x);
    torch::Tensor r, y;
    if (rms_loops_serve(xf)) {
      std::tie(y, r) = rms_forward_loops(xf.contiguous(), dim, eps, /*want_r=*/true);
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
    if (rms_loops_serve(y)) return {rms_backward_loops(g.contiguous(), y, r, dim).to(grads[0].scalar_type()), {}, {}};
    return {torch::addcmul(g, y, (g * y).mean(dim, true), -1).mul_(r).to(grads[0].scalar_type()), {}, {}};
  }
};

}  // namespace

torch::Tensor hom_tiles(const torch::Tensor& theta, const c10::optional<torch::Tensor>& index, const torch::Tensor& tiles,
                        int64_t m_out) {
  TORCH_CHECK(tiles.dim() == 3, "symm::hom_tiles: expected tiles (r, s_out, s_in), got shape ", tiles.sizes());
  const int64_t r = tiles.size(0), s_out = tiles.size(1), s_in = tiles.size(2);
  const auto phi_all = index.has_value() && index->defined() ? theta.index_select(0, index->reshape({-1})) : theta;
  TORCH_CHECK(theta.dim() == 1 && m_out > 0 && r > 0, "symm::hom_tiles: expected coefficients (n) and m_out > 0, got ",
              theta.dim(), " dimensions and m_out = ", m_out);
  // Under torch.compile with dynamic shapes the index's length is symbolic: the sizes below are inferred (-1).
  if (!has_symbolic_sizes(phi_all))
    TORCH_CHECK(phi_all.numel() % (m_out * r) == 0, "symm::hom_tiles: ", phi_all.numel(),
                " coefficients do not make ", m_out, " output copies of ", r, " per tile");
  const auto phi = phi_all.view({m_out, -1, r});  // (copy out, copy in, coefficient)
  const auto type = phi.scalar_type();
  if (phi.is_cpu() && (type == torch::kFloat32 || type == torch::kFloat64) && r * s_out * s_in <= kLoopTile &&
      plain_eager(phi) && plain_eager(tiles)) {
    const int64_t m_in = phi.size(1);
    const auto e = tiles.view({r, s_out * s_in}).to(type);
    return TileSynthesis::apply(phi.view({m_out * m_in, r}), e, std::vector<int64_t>{m_out, m_in, s_out, s_in, r});
  }
  return torch::matmul(phi, tiles.reshape({r, s_out * s_in}))
      .view({m_out, -1, s_out, s_in})
      .permute({0, 2, 1, 3})
      .reshape({m_out * s_out, -1});
}

torch::Tensor hom_blocks(const torch::Tensor& theta, torch::TensorList endomorphisms, torch::TensorList q_out,
                         const torch::Tensor& q_in_t, c10::IntArrayRef m_in) {
  TORCH_CHECK(endomorphisms.size() == q_out.size() && q_out.size() == m_in.size() && !q_out.empty(),
              "symm::hom_blocks: expected as many endomorphism bases, Q_out pieces and input multiplicities, got ",
              endomorphisms.size(), ", ", q_out.size(), " and ", m_in.size());
  std::vector<torch::Tensor> parts;
  int64_t offset = 0;
  for (size_t i = 0; i < q_out.size(); ++i) {
    const auto& psi = endomorphisms[i];
    const auto& q = q_out[i];
    TORCH_CHECK(psi.dim() == 4 && q.dim() == 3 && q.size(0) == psi.size(0) && q.size(2) % psi.size(2) == 0,
                "symm::hom_blocks: batch ", i, ": expected endomorphisms (count, S, d, d) and q_out (count, D_out, m_out d), got ",
                psi.sizes(), " and ", q.sizes());
    const int64_t count = psi.size(0), endo = psi.size(1), dim = psi.size(2), mo = q.size(2) / dim, mi = m_in[i];
    const int64_t n = count * endo * mo * mi;
    TORCH_CHECK(offset + n <= theta.numel(), "symm::hom_blocks: ", theta.numel(), " coefficients, batch ", i, " needs ",
                offset + n);
    const auto th = theta.narrow(0, offset, n).view({count, endo, mo, mi});
    offset += n;
    // Block of each irrep: Σ_s Θ_s ⊗ Ψ_s, laid out (copy_out, component, copy_in, component); a 1-dim R irrep's
    // Ψ is 1.
    const auto k = endo == 1 && dim == 1 ? th.view({count, mo, mi})
                                         : torch::einsum("bsij,bsac->biajc", {th, psi}).reshape({count, mo * dim, mi * dim});
    // Q_out,k · K_k for every block, then side by side along the isotypic input columns.
    parts.push_back(torch::bmm(q, k).permute({1, 0, 2}).reshape({q.size(1), -1}));
  }
  TORCH_CHECK(offset == theta.numel(), "symm::hom_blocks: the batches take ", offset, " coefficients, got ", theta.numel());
  return torch::matmul(parts.size() == 1 ? parts[0] : torch::cat(parts, 1), q_in_t);
}

std::vector<torch::Tensor> isotypic_weights(const torch::Tensor& theta, torch::TensorList index, torch::TensorList endomorphisms,
                                            c10::IntArrayRef dims) {
  TORCH_CHECK(index.size() == endomorphisms.size() && index.size() == dims.size(),
              "symm::isotypic_weights: expected as many index tensors, endomorphisms and dims, got ", index.size(), ", ",
              endomorphisms.size(), " and ", dims.size());
  std::vector<torch::Tensor> out;
  for (size_t g = 0; g < index.size(); ++g) {
    const auto& idx = index[g];
    const auto& psi = endomorphisms[g];
    TORCH_CHECK(idx.dim() == 4, "symm::isotypic_weights: group ", g, ": expected index (count, S, n_out, n_in), got ", idx.sizes());
    const int64_t count = idx.size(0), endo = idx.size(1), n_out = idx.size(2), n_in = idx.size(3), d = dims[g];
    auto w = theta.index_select(0, idx.reshape({-1})).view(idx.sizes());
    if (endo == 1) {
      w = w * psi.view({count, 1, 1, 1});
      if (d > 1) w = w.expand({count, d, n_out, n_in});
      out.push_back(w.reshape({count * d, n_out, n_in}));
    } else {
      out.push_back(torch::einsum("ksoi,ksab->kaobi", {w, psi}).reshape({count, d * n_out, d * n_in}));
    }
  }
  return out;
}

torch::Tensor isotypic_blocks(const torch::Tensor& z, const c10::List<c10::optional<torch::Tensor>>& weights,
                              const c10::List<c10::optional<torch::Tensor>>& biases, c10::IntArrayRef in_rows,
                              c10::IntArrayRef out_rows) {
  const size_t groups = weights.size();
  TORCH_CHECK(z.dim() == 2, "symm::isotypic_blocks: expected z (D_in, N), got shape ", z.sizes());
  TORCH_CHECK(biases.size() == groups && in_rows.size() == groups && out_rows.size() == groups,
              "symm::isotypic_blocks: expected as many biases, in_rows and out_rows as weights (", groups, "), got ",
              biases.size(), ", ", in_rows.size(), " and ", out_rows.size());
  auto get = [](const c10::List<c10::optional<torch::Tensor>>& l, size_t i) {
    const c10::optional<torch::Tensor> t = l[i];
    return t.has_value() ? *t : torch::Tensor();
  };
  // One split of the input for all groups: under autograd its backward is one cat, where a narrow per group
  // would zero-fill a gradient of the whole input each.
  std::vector<size_t> by_row;
  for (size_t g = 0; g < groups; ++g)
    if (get(weights, g).defined()) by_row.push_back(g);
  std::sort(by_row.begin(), by_row.end(), [&](size_t a, size_t b) { return in_rows[a] < in_rows[b]; });
  std::vector<int64_t> sizes, piece(groups, -1);
  int64_t row = 0;
  for (const auto g : by_row) {
    const auto w = get(weights, g);
    TORCH_CHECK(w.dim() == 3 && in_rows[g] >= row, "symm::isotypic_blocks: group ", g, ": expected a weight (batch, rows, columns) on rows of z from ",
                row, ", got ", w.sizes(), " from row ", in_rows[g]);
    if (in_rows[g] > row) sizes.push_back(in_rows[g] - row);
    piece[g] = int64_t(sizes.size());
    sizes.push_back(w.size(0) * w.size(2));
    row = in_rows[g] + sizes.back();
  }
  // The token extent (z's columns) may be symbolic: it is only ever -1 in views.
  const int64_t features = static_size(z, 0);
  TORCH_CHECK(row <= features, "symm::isotypic_blocks: the groups read ", row, " rows, z has ", features);
  if (row < features) sizes.push_back(features - row);
  const auto pieces = z.split_with_sizes(sizes, 0);
  int64_t total = 0;
  for (const auto r : out_rows) total += r;
  // Without autograd (in plain eager mode) every group writes its rows of one output in place; with it, the
  // groups are concatenated (whose backward is a free split).
  auto needs_grad = [](const torch::Tensor& t) { return torch::GradMode::is_enabled() && t.defined() && t.requires_grad(); };
  bool in_place = plain_eager(z) && !needs_grad(z);
  for (size_t g = 0; g < groups && in_place; ++g) in_place = !needs_grad(get(weights, g)) && !needs_grad(get(biases, g));
  torch::Tensor y = in_place ? torch::empty({total, z.size(1)}, z.options()) : torch::Tensor();
  std::vector<torch::Tensor> parts;
  row = 0;
  for (size_t g = 0; g < groups; ++g) {
    const auto w = get(weights, g), b = get(biases, g);
    const int64_t rows = out_rows[g];
    const auto out = in_place ? y.narrow(0, row, rows) : torch::Tensor();
    row += rows;
    if (!w.defined()) {
      const auto b_rows = b.defined() ? b.reshape({rows, 1}) : torch::zeros({rows, 1}, z.options());
      if (in_place) out.copy_(b_rows.expand({rows, z.size(1)}));
      else parts.push_back(b_rows + torch::zeros_like(z.select(0, 0)).unsqueeze(0));
      continue;
    }
    TORCH_CHECK(w.size(0) * w.size(1) == rows, "symm::isotypic_blocks: group ", g, " writes ", w.size(0) * w.size(1),
                " rows, out_rows says ", rows);
    const int64_t batch = w.size(0);
    const auto x = pieces[piece[g]].view({batch, w.size(2), -1});
    if (in_place) {
      auto o = out.view({batch, w.size(1), -1});
      if (b.defined()) torch::baddbmm_out(o, b, w, x);
      else torch::bmm_out(o, w, x);
    } else {
      parts.push_back((b.defined() ? torch::baddbmm(b, w, x) : torch::bmm(w, x)).view({rows, -1}));
    }
  }
  if (in_place) return y;
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 0);
}

torch::Tensor to_isotypic(const torch::Tensor& x, const torch::Tensor& basis, int64_t chunks) {
  const int64_t s = basis.size(0);
  TORCH_CHECK(x.dim() >= 1 && static_size(x, -1) == s * chunks, "symm::to_isotypic: expected features of size ", s * chunks,
              " (", chunks, " chunks of ", s, "), got ", x.dim() ? "features of size " + std::to_string(static_size(x, -1)) : "a scalar");
  // Transposed product, then a transpose of (tokens, chunks) inside each row: the copy stays within one row
  // of N·m values where (N, m, s) → (s, m, N) fetched each element from another token (1.5-2x faster at one
  // thread).
  return torch::mm(basis.t(), x.reshape({-1, s}).t()).view({s, -1, chunks}).transpose(1, 2).contiguous().view({s * chunks, -1});
}

torch::Tensor from_isotypic(const torch::Tensor& z, const torch::Tensor& basis, int64_t chunks) {
  const int64_t s = basis.size(0);
  TORCH_CHECK(z.dim() == 2 && static_size(z, 0) == s * chunks, "symm::from_isotypic: expected z (", s * chunks,
              ", N), got ", z.dim(), " dimensions", z.dim() ? " and " + std::to_string(static_size(z, 0)) + " rows" : "");
  // The same transpose inside each row first, then a product whose output is already (N, m, s).
  return torch::mm(z.view({s, chunks, -1}).transpose(1, 2).contiguous().view({s, -1}).t(), basis.t());
}

torch::Tensor rms_normalise(const torch::Tensor& x, int64_t dim, double eps) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  // LibTorch's fused kernel where it has one (CUDA); not measured against the function above there.
  if (x.is_cuda() && (dim == -1 || dim == x.dim() - 1)) return at::rms_norm(x, {x.size(-1)}, c10::nullopt, eps);
#endif
  if (plain_eager(x)) {
    // Autograd needing nothing: one forward of the loops, no r and no node.
    if (!(torch::GradMode::is_enabled() && x.requires_grad()) && rms_loops_serve(x))
      return rms_forward_loops(x.contiguous(), dim, eps, /*want_r=*/false).first;
    return RMSNormalise::apply(x, dim, eps);
  }
  const auto xf = in_float_if_reduced(x);
  return (xf * torch::rsqrt(xf.square().mean(dim, /*keepdim=*/true) + eps)).to(x.scalar_type());
}

torch::Tensor layer_normalise(const torch::Tensor& x, const c10::optional<torch::Tensor>& centre, int64_t dim, double eps) {
  torch::Tensor centred = x;
  if (centre.has_value() && centre->defined()) {
    const auto& u = *centre;
    const int64_t d = dim < 0 ? dim + x.dim() : dim;
    TORCH_CHECK(u.dim() == 1 && d >= 0 && d < x.dim() && u.size(0) == static_size(x, d), "symm::layer_normalise: expected centre of shape [",
                d >= 0 && d < x.dim() ? static_size(x, d) : -1, "], got ", u.sizes());
    if (d == x.dim() - 1) {
      centred = x - torch::matmul(x, u).unsqueeze(-1) * u;
    } else if (d == 0 && x.dim() == 2) {  // the isotypic (D, N) layout
      const auto uc = u.unsqueeze(1);
      centred = x - uc * torch::mm(uc.t(), x);
    } else {
      std::vector<int64_t> shape(x.dim(), 1);
      shape[d] = u.size(0);
      const auto ub = u.view(shape);
      centred = x - ub * (x * ub).sum(d, /*keepdim=*/true);
    }
  }
  return rms_normalise(centred, dim, eps);
}

namespace {

/// x ↦ activation(x) in place, by the names of symm::nn::Activation (and mish).
void activate_(torch::Tensor& x, const std::string& name) {
  if (name == "gelu") at::gelu_(x);
  else if (name == "gelu_tanh") at::gelu_(x, "tanh");
  else if (name == "relu") x.relu_();
  else if (name == "silu") at::silu_(x);
  else if (name == "tanh") x.tanh_();
  else if (name == "mish") at::mish_(x);
  else TORCH_CHECK(false, "symm::encoder_layer_eval: expected activation gelu, gelu_tanh, relu, silu, tanh or mish, got '", name, "'");
}

torch::Tensor optional_or_empty(const c10::optional<torch::Tensor>& t) { return t.has_value() ? *t : torch::Tensor(); }

}  // namespace

torch::Tensor encoder_layer_eval(const torch::Tensor& x, const torch::Tensor& w_in, const c10::optional<torch::Tensor>& b_in,
                                 const torch::Tensor& w_out, const c10::optional<torch::Tensor>& b_out, const torch::Tensor& w1,
                                 const c10::optional<torch::Tensor>& b1, const torch::Tensor& w2, const c10::optional<torch::Tensor>& b2,
                                 int64_t heads, const c10::optional<torch::Tensor>& centre1, double eps1,
                                 const c10::optional<torch::Tensor>& centre2, double eps2, const std::string& activation) {
  TORCH_CHECK(x.dim() == 3, "symm::encoder_layer_eval: expected x of shape (B, T, D), got ", x.sizes());
  const int64_t batch = x.size(0), length = x.size(1), d = x.size(2);
  TORCH_CHECK(heads >= 1 && d % heads == 0, "symm::encoder_layer_eval: ", heads, " heads do not divide D = ", d);
  TORCH_CHECK(w_in.dim() == 2 && w_in.size(0) == 3 * d && w_in.size(1) == d && w_out.dim() == 2 && w_out.size(0) == d &&
                  w_out.size(1) == d && w1.dim() == 2 && w1.size(1) == d && w2.dim() == 2 && w2.size(0) == d && w2.size(1) == w1.size(0),
              "symm::encoder_layer_eval: expected w_in (", 3 * d, ", ", d, "), w_out (", d, ", ", d, "), w1 (F, ", d, "), w2 (", d,
              ", F), got ", w_in.sizes(), ", ", w_out.sizes(), ", ", w1.sizes(), ", ", w2.sizes());
  const auto x2 = x.reshape({batch * length, d});
  const auto h = layer_normalise(x2, centre1, -1, eps1).view({batch, length, d});
  auto bias = [&](const c10::optional<torch::Tensor>& b, int64_t n) { return b.has_value() ? *b : torch::zeros({n}, x.options()); };
  // torch.nn.MultiheadAttention's own inference kernel: the in-projection, the heads' attention and the
  // out-projection in one operator (at batch 1, 10 of the attention block's 48 µs at D = 64, T = 16).
  auto y = std::get<0>(at::_native_multi_head_attention(h, h, h, d, heads, w_in, bias(b_in, 3 * d), w_out, bias(b_out, d), {},
                                                        /*need_weights=*/false))
               .view({batch * length, d})
               .add_(x2);
  auto f = torch::nn::functional::linear(layer_normalise(y, centre2, -1, eps2), w1, optional_or_empty(b1));
  activate_(f, activation);
  return torch::nn::functional::linear(f, w2, optional_or_empty(b2)).add_(y).view({batch, length, d});
}

}  // namespace symm::nn::functional

namespace symm::nn::detail {

bool plain_eager(const torch::Tensor& t) {
  const auto keys = t.key_set();
  if (keys.has(c10::DispatchKey::Python) || keys.has(c10::DispatchKey::FuncTorchBatched) || t.is_meta()) return false;
  // A Python dispatch mode (make_fx, FakeTensorMode, FlopCounterMode) sees operators, not raw loops.
  if (c10::impl::tls_local_dispatch_key_set().included_.has(c10::DispatchKey::Python)) return false;
#if TORCH_VERSION_MAJOR >= 2
  if (at::functorch::maybeCurrentDynamicLayer().has_value()) return false;
#else
  if (at::functorch::functorchTLSAccessor()) return false;
#endif
  return !torch::jit::tracer::isTracing();
}

}  // namespace symm::nn::detail
