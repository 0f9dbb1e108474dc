// The functional core (symm/nn/functional.h) as PyTorch operators, torch.ops.symm.<name>, each registered as
// CompositeImplicitAutograd (and FuncTorchBatched): the functions themselves, whose hand kernels run in plain
// eager mode only.
#include "symm/nn/functional.h"

#include <torch/library.h>

namespace symm::nn::functional {

bool operators_registered() { return true; }

}  // namespace symm::nn::functional

TORCH_LIBRARY(symm, m) {
  namespace f = symm::nn::functional;
  m.def("hom_tiles(Tensor theta, Tensor? index, Tensor tiles, int m_out) -> Tensor");
  m.def("hom_blocks(Tensor theta, Tensor[] endomorphisms, Tensor[] q_out, Tensor q_in_t, int[] m_in) -> Tensor");
  m.def("isotypic_weights(Tensor theta, Tensor[] index, Tensor[] endomorphisms, int[] dims) -> Tensor[]");
  m.def("isotypic_blocks(Tensor z, Tensor?[] weights, Tensor?[] biases, int[] in_rows, int[] out_rows) -> Tensor");
  m.def("to_isotypic(Tensor x, Tensor basis, int chunks) -> Tensor");
  m.def("from_isotypic(Tensor z, Tensor basis, int chunks) -> Tensor");
  m.def("rms_normalise(Tensor x, int dim, float eps) -> Tensor");
  m.def("layer_normalise(Tensor x, Tensor? centre, int dim, float eps) -> Tensor");
  m.def("batch_norm_train(Tensor x, Tensor basis, Tensor copy_of, Tensor dims, Tensor trivial, Tensor? weight, Tensor? bias, "
        "float eps) -> (Tensor, Tensor, Tensor)");
  m.def("encoder_layer_eval(Tensor x, Tensor w_in, Tensor? b_in, Tensor w_out, Tensor? b_out, Tensor w1, Tensor? b1, Tensor w2, "
        "Tensor? b2, int heads, Tensor? centre1, float eps1, Tensor? centre2, float eps2, str activation) -> Tensor");
  m.impl("hom_tiles", c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(f::hom_tiles));
  m.impl("hom_blocks", c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(f::hom_blocks));
  m.impl("isotypic_weights", c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(f::isotypic_weights));
  m.impl("isotypic_blocks", c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(f::isotypic_blocks));
  m.impl("to_isotypic", c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(f::to_isotypic));
  m.impl("from_isotypic", c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(f::from_isotypic));
  m.impl("rms_normalise", c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(f::rms_normalise));
  m.impl("layer_normalise", c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(f::layer_normalise));
  m.impl("batch_norm_train", c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(f::batch_norm_train));
  m.impl("encoder_layer_eval", c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(f::encoder_layer_eval));
  // Under vmap the same functions run on the batched tensors, so that each LibTorch operator inside meets its
  // own batching rule: vmap's fallback is a loop over the batch, and has none for operators with tensor lists.
  m.impl("hom_tiles", c10::DispatchKey::FuncTorchBatched, TORCH_FN(f::hom_tiles));
  m.impl("hom_blocks", c10::DispatchKey::FuncTorchBatched, TORCH_FN(f::hom_blocks));
  m.impl("isotypic_weights", c10::DispatchKey::FuncTorchBatched, TORCH_FN(f::isotypic_weights));
  m.impl("isotypic_blocks", c10::DispatchKey::FuncTorchBatched, TORCH_FN(f::isotypic_blocks));
  m.impl("to_isotypic", c10::DispatchKey::FuncTorchBatched, TORCH_FN(f::to_isotypic));
  m.impl("from_isotypic", c10::DispatchKey::FuncTorchBatched, TORCH_FN(f::from_isotypic));
  m.impl("rms_normalise", c10::DispatchKey::FuncTorchBatched, TORCH_FN(f::rms_normalise));
  m.impl("layer_normalise", c10::DispatchKey::FuncTorchBatched, TORCH_FN(f::layer_normalise));
  m.impl("batch_norm_train", c10::DispatchKey::FuncTorchBatched, TORCH_FN(f::batch_norm_train));
}
