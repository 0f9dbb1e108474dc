#pragma once
// The functional core of the equivariant maps: kernels that take tensors and integers only, shared by the
// LibTorch modules (symm::nn) and, as the PyTorch operators torch.ops.symm.<name> (same names, same
// arguments), by the Python modules. The constants they take (bases, change-of-basis matrices, indices)
// are derived from the representations once (symm._C.linear_constants and friends give them to Python).
//
// Every operator is registered as CompositeImplicitAutograd: a composition of ATen operators, so autograd,
// double backward, meta and fake tensors, torch.func, torch.compile and torch.export work through it. Where a
// hand kernel is faster (the tile loops of hom_tiles, the RMS normalisation's loops, batch_norm_train's block
// products: C++ autograd Functions with their own backward), the function takes it only in plain eager mode
// (no functorch transform, no fake, meta or other Python tensor, no tracer); everywhere else the composition
// runs, and tests hold the two equal.
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "symm/group/representation.h"

namespace symm::nn {

/// Constants by name (float64; indices and sizes int64; on the CPU).
using NamedConstants = std::vector<std::pair<std::string, torch::Tensor>>;

}  // namespace symm::nn

namespace symm::nn::functional {

using symm::group::Representation;

/// What eLinear(in_rep, out_rep) computes with, for a frontend that owns the coefficients and calls the
/// operators itself (the Python modules; symm._C.linear_constants):
/// - tiles (r, s_out, s_in), tile_m_out and, unless θ is φ already, tile_index: the arguments of hom_tiles; or
///   endomorphisms.<b>, q_out.<b> for each batch b, q_in_t, m_in: those of hom_blocks;
/// - fix (D_out, dim Fix(ρ_out)): the bias is fix · bias_dof;
/// - init_std (dof): each coefficient's std under init_scheme (uniform schemes draw from ±√3·std), and
///   bias_bound = 1/sqrt(D_in): the bias coefficients draw from ±bias_bound;
/// - alpha_index (dof): the irrep copy of in_rep each coefficient reads (an eAffine's scale on that copy folds
///   into the coefficient);
/// - isotypic.index.<k>, isotypic.endomorphisms.<k>, isotypic.dims (per group with input copies) and
///   isotypic.in_rows (-1 for a group without), isotypic.out_rows (per group): the arguments of
///   isotypic_weights and isotypic_blocks; the isotypic bias splits along out_rows, each piece of a group
///   with a weight viewed (weight.size(0), -1, 1);
/// - isotypic_in.* and isotypic_out.*: chunks and basis (P, s × s), the arguments of to_isotypic and
///   from_isotypic; copy_of_row (the irrep copy of each isotypic row, for eAffine scales); fix (D, dim Fix):
///   Fix(ρ)'s basis in isotypic rows.
NamedConstants linear_constants(const Representation& in_rep, const Representation& out_rep,
                                const std::string& init_scheme = "xavier_uniform");

/// What eAffine(rep) computes with: change_of_basis Q (D, D), fix F (D, dim Fix(ρ)), copy_of (D, int64)
/// and diagonal (bool): y = x·s[copy_of] + F·b when diagonal (copy_of: the irrep copy of each channel), else
/// y = ((x·Q)·s[copy_of])·Qᵀ + F·b (copy_of: the irrep copy of each column of Q); s one scale per irrep copy.
NamedConstants affine_constants(const Representation& rep);

/// What eLayerNorm(rep) normalises with (layer_normalise): centre (D), absent when the all-ones direction has
/// no invariant part (no centring).
NamedConstants layer_norm_constants(const Representation& rep);

/// hom_tiles(Tensor theta, Tensor? index, Tensor tiles, int m_out) -> Tensor
/// The dense weight of a map between m_in and m_out copies of small blocks side by side (regular copies in the
/// permutation basis): W[(i,a),(j,c)] = Σ_k φ[(i,j),k] E[k,a,c] with φ = θ[index] viewed (m_out·m_in, r) and
/// `tiles` E of shape (r, s_out, s_in), the same for every copy pair. No index: θ is φ already.
/// Result (m_out·s_out, m_in·s_in).
torch::Tensor hom_tiles(const torch::Tensor& theta, const c10::optional<torch::Tensor>& index, const torch::Tensor& tiles,
                        int64_t m_out);

/// hom_blocks(Tensor theta, Tensor[] endomorphisms, Tensor[] q_out, Tensor q_in_t, int[] m_in) -> Tensor
/// The dense weight W = Q_out · blockdiag_k(Σ_s Θ_{k,s} ⊗ Ψ_{k,s}) · Q_inᵀ from the Hom_G coefficients, irreps
/// batched by shape: batch b has endomorphisms[b] Ψ (count, S, d, d), q_out[b] (count, D_out, m_out·d) (each
/// irrep's columns of Q_out) and m_in[b] input copies; its coefficients follow those of batch b − 1 in θ, as
/// (count, S, m_out, m_in). q_in_t (Σ m_in·d, D_in) is Q_inᵀ with its rows in the same irrep order.
/// Result (D_out, D_in).
torch::Tensor hom_blocks(const torch::Tensor& theta, torch::TensorList endomorphisms, torch::TensorList q_out,
                         const torch::Tensor& q_in_t, c10::IntArrayRef m_in);

/// isotypic_weights(Tensor theta, Tensor[] index, Tensor[] endomorphisms, int[] dims) -> Tensor[]
/// The block weights of an equivariant map between isotypic layouts, one per group of irreps of one shape
/// (dimension d = dims[g], type, copies), gathered from θ by index[g] (count, S, n_out, n_in):
/// - R type (S = 1): endomorphisms[g] holds the scale Ψ_0(0,0) of each irrep, (count, 1, 1); the d
///   components share the coefficients: weight (count·d, n_out, n_in);
/// - C and H types: endomorphisms[g] is Ψ (count, S, d, d); weight (count, d·n_out, d·n_in) = Σ_s Ψ_s ⊗ Θ_s,
///   rows (component, copy), columns (component, copy).
std::vector<torch::Tensor> isotypic_weights(const torch::Tensor& theta, torch::TensorList index, torch::TensorList endomorphisms,
                                            c10::IntArrayRef dims);

/// isotypic_blocks(Tensor z, Tensor?[] weights, Tensor?[] biases, int[] in_rows, int[] out_rows) -> Tensor
/// y = W z + b in isotypic coordinates, z (D_in, N) → y (Σ out_rows, N): group g writes the next out_rows[g]
/// rows of y, bmm(weights[g], z_g) with z_g the rows from in_rows[g] of z viewed (batch, weights[g].size(2), N),
/// plus biases[g] (batch, rows / batch, 1) when given; a group without weight (no input copies) writes its
/// bias, or zeros. Every block product of all groups is one bmm each, no dense weight is ever formed.
torch::Tensor isotypic_blocks(const torch::Tensor& z, const c10::List<c10::optional<torch::Tensor>>& weights,
                              const c10::List<c10::optional<torch::Tensor>>& biases, c10::IntArrayRef in_rows,
                              c10::IntArrayRef out_rows);

/// to_isotypic(Tensor x, Tensor basis, int chunks) -> Tensor
/// (..., D) features of `chunks` equal chunks of s in the user's basis → (D, N) isotypic layout (N tokens):
/// every chunk changes basis by `basis` P (s, s) (rows of the chunk's isotypic coordinates), and the μ-th
/// copy of an irrep inside chunk c becomes copy μ·chunks + c.
torch::Tensor to_isotypic(const torch::Tensor& x, const torch::Tensor& basis, int64_t chunks);

/// from_isotypic(Tensor z, Tensor basis, int chunks) -> Tensor
/// The inverse of to_isotypic: (D, N) → (N, D); the caller views it as the leading dimensions it had.
torch::Tensor from_isotypic(const torch::Tensor& z, const torch::Tensor& basis, int64_t chunks);

/// rms_normalise(Tensor x, int dim, float eps) -> Tensor
/// x / sqrt(mean(x², dim) + eps): invariant under every orthogonal representation acting along `dim`
/// (dim = -1 for (..., D) features, 0 for the isotypic (D, N) layout). Half and bfloat16 reduce in float.
torch::Tensor rms_normalise(const torch::Tensor& x, int64_t dim, double eps);

/// batch_norm_train(Tensor x, Tensor basis, Tensor copy_of, Tensor dims, Tensor trivial, Tensor? weight,
///                  Tensor? bias, float eps) -> (Tensor, Tensor, Tensor)
/// eBatchNorm1d with the batch's statistics, x (B, C) or (B, C, T) with C channels, Q = blockdiag(basis)
/// (basis (k, b, b), k·b = C; k = 1: Q itself): μ = Q·(trivial ⊙ Qᵀx̄) (the mean projected onto Fix(ρ), whose
/// isotypic coordinates are those with trivial = 1), z = Qᵀ(x − μ), var_k the mean of z² over the batch (and
/// time) and the dims[k] columns of irrep copy k (copy_of (C), int64: the copy of each column of Q),
/// y = Q·((weight_k / √(var_k + eps)) ⊙ z) + bias (weight per copy, bias (C)). Returns (y, μ, var) (the
/// biased variance; μ and var carry no gradient).
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> batch_norm_train(const torch::Tensor& x, const torch::Tensor& basis,
                                                                         const torch::Tensor& copy_of, const torch::Tensor& dims,
                                                                         const torch::Tensor& trivial,
                                                                         const c10::optional<torch::Tensor>& weight,
                                                                         const c10::optional<torch::Tensor>& bias, double eps);

/// layer_normalise(Tensor x, Tensor? centre, int dim, float eps) -> Tensor
/// eLayerNorm's normalisation: x minus its component along the unit invariant vector `centre` (D) (the
/// invariant part of the all-ones direction; none: no centring), then rms_normalise along `dim`.
torch::Tensor layer_normalise(const torch::Tensor& x, const c10::optional<torch::Tensor>& centre, int64_t dim, double eps);

/// encoder_layer_eval(Tensor x, Tensor w_in, Tensor? b_in, Tensor w_out, Tensor? b_out, Tensor w1, Tensor? b1,
///                    Tensor w2, Tensor? b2, int heads, Tensor? centre1, float eps1, Tensor? centre2, float eps2,
///                    str activation) -> Tensor
/// A pre-norm encoder layer's inference forward from its dense maps, the norms' affine maps folded into w_in
/// and w1: y = x + out(attention(in(n1(x)))), y + w2·act(w1·n2(y) + b1) + b2, with n = layer_normalise(·,
/// centre, -1, eps). The few operators a batch-1 layer can afford (the op-by-op path costs more in dispatch
/// than in arithmetic there); activation by name: gelu, gelu_tanh, relu, silu, tanh or mish. No autograd
/// of its own: the modules call it only when autograd needs nothing.
torch::Tensor encoder_layer_eval(const torch::Tensor& x, const torch::Tensor& w_in, const c10::optional<torch::Tensor>& b_in,
                                 const torch::Tensor& w_out, const c10::optional<torch::Tensor>& b_out, const torch::Tensor& w1,
                                 const c10::optional<torch::Tensor>& b1, const torch::Tensor& w2, const c10::optional<torch::Tensor>& b2,
                                 int64_t heads, const c10::optional<torch::Tensor>& centre1, double eps1,
                                 const c10::optional<torch::Tensor>& centre2, double eps2, const std::string& activation);

/// Defined beside the TORCH_LIBRARY block: referenced from the kernels' object so that a static link of
/// libsymm that uses any kernel keeps the registration of the operators.
bool operators_registered();

}  // namespace symm::nn::functional
