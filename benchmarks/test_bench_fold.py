"""fold_warp (fused: displacement per pixel in the kernel) against the pure-PyTorch path (the fold
field with tensor ops, then grid_sample), at 2048 x 2048 with 3 curved folds."""

import math

import pytest
import torch
from emrestore import ops, reference

IMPLS = {"extension": ops.fold_warp, "pytorch": reference.fold.fold_warp}


def three_curved_folds(size=2048, vertices_per_fold=8):
    t = torch.linspace(0, 1, vertices_per_fold)
    folds = []
    for k, angle in enumerate((0.3, 1.4, 2.4)):
        ux, uy = math.cos(angle), math.sin(angle)
        along = (t - 0.5) * 1.6 * size
        bend = 60 * torch.sin(math.pi * t * (k + 1))
        x = size / 2 + along * ux - bend * uy + 200 * (k - 1)
        y = size / 2 + along * uy + bend * ux
        folds.append(torch.stack([x, y], -1))
    vertices = torch.stack(folds)[None]
    half = torch.full((1, 3, vertices_per_fold), 12.0)
    profile = torch.stack([half, 4 * half], -1)
    params = torch.tensor([[0.01, 1.0, 0.7, 0.3, 3.0]] * 3)[None]
    return vertices, profile, params


@pytest.mark.parametrize("impl", IMPLS)
def test_fold_warp_2048_three_curved_folds(benchmark, impl):
    if impl == "extension" and ops.backend != "extension":
        pytest.skip(f"compiled extension not loaded: {ops.fallback_reason}")
    if impl == "pytorch" and benchmark.disabled:
        pytest.skip("the pure-PyTorch path needs ~3 GB and ~15 s here: timed runs only")
    x = torch.rand(1, 1, 2048, 2048)
    geometry = three_curved_folds()
    with torch.no_grad():
        benchmark.pedantic(IMPLS[impl], args=(x, *geometry), rounds=3, warmup_rounds=1)
