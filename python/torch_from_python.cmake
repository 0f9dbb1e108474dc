# Points find_package(Torch) at the LibTorch inside the torch wheel of the Python that will import the
# extension (Python_EXECUTABLE, as scikit-build-core sets it): the module must be built against the very
# libtorch that `import torch` loads. Under pip's build isolation that torch is not on the isolated path, so
# a second query runs the interpreter in isolated mode (-I), which sees the environment's own site-packages.
find_package(Python 3.8 COMPONENTS Interpreter Development.Module REQUIRED)
if(NOT Torch_DIR)
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
  set(Torch_DIR "${_torch_root}/share/cmake/Torch" CACHE PATH "LibTorch of the Python torch package")
endif()
# TorchConfig searches the system directories before its own lib/: a system LibTorch (Debian's) must not
# become the libtorch the extension links.
get_filename_component(_torch_root "${Torch_DIR}/../../.." ABSOLUTE)
set(_libtorch "${_torch_root}/lib/libtorch${CMAKE_SHARED_LIBRARY_SUFFIX}")
if(EXISTS "${_libtorch}" AND NOT TORCH_LIBRARY STREQUAL _libtorch)
  set(TORCH_LIBRARY "${_libtorch}" CACHE FILEPATH "libtorch of the Python torch package" FORCE)
endif()
