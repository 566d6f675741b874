"""warp: the compiled kernels against building the sampling grid + grid_sample (pytest-benchmark).

Run: pytest benchmarks/test_bench_warp.py --benchmark-enable --benchmark-group-by=param:case
"""

import pytest
import torch
from emrestore import ops, reference

CASES = ["bilinear-border", "bilinear-zeros", "bicubic-border"]
IMPLS = {"extension": ops.warp, "grid_sample": reference.warp_grid_sample}


def inputs(grad=False):
    x = torch.rand(1, 1, 2048, 2048)
    flow = torch.randn(1, 2, 2048, 2048) * 5
    return x.requires_grad_(grad), flow.requires_grad_(grad)


@pytest.fixture(params=IMPLS)
def impl(request):
    if request.param == "extension" and ops.backend != "extension":
        pytest.skip(f"compiled extension not loaded: {ops.fallback_reason}")
    return request.param


@pytest.mark.parametrize("case", CASES)
def test_warp_forward(benchmark, case, impl):
    mode, padding = case.split("-")
    x, flow = inputs()
    with torch.no_grad():
        benchmark.pedantic(IMPLS[impl], args=(x, flow, mode, padding), rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("case", CASES[:1])
def test_warp_forward_backward(benchmark, case, impl):
    mode, padding = case.split("-")
    x, flow = inputs(grad=True)

    def step():
        out = IMPLS[impl](x, flow, mode, padding)
        torch.autograd.grad(out, (x, flow), torch.ones_like(out))

    benchmark.pedantic(step, rounds=5, warmup_rounds=1)
