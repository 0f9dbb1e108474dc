#pragma once
// Time-series encoders of symm_learning's models.time_cnn, and its plain MLP:
// eTimeCNNEncoder: eConv1d blocks (each halving the horizon by a stride-2 convolution or a max pool), an
// optional eRMSNorm over the channels, a pointwise activation (hidden channels are whole regular copies in the
// permutation basis, where it commutes with the group), then an eMLP head, or an iMLP head when out_rep is
// trivial only. TimeCNNEncoder and MLP: the same from torch::nn modules, unconstrained baselines.
#include <optional>
#include <string>
#include <vector>

#include "symm/nn/activation.h"
#include "symm/nn/conv.h"
#include "symm/nn/mlp.h"
#include "symm/nn/normalization.h"

namespace symm::nn {

struct eTimeCNNEncoderOptions {
  eTimeCNNEncoderOptions(Representation in_rep, Representation out_rep, std::vector<int64_t> hidden_channels, int64_t time_horizon)
      : in_rep_(std::move(in_rep)), out_rep_(std::move(out_rep)), hidden_channels_(std::move(hidden_channels)),
        time_horizon_(time_horizon) {}
  TORCH_ARG(Representation, in_rep);
  /// Trivial irreps only: an invariant (iMLP) head; otherwise an equivariant (eMLP) head.
  TORCH_ARG(Representation, out_rep);
  /// Channels of each convolution block, rounded up to whole regular copies; at least one block.
  TORCH_ARG(std::vector<int64_t>, hidden_channels);
  /// Length H of the input series.
  TORCH_ARG(int64_t, time_horizon);
  TORCH_ARG(Activation, activation) = Activation::relu();
  /// eRMSNorm (eps 1e-6) over the channels after every convolution, as symm_learning's batch_norm flag.
  TORCH_ARG(bool, batch_norm) = false;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(std::vector<int64_t>, mlp_hidden) = std::vector<int64_t>{128};
  /// "stride" (kernel 3, stride 2, padding 1) or "pooling" (stride 1, then max pool 2).
  TORCH_ARG(std::string, downsample) = "stride";
  /// Concatenate the input's last frame to the flattened features before the head.
  TORCH_ARG(bool, append_last_frame) = false;
  TORCH_ARG(std::string, init_scheme) = "xavier_uniform";
  /// The regular representation whose copies make every hidden width, of the blocks (whose norms scale its
  /// irrep copies) and of the head (hidden_rep.h); ours by default.
  TORCH_ARG(std::optional<Representation>, hidden_rep) = std::nullopt;
};

class eTimeCNNEncoderImpl : public torch::nn::Cloneable<eTimeCNNEncoderImpl>, public eModule {
 public:
  explicit eTimeCNNEncoderImpl(eTimeCNNEncoderOptions options);
  void reset() override;
  void reset_parameters();
  /// x (N, in_rep.size(), time_horizon) → (N, out_rep.size()).
  torch::Tensor forward(const torch::Tensor& x);
  /// Frames left after the blocks.
  int64_t time_horizon_out() const { return horizon_out_; }
  /// Representation of the head's input: the last block's channels once per remaining frame, time-major
  /// (then in_rep with append_last_frame).
  const Representation& head_in_rep() const { return head_in_rep_; }
  /// One regular copy as the hidden widths decompose it: options.hidden_rep or ours.
  const Representation& hidden_rep() const { return hidden_rep_; }
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.out_rep(); }
  std::optional<Representation> foreign_decomposition() const override { return unless_ours(hidden_rep_); }

  eTimeCNNEncoderOptions options;
  torch::nn::ModuleList convs{nullptr};
  /// One eRMSNorm per block with batch_norm; empty otherwise.
  torch::nn::ModuleList norms{nullptr};
  /// Exactly one of the two heads is set.
  eMLP equivariant_head{nullptr};
  iMLP invariant_head{nullptr};

 private:
  int64_t horizon_out_ = 0;
  Representation hidden_rep_;
  Representation head_in_rep_;
};
TORCH_MODULE(eTimeCNNEncoder);

struct MLPOptions {
  MLPOptions(int64_t in_dim, int64_t out_dim, std::vector<int64_t> hidden_units)
      : in_dim_(in_dim), out_dim_(out_dim), hidden_units_(std::move(hidden_units)) {}
  TORCH_ARG(int64_t, in_dim);
  TORCH_ARG(int64_t, out_dim);
  /// Width of each hidden layer; at least one.
  TORCH_ARG(std::vector<int64_t>, hidden_units);
  TORCH_ARG(Activation, activation) = Activation::relu();
  /// torch::nn::BatchNorm1d after every hidden linear layer.
  TORCH_ARG(bool, batch_norm) = false;
  TORCH_ARG(bool, bias) = true;
};

/// Linear → (BatchNorm1d) → activation per hidden layer, then a linear head; x (..., in_dim) → (..., out_dim).
class MLPImpl : public torch::nn::Cloneable<MLPImpl> {
 public:
  MLPImpl(int64_t in_dim, int64_t out_dim, std::vector<int64_t> hidden_units)
      : MLPImpl(MLPOptions(in_dim, out_dim, std::move(hidden_units))) {}
  explicit MLPImpl(MLPOptions options);
  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override;

  MLPOptions options;
  /// The hidden layers, then the head.
  torch::nn::ModuleList linears{nullptr};
  torch::nn::ModuleList batch_norms{nullptr};
};
TORCH_MODULE(MLP);

struct TimeCNNEncoderOptions {
  TimeCNNEncoderOptions(int64_t in_dim, int64_t out_dim, std::vector<int64_t> hidden_channels, int64_t horizon)
      : in_dim_(in_dim), out_dim_(out_dim), hidden_channels_(std::move(hidden_channels)), horizon_(horizon) {}
  TORCH_ARG(int64_t, in_dim);
  TORCH_ARG(int64_t, out_dim);
  TORCH_ARG(std::vector<int64_t>, hidden_channels);
  TORCH_ARG(int64_t, horizon);
  TORCH_ARG(Activation, activation) = Activation::relu();
  /// RMS normalisation (eps 1e-6, learnable weight) over the channels after every convolution.
  TORCH_ARG(bool, normalize) = false;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(std::vector<int64_t>, mlp_hidden) = std::vector<int64_t>{128};
  TORCH_ARG(std::string, downsample) = "stride";
  TORCH_ARG(bool, append_last_frame) = false;
};

/// The unconstrained baseline: torch::nn::Conv1d blocks, flattened channel-major as symm_learning's, an MLP head
/// whose last weight is orthogonal at initialisation.
class TimeCNNEncoderImpl : public torch::nn::Cloneable<TimeCNNEncoderImpl> {
 public:
  explicit TimeCNNEncoderImpl(TimeCNNEncoderOptions options);
  void reset() override;
  void reset_parameters();
  /// x (N, in_dim, horizon) → (N, out_dim).
  torch::Tensor forward(const torch::Tensor& x);
  int64_t horizon_out() const { return horizon_out_; }
  void pretty_print(std::ostream& stream) const override;

  TimeCNNEncoderOptions options;
  torch::nn::ModuleList convs{nullptr};
  /// The RMS norms' weights (one per block with normalize).
  torch::nn::ParameterList norm_weights{nullptr};
  MLP head{nullptr};

 private:
  int64_t horizon_out_ = 0;
};
TORCH_MODULE(TimeCNNEncoder);

}  // namespace symm::nn
