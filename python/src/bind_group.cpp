// Groups, irreps and representations. Matrices cross as float64 torch tensors.

#include "bindings.h"
#include "symm/group/named.h"
#include "symm/group/representation.h"
#include "symm/linalg/hom_basis.h"
#include "symm/nn/module.h"

namespace py = pybind11;
using symm::group::Group;
using symm::group::Irrep;
using symm::group::Representation;
using symm::linalg::HomBasis;
using symm::nn::to_eigen;
using symm::nn::to_tensor;

namespace symm::python {
namespace {

using GroupHandle = std::shared_ptr<Group>;  // pybind11 holders cannot be shared_ptr<const T>

GroupHandle handle(const symm::group::GroupPtr& g) { return std::const_pointer_cast<Group>(g); }

Eigen::MatrixXd square_matrix(const torch::Tensor& t, const char* what) {
  if (t.dim() != 2 || t.size(0) != t.size(1))
    throw std::invalid_argument(std::string(what) + ": expected a square matrix, got shape " + c10::str(t.sizes()));
  return to_eigen(t);
}

}  // namespace

void bind_group(py::module_& m) {
  py::class_<Irrep>(m, "Irrep")
      .def_readonly("id", &Irrep::id)
      .def_readonly("dim", &Irrep::dim)
      .def_property_readonly("type", [](const Irrep& r) { return std::string(symm::group::to_string(r.type)); })
      .def_property_readonly("endo_dim", &Irrep::endo_dim)
      .def_property_readonly("is_trivial", &Irrep::is_trivial)
      .def_property_readonly("character", [](const Irrep& r) { return to_tensor(r.character); })
      .def("__call__", [](const Irrep& r, int g) { return to_tensor(r.matrices.at(g)); }, py::arg("g"))
      .def_property_readonly("endomorphisms", [](const Irrep& r) {
        std::vector<torch::Tensor> out;
        for (const auto& e : r.endomorphisms) out.push_back(to_tensor(e));
        return out;
      })
      .def("__repr__", [](const Irrep& r) {
        return "Irrep(" + r.id + ", dim=" + std::to_string(r.dim) + ", type=" + symm::group::to_string(r.type) + ")";
      });

  py::class_<Group, GroupHandle>(m, "Group")
      .def_property_readonly("name", &Group::name)
      .def_property_readonly("order", &Group::order)
      .def("mul", &Group::mul, py::arg("a"), py::arg("b"))
      .def("inv", &Group::inv, py::arg("a"))
      .def_property_readonly("generators", &Group::generators)
      .def_property_readonly("classes", &Group::classes)
      .def_property_readonly("irreps", &Group::irreps)
      .def("irrep", &Group::irrep, py::arg("k"))
      .def("__eq__", [](const Group& a, const Group& b) { return &a == &b; })
      .def("__hash__", [](const Group& g) { return std::hash<const Group*>()(&g); })
      .def("__repr__", [](const Group& g) { return "Group(" + g.name() + ", order=" + std::to_string(g.order()) + ")"; });

  m.def("group", [](const std::string& spec) { return handle(symm::group::make_group(spec)); }, py::arg("spec"));
  m.def("group_from_permutations", [](std::string name, const std::vector<std::vector<int>>& perms) {
        return handle(Group::from_permutations(std::move(name), perms));
      },
      py::arg("name"), py::arg("permutations"));
  m.def("group_from_generators", [](std::string name, const std::vector<torch::Tensor>& generators) {
        std::vector<Eigen::MatrixXd> m;
        for (const auto& t : generators) m.push_back(square_matrix(t, "generator"));
        return handle(Group::from_generators(std::move(name), m));
      },
      py::arg("name"), py::arg("generators"));

  py::class_<Representation>(m, "Representation")
      .def(py::init([](const GroupHandle& g, std::vector<int> irreps, const torch::Tensor& q, std::string name) {
             return Representation(g, std::move(irreps), square_matrix(q, "change_of_basis"), std::move(name));
           }),
           py::arg("group"), py::arg("irreps"), py::arg("change_of_basis"), py::arg("name") = "")
      .def_static("regular", [](const GroupHandle& g) { return Representation::regular(g); }, py::arg("group"))
      .def_static("trivial", [](const GroupHandle& g, int copies) { return Representation::trivial(g, copies); },
                  py::arg("group"), py::arg("copies") = 1)
      .def_static("irrep", [](const GroupHandle& g, int k) { return Representation::irrep(g, k); }, py::arg("group"), py::arg("k"))
      .def_static("_from_generators", [](const GroupHandle& g, const std::vector<torch::Tensor>& images, std::string name) {
             std::vector<Eigen::MatrixXd> m;
             for (const auto& t : images) m.push_back(square_matrix(t, "generator image"));
             return Representation::from_generators(g, m, std::move(name));
           },
           py::arg("group"), py::arg("images"), py::arg("name") = "")
      .def_static("parse", [](const GroupHandle& g, const std::string& spec) { return Representation::parse(g, spec); },
                  py::arg("group"), py::arg("spec"))
      .def_property_readonly("group", [](const Representation& r) { return handle(r.group()); })
      .def_property_readonly("size", &Representation::size)
      .def_property_readonly("name", &Representation::name)
      .def_property_readonly("irreps", &Representation::irreps)
      .def_property_readonly("change_of_basis", [](const Representation& r) { return to_tensor(r.change_of_basis()); })
      .def_property_readonly("multiplicities", &Representation::multiplicities)
      .def("__call__", [](const Representation& r, int g) {
             if (g < 0 || g >= r.group()->order())
               throw py::index_error("element " + std::to_string(g) + " of a group of order " + std::to_string(r.group()->order()));
             return to_tensor(r(g));
           },
           py::arg("g"))
      .def_property_readonly("character", [](const Representation& r) { return to_tensor(r.character()); })
      .def("isotypic_order", &Representation::isotypic_order)
      .def("change_basis", [](const Representation& r, const torch::Tensor& p, std::string name) {
             return r.change_basis(square_matrix(p, "change of basis"), std::move(name));
           },
           py::arg("p"), py::arg("name") = "")
      .def("copies", &Representation::copies, py::arg("m"))
      .def_property_readonly("invariant_basis", [](const Representation& r) { return to_tensor(r.invariant_basis()); })
      .def_property_readonly("regular_copies", [](const Representation& r) -> std::optional<int> {
        int m = 0;
        return r.is_regular_copies(&m) ? std::optional<int>(m) : std::nullopt;
      })
      .def_property_readonly("fingerprint", &Representation::fingerprint)
      .def_property_readonly("decomposition_fingerprint", &Representation::decomposition_fingerprint)
      .def("__add__", [](const Representation& a, const Representation& b) { return direct_sum(a, b); })
      .def("same", [](const Representation& a, const Representation& b, double tol) { return same_representation(a, b, tol); },
           py::arg("other"), py::arg("tol") = 1e-9)
      .def("__repr__", [](const Representation& r) {
        return "Representation(" + r.name() + ", group=" + r.group()->name() + ", size=" + std::to_string(r.size()) + ")";
      });
  // The basis of Hom_G(in, out) that eLinear's coefficients live in: what the Python modules need to
  // initialise and project (the forward's kernels are operators, torch.ops.symm).
  py::class_<HomBasis::Block>(m, "HomBlock")
      .def_readonly("irrep", &HomBasis::Block::irrep)
      .def_readonly("dim", &HomBasis::Block::dim)
      .def_readonly("endo", &HomBasis::Block::endo)
      .def_readonly("m_in", &HomBasis::Block::m_in)
      .def_readonly("m_out", &HomBasis::Block::m_out)
      .def_readonly("offset", &HomBasis::Block::offset)
      .def_property_readonly("q_in", [](const HomBasis::Block& b) { return to_tensor(b.q_in); })
      .def_property_readonly("q_out", [](const HomBasis::Block& b) { return to_tensor(b.q_out); });
  py::class_<HomBasis>(m, "HomBasis")
      .def(py::init<const Representation&, const Representation&>(), py::arg("in_rep"), py::arg("out_rep"))
      .def_property_readonly("dim", &HomBasis::dim)
      .def_property_readonly("blocks", &HomBasis::blocks)
      .def("init_std", [](const HomBasis& b, const std::string& scheme) {
             return to_tensor(b.init_std(symm::linalg::parse_init_scheme(scheme)));
           },
           py::arg("scheme"))
      .def("synthesize", [](const HomBasis& b, const torch::Tensor& theta) {
             return to_tensor(b.synthesize(Eigen::VectorXd(to_eigen(theta.reshape({-1, 1})))));
           },
           py::arg("theta"))
      .def("coefficients", [](const HomBasis& b, const torch::Tensor& w) {
             if (w.dim() != 2 || w.size(0) != b.out_rep().size() || w.size(1) != b.in_rep().size())
               throw std::invalid_argument("HomBasis.coefficients: expected a weight of shape [" +
                                           std::to_string(b.out_rep().size()) + ", " + std::to_string(b.in_rep().size()) +
                                           "], got " + c10::str(w.sizes()));
             return to_tensor(Eigen::VectorXd(b.coefficients(to_eigen(w))));
           },
           py::arg("weight"));
}

}  // namespace symm::python
