#pragma once
// eLinear: a linear map that commutes with the group, learned through its Hom_G coefficients, and
// InvariantBias: a learnable vector of the fixed space Fix(ρ).
#include <atomic>
#include <optional>
#include <string>

#include "symm/linalg/hom_basis.h"
#include "symm/nn/module.h"

namespace symm::nn {

class eAffineImpl;
namespace detail {
class IsotypicLayout;
class IsotypicMap;
}  // namespace detail

/// How an eLinear, or a layer, computes its linear maps. dense: the weight synthesised from the coefficients
/// (cached in eval), one matmul; the reference. isotypic: block GEMMs on the coefficients in isotypic
/// coordinates, one bmm per group of irreps of one shape (about n_in·n_out·Σ_k d_k multiply-adds instead of
/// D_in·D_out; no dense weight, in training either). A lone eLinear changes basis on the way in and out
/// (cheap for regular copies in the permutation basis, a dense D×D product otherwise); the encoder and decoder
/// layers and the encoder stack keep their features isotypic from entry to exit. automatic: what was measured
/// faster: dense for a lone eLinear; for layers see eTransformerEncoderLayerImpl::uses_isotypic.
enum class Execution { automatic, dense, isotypic };
const char* to_string(Execution e);
/// Parses "automatic", "dense" or "isotypic"; throws std::invalid_argument otherwise.
Execution parse_execution(const std::string& name);

struct eLinearOptions {
  eLinearOptions(Representation in_rep, Representation out_rep) : in_rep_(std::move(in_rep)), out_rep_(std::move(out_rep)) {}
  /// Representation of the input features.
  TORCH_ARG(Representation, in_rep);
  /// Representation of the output features.
  TORCH_ARG(Representation, out_rep);
  /// Whether to add a learnable invariant bias (identity when out_rep has no trivial irrep).
  TORCH_ARG(bool, bias) = true;
  /// xavier_uniform, xavier_normal, kaiming_uniform or kaiming_normal, with fans counted per irrep block.
  TORCH_ARG(std::string, init_scheme) = "xavier_uniform";
  /// Execution path of forward (the coefficients, hence checkpoints, are the same for every path).
  TORCH_ARG(Execution, execution) = Execution::automatic;
};

/// y = W x + b with ρ_out(g) W = W ρ_in(g) and b ∈ Fix(ρ_out). In training W is synthesised from
/// `weight_dof` on every forward (autograd reaches the coefficients); in eval it is cached and the forward
/// is exactly torch::nn::functional::linear with the cached weight.
class eLinearImpl : public torch::nn::Cloneable<eLinearImpl>, public eModule {
 public:
  eLinearImpl(Representation in_rep, Representation out_rep) : eLinearImpl(eLinearOptions(std::move(in_rep), std::move(out_rep))) {}
  explicit eLinearImpl(eLinearOptions options);

  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x);
  /// forward(pre->forward(x)) for a learnable eAffine `pre` on in_rep, with the affine folded into this map:
  /// W·S and b + W·b_pre. In eval the folded weight and bias are cached (keyed on both modules'
  /// coefficients), saving a D×D matmul per token. When `pre` acts in in_rep's own basis its scales fold
  /// into the coefficients (θ·α, no extra matmul, in training too); otherwise training folds with a matmul
  /// when there are more tokens than output features.
  torch::Tensor forward_after(const torch::Tensor& x, eAffineImpl& pre);
  /// The dense (weight, bias) of forward_after(·, *pre), or of forward when pre is null: W·S and b + W·b_pre,
  /// cached in eval as forward_after's (the layers' fused inference path reads them).
  std::pair<torch::Tensor, torch::Tensor> dense_after(eAffineImpl* pre);
  /// Dense weight (out, in), synthesised with autograd in training, cached in eval.
  torch::Tensor weight();
  /// Dense bias (out), or an undefined tensor without bias.
  torch::Tensor bias();
  /// Sets the coefficients to the orthogonal projection of a dense (out, in) weight (and bias) onto Hom_G.
  void set_dense(const torch::Tensor& weight, const torch::Tensor& bias = {});
  void pretty_print(std::ostream& stream) const override;

  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.out_rep(); }
  const symm::linalg::HomBasis& basis() const { return *basis_; }
  /// Whether forward runs the isotypic path (options.execution() resolved).
  bool uses_isotypic() const;
  /// Multiply-adds per token of forward on the path in use (the dense path: D_out·D_in; the isotypic one
  /// counts its basis changes).
  int64_t multiply_adds() const;

  /// For the layers' isotypic execution: z (D_in, N) in the isotypic layout of in_rep → (D_out, N) in that of
  /// out_rep. `pre`, an eAffine on in_rep applied first, folds into the coefficients. With chunk_count >= 0
  /// only output chunks [chunk_begin, chunk_begin + chunk_count) (out_rep regular copies: whole copies).
  torch::Tensor forward_isotypic(const torch::Tensor& z, eAffineImpl* pre = nullptr, int64_t chunk_begin = 0,
                                 int64_t chunk_count = -1);
  const detail::IsotypicLayout& isotypic_in() const;
  const detail::IsotypicLayout& isotypic_out() const;
  /// Multiply-adds per token of forward_isotypic.
  int64_t isotypic_multiply_adds() const;

  eLinearOptions options;
  /// Coefficients of W in the Hom_G basis.
  torch::Tensor weight_dof;
  /// Coefficients of the bias in an orthonormal basis of Fix(ρ_out); undefined without bias.
  torch::Tensor bias_dof;

 private:
  void check_input(const torch::Tensor& x) const;
  torch::Tensor synthesize_weight(const torch::Tensor& theta) const;
  bool build_tiles();
  /// Whether `pre` acts on in_rep in its own basis, so that its scales fold into the coefficients.
  bool affine_matches(const eAffineImpl& pre);
  /// θ·α: the coefficients of W·S for `pre`'s scaling S when affine_matches(pre).
  torch::Tensor scaled_coefficients(const eAffineImpl& pre) const;
  /// The computations of W·S and b + W·b_pre (in_theta: through scaled_coefficients).
  std::pair<std::function<torch::Tensor()>, std::function<torch::Tensor()>> fold(eAffineImpl& pre, bool in_theta);
  void check_foldable(const eAffineImpl& pre, const char* where) const;
  /// fold's (W·S, b + W·b_pre) from the eval cache, one key check for both; nullopt where the cache does not
  /// apply (training, or autograd needs a key).
  std::optional<std::pair<torch::Tensor, torch::Tensor>> cached_fold(eAffineImpl& pre);
  /// forward (or forward_after `pre`) on the isotypic path: into in_rep's layout, the blocks, back.
  torch::Tensor forward_through_isotypic(const torch::Tensor& x, eAffineImpl* pre);

  std::shared_ptr<const symm::linalg::HomBasis> basis_;
  // Blocks batched by shape: for each group, Ψ (nb, S, d, d), Q_out (nb, D_out, m_out d); then
  // Q_inᵀ (D_in, D_in). Empty when tiles_ synthesises the weight.
  struct Batch { int offset, count, endo, dim, m_out, m_in; };
  std::vector<Batch> batches_;
  Constants constants_;
  // Both representations are copies of one small block each, side by side (regular copies in the
  // permutation basis, for instance): the (s_out, s_in) tile of W for each copy pair is then φ·E with
  // φ = θ[index] (r coefficients per pair) and E (r, s_out·s_in) the same for every pair. One gather, one
  // (m_out·m_in, r)·(r, s_out·s_in) matmul and one permute (loops over the tiles when they are tiny):
  // D_out·D_in·r multiply-adds instead of D_out·D_in².
  struct Tiles { int64_t m_out = 0, m_in = 0, s_out = 0, s_in = 0, r = 0; torch::Tensor index; bool identity = false; };
  Tiles tiles_;
  bool use_tiles_ = false;
  Constants tile_constants_;              // E, tiles_.index
  Constants fix_;                         // Fix(ρ_out) basis (D_out, n_fix)
  // For forward_after: index (dof) of the eAffine scale acting on each coefficient's input irrep copy.
  Constants alpha_index_;
  // The last eAffine checked by affine_matches and the answer; atomics, since concurrent eval
  // forwards may check at once (a copy starts unchecked).
  struct AffineCheck {
    AffineCheck() = default;
    AffineCheck(const AffineCheck&) {}
    AffineCheck& operator=(const AffineCheck&) { pre = nullptr; return *this; }
    std::atomic<const eAffineImpl*> pre{nullptr};
    std::atomic<bool> folds{false};
  } affine_check_;
  EvalCache weight_cache_, bias_cache_, folded_cache_, isotypic_cache_;
  // Shared by clones: they hold constants only.
  std::shared_ptr<const detail::IsotypicLayout> isotypic_in_, isotypic_out_;
  std::shared_ptr<const detail::IsotypicMap> isotypic_;
};
TORCH_MODULE(eLinear);

/// Sets the execution path of every eLinear in `module` (itself included).
void set_execution(torch::nn::Module& module, Execution execution);

struct InvariantBiasOptions {
  InvariantBiasOptions(Representation rep) : rep_(std::move(rep)) {}
  /// Representation of the features the bias is added to.
  TORCH_ARG(Representation, rep);
};

/// x + b with b ∈ Fix(ρ), learned through its coordinates on the trivial isotypic block.
class InvariantBiasImpl : public torch::nn::Cloneable<InvariantBiasImpl>, public eModule {
 public:
  explicit InvariantBiasImpl(InvariantBiasOptions options);
  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x);
  /// The dense bias vector (size of the representation); zeros when Fix(ρ) = 0.
  torch::Tensor bias();
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.rep(); }
  const Representation& out_rep() const override { return options.rep(); }

  InvariantBiasOptions options;
  /// Coordinates in an orthonormal basis of Fix(ρ).
  torch::Tensor bias_dof;

 private:
  Constants constants_;
};
TORCH_MODULE(InvariantBias);

}  // namespace symm::nn
