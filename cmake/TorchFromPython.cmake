# Sets TORCH_VERSION, TORCH_CUDA_VERSION ("" for a CPU build), TORCH_CXX11_ABI, TORCH_INCLUDE_DIRS,
# TORCH_LIBRARY_DIR and TORCH_SITE_DIR from the torch package importable by ${Python_EXECUTABLE}.
execute_process(
  COMMAND "${Python_EXECUTABLE}" -c "
import os, torch
root = os.path.dirname(torch.__file__)
print(torch.__version__.split('+')[0])
print(torch.version.cuda or '')
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
print(os.path.join(root, 'include'))
print(os.path.join(root, 'include', 'torch', 'csrc', 'api', 'include'))
print(os.path.join(root, 'lib'))
print(os.path.dirname(root))
"
  OUTPUT_VARIABLE _torch_info
  RESULT_VARIABLE _torch_rc
  ERROR_VARIABLE _torch_err
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _torch_rc EQUAL 0)
  message(FATAL_ERROR "emrestore needs torch installed in the build environment (${Python_EXECUTABLE}); "
    "build with 'pip install --no-build-isolation .' after installing torch. Import failed with:\n${_torch_err}")
endif()
string(REPLACE "\n" ";" _torch_info "${_torch_info}")
list(GET _torch_info 0 TORCH_VERSION)
list(GET _torch_info 1 TORCH_CUDA_VERSION)
list(GET _torch_info 2 TORCH_CXX11_ABI)
list(GET _torch_info 3 _torch_inc)
list(GET _torch_info 4 _torch_api_inc)
list(GET _torch_info 5 TORCH_LIBRARY_DIR)
list(GET _torch_info 6 TORCH_SITE_DIR)
set(TORCH_INCLUDE_DIRS "${_torch_inc};${_torch_api_inc}")
if(TORCH_VERSION VERSION_LESS 2.4)
  message(FATAL_ERROR "emrestore needs torch >= 2.4, found ${TORCH_VERSION}")
endif()
