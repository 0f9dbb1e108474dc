#pragma once
// Real-time inference of a flow-matching policy: a conditional Transformer regressor (equivariant or plain)
// compiled, once, into the dense float32 program it computes in eval mode, and sampled with Euler steps of
// the flow from given noise.
//
// In eval mode every equivariant layer is a dense linear map (eLinear: its expanded weight; eRMSNorm: a
// normalisation followed by an eAffine), so the compiled program is the plain Transformer's: the norms'
// affine maps are folded into the next linear map, the invariant projections of the step and positional
// embeddings into constant tokens, and the biases into one row added per token. The condition encoder acts
// token by token (the eMLP encoder), so per control step the observation tokens are encoded once and each
// cross-attention's keys and values computed from them once, for every flow step; the step tokens of the
// fixed time grid and their keys and values are constants of the policy. Buffers are sized on the first call
// of a batch size; later calls of that size or less allocate nothing.
#include <cstdint>
#include <vector>

#include <Eigen/Dense>
#include <torch/torch.h>

#include "symm/nn/cond_regressor.h"

namespace symm::nn {

struct FlowPolicyOptions {
  /// Euler steps from noise (t = 0) to the action chunk (t = 1).
  TORCH_ARG(int64_t, flow_steps) = 10;
  /// The step k the regressor sees at flow time t: k = step_scale · t.
  TORCH_ARG(double, step_scale) = 100.0;
  /// Actions returned per control step (the first `chunk` of the horizon); 0: the whole horizon.
  TORCH_ARG(int64_t, chunk) = 0;
  /// What the regressor outputs: false, the velocity a − ε of the flow (x += v/n per step); true, the clean
  /// chunk â (x += (â − x)/(n − j) at step j: the straight line from x to â, so the last step lands on â).
  TORCH_ARG(bool, predicts_action) = false;
};

class FlowPolicy {
 public:
  /// Compiles a regressor in its current weights (its in_rep and out_rep the same, a token-wise condition
  /// encoder, no causal masks, rmsnorm). Throws c10::Error naming what is not supported.
  FlowPolicy(eCondTransformerRegressorImpl& model, FlowPolicyOptions options = {});
  FlowPolicy(CondTransformerRegressorImpl& model, FlowPolicyOptions options = {});

  /// One control step: observations (B, cond_horizon, cond_dim) and noise (B, horizon, action_dim), float32
  /// on the CPU → the action chunk (B, chunk, action_dim). Bad input is refused before any work (c10::Error
  /// naming what came); the policy stays usable.
  torch::Tensor act(const torch::Tensor& observations, const torch::Tensor& noise);
  /// The same into `out` (B, chunk, action_dim), float32, contiguous: no allocation once this batch size (or a
  /// larger one) has run.
  void act_into(const torch::Tensor& observations, const torch::Tensor& noise, torch::Tensor& out);
  /// The compiled regressor's output for X (B, horizon, action_dim) at the grid's flow step `step` (k =
  /// step_scale · step / flow_steps) given observations, for comparison with the regressor's forward.
  torch::Tensor velocity(const torch::Tensor& X, int64_t step, const torch::Tensor& observations);

  int64_t horizon() const { return horizon_; }
  int64_t chunk() const { return chunk_; }
  int64_t action_dim() const { return action_dim_; }
  int64_t cond_horizon() const { return cond_horizon_; }
  int64_t cond_dim() const { return cond_dim_; }
  const FlowPolicyOptions& options() const { return options_; }

  using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Row = Eigen::Matrix<float, 1, Eigen::Dynamic>;
  /// x ↦ x·weight + bias on row vectors.
  struct Affine {
    Matrix weight;      // emptied by finish() for the maps the run time multiplies through w
    Row bias;
    torch::Tensor w{};  // weight as a tensor of its own, for the run-time products (set by finish())
  };
  struct Layer {
    Affine qkv, self_out, q, kv, cross_out, ff1, ff2;  // norm affines folded into qkv, q and ff1
    Matrix step_kv;                                     // (flow_steps, 2D): keys and values of the step tokens
  };

 private:
  struct Buffers;
  void check(const torch::Tensor& observations, const torch::Tensor* noise, int64_t noise_len) const;
  struct BufferViews;
  BufferViews& reserve(int64_t batch);
  void encode(const float* observations, int64_t batch, BufferViews& views);
  void evaluate(int64_t batch, int64_t step, BufferViews& views);  // the velocity at buffer x into buffer v
  void finish();  // after construction: the weights' tensors and the buffers

  FlowPolicyOptions options_;
  int64_t horizon_ = 0, chunk_ = 0, action_dim_ = 0, cond_horizon_ = 0, cond_dim_ = 0, dim_ = 0, heads_ = 0;
  Affine input, cond, cond1, cond2, head;  // head: the final norm's affine folded in
  Matrix input_pos, cond_pos;              // per-token additive rows (biases and invariant positions)
  std::vector<Layer> layers;
  std::shared_ptr<Buffers> buffers_;
};

}  // namespace symm::nn
