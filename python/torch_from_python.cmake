# Points find_package(Torch) at the LibTorch inside the torch wheel of the Python that will import the
# extension (Python_EXECUTABLE, as scikit-build-core sets it): the module must be built against the very
# libtorch that `import torch` loads. Under pip's build isolation that torch is not on the isolated path, so
# a second query runs the interpreter in isolated mode (-I), which sees the environment's own site-packages.
find_package(Python 3.8 COMPONENTS Interpreter Development.Module REQUIRED)
set(_query "import torch, os; print(os.path.dirname(torch.__file__))")
execute_process(COMMAND "${Python_EXECUTABLE}" -c "${_query}" OUTPUT_VARIABLE _torch_root
                RESULT_VARIABLE _rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT _rc EQUAL 0)
  execute_process(COMMAND "${Python_EXECUTABLE}" -I -c "${_query}" OUTPUT_VARIABLE _torch_root
                  RESULT_VARIABLE _rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "SYMM_PYTHON: ${Python_EXECUTABLE} cannot import torch; install torch (2.x) first")
endif()
# The torch package is a CMake prefix (lib/, share/cmake/): put first, it is where TorchConfig's
# find_dependency(Caffe2) and find_library(torch, c10, ...) look before the system directories, so a system
# LibTorch (Debian's libtorch-dev) can supply none of the extension's libraries.
list(PREPEND CMAKE_PREFIX_PATH "${_torch_root}")
set(Torch_DIR "${_torch_root}/share/cmake/Torch" CACHE PATH "LibTorch of the Python torch package" FORCE)
