#!/usr/bin/env bash
# On a machine with a CUDA GPU: build the extension for it, run the CUDA tests (and, with --all, the
# whole suite, whose pipeline tests then default to the GPU), the CUDA benchmarks and the demo.
# Logs and the benchmark JSON go to $OUT (default ./gpu-check). Usage: benchmarks/gpu_check.sh [--all]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}; mkdir -p "$out"
py=${PYTHON:-python3}
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$out/gpu.txt"
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
arch=$("$py" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
t0=$SECONDS
TORCH_CUDA_ARCH_LIST="$arch" EMRESTORE_CUDA=on CMAKE_BUILD_PARALLEL_LEVEL=16 "$py" -m pip install -q \
  --no-build-isolation --no-deps --config-settings=build-dir=build/gpu -e . >"$out/build.log" 2>&1 \
  || { tail -40 "$out/build.log"; exit 1; }
echo "build: $((SECONDS - t0)) s"
"$py" -m emrestore info | tee "$out/info.txt"
# Installed with --no-deps (a GPU machine may have no package index): name the declared
# dependencies this environment lacks; the tests that need them skip with that reason.
"$py" - <<'PY' | tee "$out/dependencies.txt"
import importlib.util
import re
from importlib.metadata import requires

MODULES = {"opencv-python-headless": "cv2", "scikit-image": "skimage"}
missing = []
for requirement in requires("emrestore") or []:
    if "extra ==" in requirement:
        continue
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
    if importlib.util.find_spec(MODULES.get(name, name.replace("-", "_"))) is None:
        missing.append(name)
if missing:
    print(f"missing declared dependencies: {', '.join(missing)}; the tests that need them skip "
          f"(bring their wheels to run them: pip download {' '.join(missing)})")
else:
    print("every declared dependency is installed")
PY
export PYTHONUNBUFFERED=1
status=0
"$py" -m pytest -q -p no:cacheprovider tests -k cuda 2>&1 | tee "$out/tests_cuda.log" | tail -15
[ "${PIPESTATUS[0]}" = 0 ] || status=1
"$py" -m pytest -q -p no:cacheprovider benchmarks/test_bench_cuda.py --benchmark-enable \
  --benchmark-json="$out/bench_cuda.json" --benchmark-columns=median,iqr,rounds --benchmark-sort=name \
  >"$out/bench_cuda.log" 2>&1 || { status=1; tail -30 "$out/bench_cuda.log"; }
"$py" - "$out/bench_cuda.json" <<'PY'
import json, sys
from collections import defaultdict

groups = defaultdict(list)
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    groups[b["group"]].append(b)
for group, runs in groups.items():
    print(group)
    base = max(r["stats"]["median"] for r in runs)
    for r in sorted(runs, key=lambda r: r["stats"]["median"]):
        extra = " ".join(f"{k}={v}" for k, v in r["extra_info"].items())
        print(f"  {r['name'].split('[')[-1].rstrip(']'):28s} {r['stats']['median'] * 1e3:9.3f} ms"
              f"  x{base / r['stats']['median']:7.1f}  {extra}")
PY
if [ "${1:-}" = "--all" ]; then
  "$py" -m pytest -q -p no:cacheprovider tests 2>&1 | tee "$out/tests_all.log" | tail -15
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi
exit $status
