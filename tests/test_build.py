"""What the build contains, the fallback to the references, and the CUDA-compilation guarantee."""

import os
import shutil
import subprocess
import sys
import textwrap

import emrestore
import pytest
import torch
from emrestore import ops


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_build_info_fields():
    info = ops.build_info()
    assert info["version"] == emrestore.__version__
    assert info["backend"] in ("extension", "reference")
    assert isinstance(info["cuda"], bool) and isinstance(info["cuda_archs"], list)
    assert info["cuda"] == bool(info["cuda_archs"])
    assert isinstance(info["openmp"], bool)
    if ops.backend == "extension":
        # Built against the torch that runs it (an ABI mismatch would not even import).
        assert torch.__version__.startswith(info["torch_version"])
        assert info["fallback_reason"] is None


def test_thread_count_follows_torch():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert ops.build_info()["num_threads"] == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(ops.backend != "extension", reason="compiled extension not loaded")
def test_one_openmp_runtime_is_loaded():
    # The extension must share torch's OpenMP runtime, not bring a second thread pool.
    with open("/proc/self/maps") as maps:
        gomp = {line.split()[-1] for line in maps if "libgomp" in line}
    assert len(gomp) <= 1, gomp


@pytest.mark.skipif(
    not (torch.version.cuda and shutil.which("nvcc")), reason="needs a CUDA build of torch and nvcc"
)
def test_cuda_kernels_compiled_when_toolkit_present():
    # EMRESTORE_CUDA=auto must not silently drop the CUDA kernels where they can be built.
    info = ops.build_info()
    assert info["backend"] == "extension", info["fallback_reason"]
    if info["cuda_requested"] == "off":
        pytest.skip("built with EMRESTORE_CUDA=off")
    assert info["cuda"], "torch is a CUDA build and nvcc is on PATH, yet no CUDA kernels were built"
    assert info["cuda_archs"]


def test_reference_backend_is_forced_without_warning():
    result = run_python(
        """
        import warnings, torch
        warnings.simplefilter("error")
        from emrestore import ops, reference
        assert ops.backend == "reference", ops.backend
        assert ops.build_info()["fallback_reason"] == "EMRESTORE_BACKEND=reference"
        x, v, h = torch.randn(1, 2, 6, 7), torch.randn(1, 3, 6, 7), torch.randn(1, 3, 6, 7)
        assert torch.equal(ops.sepconv(x, v, h), reference.sepconv_loop(x, v, h))
        print("ok")
        """,
        EMRESTORE_BACKEND="reference",
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


BLOCK_EXTENSION = """
import sys
sys.modules["emrestore._C"] = None  # as if the compiled extension were missing
"""


def test_missing_extension_falls_back_with_one_warning():
    result = run_python(
        BLOCK_EXTENSION
        + """
import warnings, torch
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from emrestore import ops
    import emrestore.ops
x, v, h = torch.randn(1, 1, 5, 5), torch.randn(1, 3, 5, 5), torch.randn(1, 3, 5, 5)
out = ops.sepconv(x, v, h, "zeros")
assert out.shape == (1, 1, 5, 5)
mine = [w for w in caught if "emrestore" in str(w.message)]
assert len(mine) == 1, [str(w.message) for w in mine]
assert "emrestore._C" in str(mine[0].message) and "reference" in str(mine[0].message)
print("ok")
"""
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_extension_backend_demanded_but_missing_raises():
    result = run_python(BLOCK_EXTENSION + "import emrestore\n", EMRESTORE_BACKEND="extension")
    assert result.returncode != 0
    assert "EMRESTORE_BACKEND=extension" in result.stderr


def test_unknown_backend_is_rejected():
    result = run_python("import emrestore\n", EMRESTORE_BACKEND="fastest")
    assert result.returncode != 0 and "EMRESTORE_BACKEND must be one of" in result.stderr
