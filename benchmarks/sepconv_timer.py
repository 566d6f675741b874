"""A quick timer of the sepconv op against its pure-PyTorch reference loop, on random data, for a
look at a new machine without pytest-benchmark:

    python benchmarks/sepconv_timer.py [--quick] [--repeats N]

The benchmarks proper (``pytest benchmarks --benchmark-enable``) hold the performance targets."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from emrestore import ops, reference

CASES = [(1, 1, 512, 512, 51), (8, 1, 128, 128, 25)]
QUICK_CASES = [(1, 1, 256, 256, 25)]


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_cases(cases, repeats: int) -> list[tuple]:
    """(case, pass, extension seconds, reference seconds, forward FLOPs) per case and pass."""
    torch.manual_seed(0)
    rows = []
    for b, c, h, w, k in cases:
        x = torch.rand(b, c, h, w, requires_grad=True)
        v = torch.rand(b, k, h, w).softmax(1).requires_grad_()
        hz = torch.rand(b, k, h, w).softmax(1).requires_grad_()
        flops = 2 * k * k * b * c * h * w

        def forward(fn, x=x, v=v, hz=hz):
            with torch.no_grad():
                fn(x, v, hz)

        def forward_backward(fn, x=x, v=v, hz=hz):
            out = fn(x, v, hz)
            torch.autograd.grad(out, (x, v, hz), torch.ones_like(out))

        for label, run in (("forward", forward), ("forward+backward", forward_backward)):
            t_ext = median_seconds(lambda run=run: run(ops.sepconv), repeats)
            t_ref = median_seconds(
                lambda run=run: run(reference.sepconv_loop), max(1, repeats // 3)
            )
            rows.append((f"{b}x{c}x{h}x{w} K={k}", label, t_ext, t_ref, flops))
    return rows


def table(rows) -> str:
    lines = [
        "| case | pass | emrestore ms | reference loop ms | speed-up | emrestore GFLOP/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for case, label, t_ext, t_ref, flops in rows:
        gflops = f"{flops / t_ext / 1e9:.1f}" if label == "forward" else "-"
        lines.append(
            f"| {case} | {label} | {t_ext * 1e3:.1f} | {t_ref * 1e3:.1f} | "
            f"{t_ref / t_ext:.1f}x | {gflops} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs per measurement (median)"
    )
    parser.add_argument("--quick", action="store_true", help="one small case, for a smoke test")
    args = parser.parse_args(argv)
    info = ops.build_info()
    print(
        f"emrestore {info['version']} | backend {info['backend']} | torch {torch.__version__} | "
        f"{torch.get_num_threads()} threads | CUDA kernels {info['cuda']}"
    )
    print()
    print(table(time_cases(QUICK_CASES if args.quick else CASES, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
