// FlowPolicy for Python: the compiled control step of a conditional regressor (symm/policy.py builds it from a
// symm.nn regressor through the regressor's C++ twin). The GIL is released while a step runs.
#include "bindings.h"
#include "symm/nn/policy.h"

namespace py = pybind11;
using namespace symm::nn;

namespace symm::python {

void bind_policy(py::module_& m) {
  const auto release = py::call_guard<py::gil_scoped_release>();
  const auto options = [](int64_t flow_steps, double step_scale, int64_t chunk, bool predicts_action) {
    return FlowPolicyOptions().flow_steps(flow_steps).step_scale(step_scale).chunk(chunk).predicts_action(predicts_action);
  };
  py::class_<FlowPolicy>(m, "FlowPolicy")
      .def(py::init([options](eCondTransformerRegressorImpl& model, int64_t flow_steps, double step_scale, int64_t chunk,
                              bool predicts_action) {
             return FlowPolicy(model, options(flow_steps, step_scale, chunk, predicts_action));
           }),
           py::arg("model"), py::arg("flow_steps"), py::arg("step_scale"), py::arg("chunk"), py::arg("predicts_action"))
      .def(py::init([options](CondTransformerRegressorImpl& model, int64_t flow_steps, double step_scale, int64_t chunk,
                              bool predicts_action) {
             return FlowPolicy(model, options(flow_steps, step_scale, chunk, predicts_action));
           }),
           py::arg("model"), py::arg("flow_steps"), py::arg("step_scale"), py::arg("chunk"), py::arg("predicts_action"))
      .def("act", &FlowPolicy::act, py::arg("observations"), py::arg("noise"), release)
      .def("act_into",
           [](FlowPolicy& p, const torch::Tensor& observations, const torch::Tensor& noise, torch::Tensor out) {
             p.act_into(observations, noise, out);
           },
           py::arg("observations"), py::arg("noise"), py::arg("out"), release)
      .def("velocity", &FlowPolicy::velocity, py::arg("X"), py::arg("step"), py::arg("observations"), release)
      .def_property_readonly("horizon", &FlowPolicy::horizon)
      .def_property_readonly("chunk", &FlowPolicy::chunk)
      .def_property_readonly("action_dim", &FlowPolicy::action_dim)
      .def_property_readonly("cond_horizon", &FlowPolicy::cond_horizon)
      .def_property_readonly("cond_dim", &FlowPolicy::cond_dim);
}

}  // namespace symm::python
