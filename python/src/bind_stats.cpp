// symm::stats (statistics with the symmetry imposed, and the Hom_G linear algebra on torch tensors), bound
// as symm._C.stats only for the agreement tests of the pure-Python symm.stats and symm.linalg.
#include "bindings.h"
#include "symm/stats/linalg.h"
#include "symm/stats/stats.h"

namespace py = pybind11;
using symm::group::Representation;
namespace st = symm::stats;

namespace symm::python {

void bind_stats(py::module_& m) {
  auto s = m.def_submodule("stats", "symm::stats, the C++ reference of symm.stats and symm.linalg");
  s.def("invariant_orthogonal_projector", [](const Representation& rep) { return st::invariant_orthogonal_projector(rep); },
        py::arg("rep"));
  s.def("mean", &st::mean, py::arg("x"), py::arg("rep"));
  s.def("var", [](const torch::Tensor& x, const Representation& rep, std::optional<torch::Tensor> center) {
          return st::var(x, rep, center ? *center : torch::Tensor());
        },
        py::arg("x"), py::arg("rep"), py::arg("center") = py::none());
  s.def("var_mean", &st::var_mean, py::arg("x"), py::arg("rep"));
  s.def("cov", &st::cov, py::arg("x"), py::arg("y"), py::arg("rep_x"), py::arg("rep_y"), py::arg("uncentered") = false);
  s.def("equiv_orthogonal_projection", &st::equiv_orthogonal_projection, py::arg("w"), py::arg("rep_x"), py::arg("rep_y"));
  s.def("equiv_orthogonal_projection_coefficients", &st::equiv_orthogonal_projection_coefficients, py::arg("w"),
        py::arg("rep_x"), py::arg("rep_y"));
  s.def("equiv_linear_map", &st::equiv_linear_map, py::arg("theta"), py::arg("rep_x"), py::arg("rep_y"));
  s.def("lstsq", &st::lstsq, py::arg("x"), py::arg("y"), py::arg("rep_x"), py::arg("rep_y"));
  s.def("irrep_radii", &st::irrep_radii, py::arg("x"), py::arg("rep"));
  s.def("isotypic_signal2irreducible_subspaces", &st::isotypic_signal2irreducible_subspaces, py::arg("x"), py::arg("rep"));
}

}  // namespace symm::python
