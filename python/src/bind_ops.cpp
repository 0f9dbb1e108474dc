// Constants of the functional core (symm/nn/functional.h) for the Python modules, which own their
// parameters and call the operators torch.ops.symm.* (registered by libsymm) with these as buffers.
#include "bindings.h"
#include "symm/nn/affine.h"
#include "symm/nn/functional.h"
#include "symm/nn/linear.h"
#include "symm/nn/normalization.h"

namespace py = pybind11;
using symm::group::Representation;
namespace nn = symm::nn;

namespace symm::python {
namespace {

py::dict to_dict(const nn::NamedConstants& constants) {
  py::dict d;
  for (const auto& [name, t] : constants) d[py::str(name)] = t.clone();
  return d;
}

}  // namespace

void bind_ops(py::module_& m) {
  // The operators live in libsymm's objects; referencing them keeps their registration in this module.
  if (!nn::functional::operators_registered()) throw std::runtime_error("symm: the operators torch.ops.symm are not registered");
  m.def(
      "linear_constants",
      [](const Representation& in_rep, const Representation& out_rep, const std::string& init_scheme) {
        c10::InferenceMode normal(false);  // buffers a later forward with autograd may save
        return to_dict(nn::eLinearImpl(nn::eLinearOptions(in_rep, out_rep).init_scheme(init_scheme)).functional_constants());
      },
      py::arg("in_rep"), py::arg("out_rep"), py::arg("init_scheme") = "xavier_uniform",
      "Constants of eLinear's kernels (torch.ops.symm.hom_tiles or hom_blocks), its bias basis, init std per\n"
      "coefficient and isotypic layouts, as float64/int64 CPU tensors by name (see symm::nn::eLinearImpl::functional_constants).");
  m.def(
      "affine_constants",
      [](const Representation& rep) {
        c10::InferenceMode normal(false);
        return to_dict(nn::eAffineImpl(nn::eAffineOptions(rep)).functional_constants());
      },
      py::arg("rep"), "Constants of eAffine: change_of_basis, fix, copy_of, diagonal.");
  m.def(
      "layer_norm_constants",
      [](const Representation& rep) {
        c10::InferenceMode normal(false);
        return to_dict(nn::eLayerNormImpl(nn::eLayerNormOptions(rep)).functional_constants());
      },
      py::arg("rep"), "Constants of eLayerNorm's normalisation (torch.ops.symm.layer_normalise): centre, when it centres.");
}

}  // namespace symm::python
