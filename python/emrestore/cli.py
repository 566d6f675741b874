"""The ``emrestore`` command line."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(args: argparse.Namespace) -> int:
    """Times sepconv (forward, forward+backward) on built-in random data: extension vs reference."""
    import torch

    from . import ops, reference

    torch.manual_seed(0)
    info = ops.build_info()
    print(f"emrestore {info['version']} | backend {info['backend']} | torch {torch.__version__} | "
          f"{torch.get_num_threads()} threads | CUDA kernels {info['cuda']}")
    cases = [(1, 1, 512, 512, 51), (8, 1, 128, 128, 25)]
    if args.quick:
        cases = [(1, 1, 256, 256, 25)]
    rows = []
    for b, c, h, w, k in cases:
        x = torch.rand(b, c, h, w, requires_grad=True)
        v = torch.rand(b, k, h, w).softmax(1).requires_grad_()
        hz = torch.rand(b, k, h, w).softmax(1).requires_grad_()
        flops = 2 * k * k * b * c * h * w

        def fwd(fn):
            with torch.no_grad():
                fn(x, v, hz)

        def fwd_bwd(fn):
            out = fn(x, v, hz)
            torch.autograd.grad(out, (x, v, hz), torch.ones_like(out))

        for label, run in (("forward", fwd), ("forward+backward", fwd_bwd)):
            t_ext = _median_seconds(lambda: run(ops.sepconv), args.repeats)
            t_ref = _median_seconds(lambda: run(reference.sepconv_loop), max(1, args.repeats // 3))
            rows.append((f"{b}x{c}x{h}x{w} K={k}", label, t_ext, t_ref, flops))
    print(f"\n| case | pass | emrestore ms | reference loop ms | speed-up | emrestore GFLOP/s |")
    print("|---|---|---:|---:|---:|---:|")
    for case, label, t_ext, t_ref, flops in rows:
        gflops = flops / t_ext / 1e9 if label == "forward" else float("nan")
        print(f"| {case} | {label} | {t_ext * 1e3:.1f} | {t_ref * 1e3:.1f} | {t_ref / t_ext:.1f}x | "
              + (f"{gflops:.1f} |" if label == "forward" else "- |"))
    return 0


def info(args: argparse.Namespace) -> int:
    from . import ops

    print(json.dumps(ops.build_info(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emrestore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="what this installation contains (extension, CUDA, threads)")
    p.set_defaults(func=info)
    p = sub.add_parser("bench", help="time the sepconv op against its pure-PyTorch reference")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    p.add_argument("--quick", action="store_true", help="one small case, for a smoke test")
    p.set_defaults(func=bench)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
