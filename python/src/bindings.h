#pragma once
// Pieces of the symm._C extension module, each binding one layer of the library.
#include <pybind11/stl.h>
#include <torch/extension.h>

namespace symm::python {

void bind_group(pybind11::module_& m);
void bind_nn(pybind11::module_& m);
void bind_ops(pybind11::module_& m);
void bind_models(pybind11::module_& m);
void bind_stats(pybind11::module_& m);
void bind_policy(pybind11::module_& m);

}  // namespace symm::python
