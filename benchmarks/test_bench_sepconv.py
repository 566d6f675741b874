"""sepconv: compiled kernels against the pure-PyTorch formulations (pytest-benchmark).

Run: pytest benchmarks --benchmark-only --benchmark-group-by=param:case
GFLOP/s counts 2*K*K*B*C*H*W per forward (`extra_info`).
"""

import pytest
import torch
from emrestore import ops, reference

CASES = {
    "1x1x512x512-K51": (1, 1, 512, 512, 51),
    "8x1x128x128-K25": (8, 1, 128, 128, 25),
}
IMPLS = {
    "extension": ops.sepconv,
    "reference-loop": reference.sepconv_loop,
    "reference-unfold": reference.sepconv_unfold,
}


def inputs(case, grad=False):
    b, c, h, w, k = CASES[case]
    x = torch.rand(b, c, h, w)
    v = torch.rand(b, k, h, w).softmax(1)
    hz = torch.rand(b, k, h, w).softmax(1)
    return [t.requires_grad_(grad) for t in (x, v, hz)], 2 * k * k * b * c * h * w


def record_gflops(benchmark, key, flops):
    if benchmark.stats:  # None when run untimed (--benchmark-disable)
        benchmark.extra_info[key] = round(flops / benchmark.stats.stats.median / 1e9, 2)


def skip_unavailable(impl):
    if impl == "extension" and ops.backend != "extension":
        pytest.skip(f"compiled extension not loaded: {ops.fallback_reason}")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("impl", IMPLS)
def test_forward(benchmark, case, impl):
    skip_unavailable(impl)
    if impl == "reference-unfold" and case.startswith("1x1x512") and benchmark.disabled:
        pytest.skip("the unfold variant needs 2.7 GB and ~20 s here: timed runs only")
    args, flops = inputs(case)
    fn = IMPLS[impl]
    with torch.no_grad():
        benchmark.pedantic(fn, args=args, rounds=5 if impl == "extension" else 3, warmup_rounds=1)
    record_gflops(benchmark, "gflops", flops)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("impl", ["extension", "reference-loop"])
def test_forward_backward(benchmark, case, impl):
    skip_unavailable(impl)
    args, flops = inputs(case, grad=True)
    fn = IMPLS[impl]

    def step():
        out = fn(*args)
        torch.autograd.grad(out, args, torch.ones_like(out))

    benchmark.pedantic(step, rounds=5 if impl == "extension" else 3, warmup_rounds=1)
    record_gflops(benchmark, "gflops_forward_equiv", flops)


def test_sepconv_timer_quick_prints_table(capsys):
    import sepconv_timer

    assert sepconv_timer.main(["--quick", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| 1x1x256x256 K=25 | forward |" in out
    assert "| 1x1x256x256 K=25 | forward+backward |" in out
