// The Python extension module: importing it registers the operators (static initialisers in the op
// files) and exposes what the build contains.
#include <ATen/Parallel.h>
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace {

py::dict build_info() {
  py::dict info;
  info["version"] = EMRESTORE_VERSION;
  info["torch_version"] = EMRESTORE_TORCH_VERSION;
  info["cuda_requested"] = EMRESTORE_CUDA_MODE;  // EMRESTORE_CUDA at build time: auto, on or off
#ifdef EMRESTORE_WITH_CUDA
  info["cuda"] = true;
  info["cuda_version"] = EMRESTORE_CUDA_VERSION;
  info["cuda_archs"] = EMRESTORE_CUDA_ARCHS;
#else
  info["cuda"] = false;
  info["cuda_version"] = py::none();
  info["cuda_archs"] = "";
#endif
  // CPU kernels run on ATen's parallel_for, which is OpenMP in PyTorch's standard builds.
  info["openmp"] = bool(AT_PARALLEL_OPENMP);
  info["num_threads"] = at::get_num_threads();
  info["cpu_flags"] = EMRESTORE_CPU_FLAGS;
  return info;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "emrestore's compiled operators (registered under torch.ops.emrestore)";
  m.def("build_info", &build_info, "What this build of the extension contains");
}
