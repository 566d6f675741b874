"""Training data of ``fit``: the (before, target, after) triplets of clean sections, their split
into training and validation, and the sampler that draws augmented (and aligned) crops of them.
Crops are read section by section, so the stack may be a memory map or a zarr/h5py array larger
than memory."""

from __future__ import annotations

import itertools
import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..alignment import align_pair, outer_gaps, outer_indices
from ..conventions import to_unit

# Training crops are aligned with one flow each: with the model's eight views (validation and
# inference use them) drawing the batches, not the training step, would bound a 2-core fit.
TRAIN_FLOW_VIEWS = 1


def triplets(clean: np.ndarray, max_gap: int, z_step: int = 1) -> list[tuple[int, int, int]]:
    """(before, target, after) with all three clean and gaps of z_step * (1..max_gap) on each
    side."""
    ok = np.flatnonzero(clean)
    out = []
    for z in ok:
        for a in range(z - max_gap * z_step, z, z_step):
            for b in range(z + z_step, z + (max_gap + 1) * z_step, z_step):
                if a >= 0 and b < len(clean) and clean[a] and clean[b]:
                    out.append((int(a), int(z), int(b)))
    return out


def is_single_gap(trip: tuple[int, int, int], z_step: int) -> bool:
    """A triplet for one missing section: both gaps are the plain spacing."""
    a, z, b = trip
    return z - a == z_step and b - z == z_step


def split_triplets(trips, val_fraction: float, z_step: int = 1):
    """(train, validation) triplets. Validation: evenly spread targets with both gaps z_step. No
    training target lies closer than z_step sections to one (at z_step > 1 the sections in
    between are near copies of it)."""
    singles = sorted({t[1] for t in trips if is_single_gap(t, z_step)})
    n_val = 0
    if len(singles) >= 4 * z_step and val_fraction > 0:
        n_val = max(1, round(len(singles) * val_fraction / z_step))
    val_targets = {singles[int((i + 0.5) * len(singles) / n_val)] for i in range(n_val)}
    val = [t for t in trips if t[1] in val_targets and is_single_gap(t, z_step)]
    train = [t for t in trips if all(abs(t[1] - v) >= z_step for v in val_targets)]
    return train, val


def read_unit(stack, z: int, ys=slice(None), xs=slice(None)) -> np.ndarray:
    """Section ``z`` of ``stack`` (any array-like), cropped to ``ys``, ``xs``, in [0, 1]."""
    return to_unit(np.asarray(stack[z, ys, xs]))


class TripletSampler:
    """Random crops of training triplets with flips, 90-degree turns, order swap and
    brightness/contrast jitter (one draw per triplet, applied to all three sections). With
    ``align``, the outer two are then aligned to the middle one's position as ``interpolate`` does,
    on a crop ``margin`` pixels larger on each side, so the flow sees context past the crop; with
    ``outer`` ([Z] bool, the usable sections), from the sections beyond them as well
    (``emrestore.alignment.outer_indices``), each dropped
    with probability ``drop_outer`` so that the network also learns the pairs at a stack's ends;
    ``views``: the flows' symmetric averaging (``emrestore.alignment.symmetric_flow``)."""

    def __init__(
        self,
        stack,
        trips,
        crop: int,
        augment: bool = True,
        jitter: float = 0.15,
        align: bool = False,
        margin: int = 32,
        z_step: int = 1,
        outer: np.ndarray | None = None,
        drop_outer: float = 0.15,
        views: int = 1,
    ):
        self.stack, self.trips, self.crop = stack, trips, crop
        self.jitter, self.views = jitter, views
        self.augment, self.align, self.margin, self.drop_outer = augment, align, margin, drop_outer
        self.outers = [
            outer_indices(outer, t[0], t[2], z_step)
            if outer is not None and align
            else (None, None)
            for t in trips
        ]
        # Single missing sections are the common case: half of all draws.
        gaps = np.array([is_single_gap(t, z_step) for t in trips], float)
        n_single = gaps.sum()
        p = np.where(gaps > 0, 0.5 / max(n_single, 1), 0.5 / max(len(trips) - n_single, 1))
        self.p = p / p.sum()

    def _augment(self, t, pos, rng, sides):
        if rng.random() < 0.5:  # order swap
            t, pos, sides = t[::-1], 1 - pos, sides[::-1]
        t = np.rot90(t, int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            t = t[:, :, ::-1]
        gain = math.exp(rng.uniform(-self.jitter, self.jitter))
        shift = rng.uniform(-self.jitter, self.jitter) / 2
        t = np.clip((t - t.mean()) * gain + t.mean() + shift, 0, 1)
        return t, pos, sides

    def batch(self, size: int, seed):
        """One batch from its own generator (``seed``: an int or a sequence of ints, as
        ``np.random.default_rng`` takes), so batches may be drawn on several threads and still
        depend only on the fit's seed."""
        rng = np.random.default_rng(seed)
        _, h, w = self.stack.shape
        c = self.crop
        m = max(0, min(self.margin, (h - c) // 2, (w - c) // 2)) if self.align else 0
        e = c + 2 * m
        items, ts = [], []
        for i in rng.choice(len(self.trips), size=size, p=self.p):
            a, z, b = self.trips[i]
            y, x = int(rng.integers(0, h - e + 1)), int(rng.integers(0, w - e + 1))
            win = (slice(y, y + e), slice(x, x + e))
            below, above = (
                o if o is not None and rng.random() >= self.drop_outer else None
                for o in self.outers[i]
            )
            # [outer or a, a, z, b, outer or b], each section read once; sides: (outer present, its
            # gap in a-b distances).
            crops = {s: read_unit(self.stack, s, *win) for s in {below, a, z, b, above} - {None}}
            order = (a if below is None else below, a, z, b, b if above is None else above)
            t = np.stack([crops[s] for s in order])
            sides = tuple(
                zip((below is not None, above is not None), outer_gaps(a, b, (below, above)))
            )
            pos = (z - a) / (b - a)
            if self.augment:
                t, pos, sides = self._augment(t, pos, rng, sides)
            if self.align:
                (has_a, gap_a), (has_b, gap_b) = sides
                before, after = align_pair(
                    t[1],
                    t[3],
                    pos,
                    outer=(t[0] if has_a else None, t[4] if has_b else None),
                    outer_gaps=(gap_a, gap_b),
                    views=self.views,
                )
                t = np.stack([before, t[2], after])[:, m : m + c, m : m + c]
            else:
                t = t[1:4]
            items.append(np.ascontiguousarray(t, dtype=np.float32))
            ts.append(pos)
        return torch.from_numpy(np.stack(items)), torch.tensor(ts, dtype=torch.float32)


class BatchQueue:
    """``sampler``'s batches drawn (read, augmented, aligned) on ``workers`` threads, two per
    thread ahead of the one training; the batch for iteration i from the generator seeded by
    (seed, i), so they depend only on the seed and a resumed fit draws new ones."""

    def __init__(
        self, sampler: TripletSampler, size: int, seed: int, first_iteration: int, workers: int
    ):
        self._sampler, self._size, self._seed = sampler, size, seed
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._index = itertools.count(first_iteration)  # the iteration each drawn batch is for
        self._pending = deque(self._submit() for _ in range(2 * workers))

    def _submit(self):
        return self._pool.submit(self._sampler.batch, self._size, (self._seed, next(self._index)))

    def next(self):
        frames, ts = self._pending.popleft().result()
        self._pending.append(self._submit())
        return frames, ts

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
