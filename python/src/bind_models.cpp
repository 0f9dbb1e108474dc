// The C++ models for Python: InvariantBias, eMLP, iMLP and the conditional regressors, each with its options as
// keyword arguments and its forward. The Python modules (symm/nn/mlp.py, cond_regressor.py) are held equal to
// these, and symm.save/load write and read the Python modules through them (symm/checkpoint.py).
#include <sstream>

#include "bindings.h"
#include "symm/nn/cond_regressor.h"
#include "symm/nn/mlp.h"

namespace py = pybind11;
using namespace symm::nn;

namespace symm::python {
namespace {

template <typename Impl>
using ModuleClass = py::class_<Impl, torch::nn::Module, std::shared_ptr<Impl>>;

template <typename Impl>
std::string describe(const Impl& m) {
  std::ostringstream s;
  m.pretty_print(s);
  return s.str();
}

Activation activation(const std::string& name) {
  if (name == "mish") return Activation([](const torch::Tensor& x) { return torch::mish(x); }, "mish");
  return Activation::from_name(name);
}

template <typename Impl>
ModuleClass<Impl>& equivariant(ModuleClass<Impl>& c) {
  return c.def_property_readonly("in_rep", [](const Impl& m) { return m.in_rep(); })
      .def_property_readonly("out_rep", [](const Impl& m) { return m.out_rep(); })
      .def("__repr__", &describe<Impl>)
      .def("reset_parameters", [](Impl& m) { m.reset_parameters(); });
}

}  // namespace

void bind_models(py::module_& m) {
  const auto release = py::call_guard<py::gil_scoped_release>();

  ModuleClass<InvariantBiasImpl> bias(m, "InvariantBias");
  equivariant(bias)
      .def(py::init([](const Representation& rep) { return std::make_shared<InvariantBiasImpl>(InvariantBiasOptions(rep)); }),
           py::arg("in_rep"))
      .def("forward", &InvariantBiasImpl::forward, release);

  ModuleClass<eMLPImpl> emlp(m, "eMLP");
  equivariant(emlp)
      .def(py::init([](const Representation& in, const Representation& out, std::vector<int64_t> hidden, const std::string& act,
                       double dropout, bool bias, const std::string& init) {
             return std::make_shared<eMLPImpl>(
                 eMLPOptions(in, out, std::move(hidden)).activation(activation(act)).dropout(dropout).bias(bias).init_scheme(init));
           }),
           py::arg("in_rep"), py::arg("out_rep"), py::arg("hidden_units"), py::arg("activation") = "relu",
           py::arg("dropout") = 0.0, py::arg("bias") = true, py::arg("init_scheme") = "xavier_normal")
      .def("forward", &eMLPImpl::forward, release);

  ModuleClass<iMLPImpl> imlp(m, "iMLP");
  equivariant(imlp)
      .def(py::init([](const Representation& in, int64_t out_dim, std::vector<int64_t> hidden, const std::string& act,
                       double dropout, bool bias, const std::string& init) {
             return std::make_shared<iMLPImpl>(
                 iMLPOptions(in, out_dim, std::move(hidden)).activation(activation(act)).dropout(dropout).bias(bias).init_scheme(init));
           }),
           py::arg("in_rep"), py::arg("out_dim"), py::arg("hidden_units"), py::arg("activation") = "relu",
           py::arg("dropout") = 0.0, py::arg("bias") = true, py::arg("init_scheme") = "xavier_normal")
      .def("forward", &iMLPImpl::forward, release)
      .def("invariants", &iMLPImpl::invariants, release);

  ModuleClass<eCondTransformerRegressorImpl> ecrt(m, "eCondTransformerRegressor");
  equivariant(ecrt)
      .def(py::init([](const Representation& in, const Representation& cond, const Representation& out, int64_t in_horizon,
                       int64_t cond_horizon, int64_t num_layers, int64_t heads, int64_t dim, double p_drop_emb, double p_drop_attn,
                       bool causal, int64_t num_cond_layers, const std::string& norm_module, const std::string& init) {
             return std::make_shared<eCondTransformerRegressorImpl>(
                 eCondTransformerRegressorOptions(in, cond, out, in_horizon, cond_horizon, num_layers, heads, dim)
                     .p_drop_emb(p_drop_emb)
                     .p_drop_attn(p_drop_attn)
                     .causal_attn(causal)
                     .num_cond_layers(num_cond_layers)
                     .norm_module(norm_module)
                     .init_scheme(init));
           }),
           py::arg("in_rep"), py::arg("cond_rep"), py::arg("out_rep"), py::arg("in_horizon"), py::arg("cond_horizon"),
           py::arg("num_layers"), py::arg("num_attention_heads"), py::arg("embedding_dim"), py::arg("p_drop_emb") = 0.1,
           py::arg("p_drop_attn") = 0.1, py::arg("causal_attn") = false, py::arg("num_cond_layers") = 0,
           py::arg("norm_module") = "rmsnorm", py::arg("init_scheme") = "xavier_uniform")
      .def("forward",
           [](eCondTransformerRegressorImpl& r, const torch::Tensor& X, const torch::Tensor& k, const torch::Tensor& Z) {
             return r.forward(X, k, Z);
           },
           py::arg("X"), py::arg("opt_step"), py::arg("Z"), release)
      .def("check_equivariance",
           [](eCondTransformerRegressorImpl& r, int64_t batch, int64_t in_len, int64_t cond_len, int samples, double atol,
              double rtol) {
             const auto e = r.check_equivariance(batch, in_len, cond_len, samples, atol, rtol);
             return std::map<std::string, double>{{"max_relative", e.max_relative}, {"max_absolute", e.max_absolute},
                                                  {"worst_element", e.worst_element}};
           },
           py::arg("batch_size") = 4, py::arg("in_len") = 0, py::arg("cond_len") = 0, py::arg("samples") = 64,
           py::arg("atol") = 1e-4, py::arg("rtol") = 1e-4, release);

  ModuleClass<CondTransformerRegressorImpl> crt(m, "CondTransformerRegressor");
  crt.def(py::init([](int64_t in_dim, int64_t cond_dim, int64_t out_dim, int64_t in_horizon, int64_t cond_horizon, int64_t num_layers,
                      int64_t heads, int64_t dim, double p_drop_emb, double p_drop_attn, bool causal, int64_t num_cond_layers,
                      const std::string& norm_module) {
            return std::make_shared<CondTransformerRegressorImpl>(
                CondTransformerRegressorOptions(in_dim, cond_dim, out_dim, in_horizon, cond_horizon, num_layers, heads, dim)
                    .p_drop_emb(p_drop_emb)
                    .p_drop_attn(p_drop_attn)
                    .causal_attn(causal)
                    .num_cond_layers(num_cond_layers)
                    .norm_module(norm_module));
          }),
          py::arg("in_dim"), py::arg("cond_dim"), py::arg("out_dim"), py::arg("in_horizon"), py::arg("cond_horizon"),
          py::arg("num_layers"), py::arg("num_attention_heads"), py::arg("embedding_dim"), py::arg("p_drop_emb") = 0.1,
          py::arg("p_drop_attn") = 0.1, py::arg("causal_attn") = false, py::arg("num_cond_layers") = 0,
          py::arg("norm_module") = "rmsnorm")
      .def("forward",
           [](CondTransformerRegressorImpl& r, const torch::Tensor& X, const torch::Tensor& k, const torch::Tensor& Z) {
             return r.forward(X, k, Z);
           },
           py::arg("X"), py::arg("opt_step"), py::arg("Z"), release)
      .def("__repr__", &describe<CondTransformerRegressorImpl>)
      .def("reset_parameters", [](CondTransformerRegressorImpl& r) { r.reset_parameters(); });
}

}  // namespace symm::python
