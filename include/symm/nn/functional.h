#pragma once
// The functional core of the equivariant maps: kernels that take tensors and integers only, shared by the
// LibTorch modules (symm::nn) and, as the PyTorch operators torch.ops.symm.<name> (same names, same
// arguments), by the Python modules. The constants they take (bases, change-of-basis matrices, indices)
// are derived from the representations once (symm._C.linear_constants and friends give them to Python).
//
// Every operator is registered as CompositeImplicitAutograd: a composition of ATen operators, so autograd,
// double backward, meta and fake tensors, torch.func, torch.compile and torch.export work through it. Where a
// hand kernel is faster (the tile loops of hom_tiles, the one-pass RMS normalisation: C++ autograd Functions
// with their own backward), the function takes it only in plain eager mode (no functorch transform, no fake,
// meta or other Python tensor, no tracer); everywhere else the composition runs, and tests hold the two equal.
#include <torch/torch.h>

namespace symm::nn::functional {

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

/// layer_normalise(Tensor x, Tensor? centre, int dim, float eps) -> Tensor
/// eLayerNorm's normalisation: x minus its component along the unit invariant vector `centre` (D) (the
/// invariant part of the all-ones direction; none: no centring), then rms_normalise along `dim`.
torch::Tensor layer_normalise(const torch::Tensor& x, const c10::optional<torch::Tensor>& centre, int64_t dim, double eps);

/// Defined beside the TORCH_LIBRARY block: referenced from the kernels' object so that a static link of
/// libsymm that uses any kernel keeps the registration of the operators.
bool operators_registered();

}  // namespace symm::nn::functional
