// Constants of the functional core (symm/nn/functional.h) for the Python modules, which own their
// parameters and call the operators torch.ops.symm.* (registered by libsymm) with these as buffers.
#include "bindings.h"

#include <cstring>

#include "symm/nn/functional.h"

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
        return to_dict(nn::functional::linear_constants(in_rep, out_rep, init_scheme));
      },
      py::arg("in_rep"), py::arg("out_rep"), py::arg("init_scheme") = "xavier_uniform",
      "Constants of eLinear's kernels (torch.ops.symm.hom_tiles or hom_blocks), its bias basis, init std per\n"
      "coefficient and isotypic layouts, as float64/int64 CPU tensors by name (see symm::nn::functional::linear_constants).");
  m.def(
      "affine_constants",
      [](const Representation& rep) {
        c10::InferenceMode normal(false);
        return to_dict(nn::functional::affine_constants(rep));
      },
      py::arg("rep"), "Constants of eAffine: change_of_basis, fix, copy_of, diagonal.");
  m.def(
      "layer_norm_constants",
      [](const Representation& rep) {
        c10::InferenceMode normal(false);
        return to_dict(nn::functional::layer_norm_constants(rep));
      },
      py::arg("rep"), "Constants of eLayerNorm's normalisation (torch.ops.symm.layer_normalise): centre, when it centres.");
  m.def(
      "equal_all",
      [](const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
        if (a.size() != b.size()) return false;
        for (size_t i = 0; i < a.size(); ++i) {
          const auto &x = a[i], &y = b[i];
          if (x.device() != y.device() || x.scalar_type() != y.scalar_type() || x.sizes() != y.sizes()) return false;
          if (x.device().is_cpu() && x.is_contiguous() && y.is_contiguous() && !x.is_conj() && !y.is_conj() && !x.is_neg() && !y.is_neg()) {
            if (std::memcmp(x.data_ptr(), y.data_ptr(), x.numel() * x.element_size()) != 0) return false;
          } else if (!torch::equal(x, y)) {
            return false;
          }
        }
        return true;
      },
      py::arg("a"), py::arg("b"),
      "Whether two lists of tensors are equal pair by pair (device, dtype, shape and values) in one call: the eval\n"
      "caches' check that their parameters are unchanged, tens of µs per forward as a Python loop of torch.equal.");
}

}  // namespace symm::python
