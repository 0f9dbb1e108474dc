// symm._C: groups, representations and the equivariant modules of symm, for Python.
#include "bindings.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "C++ core of symm: finite groups, representations, equivariant LibTorch modules, checkpoints";
  // The library's errors reach Python with their own message: c10::Error (what a module rejects) as
  // RuntimeError without the C++ backtrace; std::invalid_argument as ValueError (pybind11's default).
  pybind11::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const c10::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    }
  });
  symm::python::bind_group(m);
  symm::python::bind_nn(m);
  symm::python::bind_ops(m);
  symm::python::bind_models(m);
  symm::python::bind_stats(m);
  symm::python::bind_policy(m);
}
