"""Missing-section detection on the phantom degraded by the simulator: every missing section found,
whole and partial, no false alarm on clean stacks, masks where the loss is."""

import numpy as np
import pytest
from emrestore.detect import detect_missing
from emrestore.phantom import make_phantom
from emrestore.simulate import simulate_ms, simulate_stack


@pytest.fixture(scope="module")
def clean():
    # 60-px cells: a 256-px section then holds as many cells as a 512-px one at the default size
    # (with only a handful of cells, a new cell appearing looks like a local loss at coarse scale).
    return make_phantom((16, 256, 256), seed=2, cell_diameter=60).raw


def test_no_false_alarm_on_a_clean_stack(clean):
    assert [r.kind for r in detect_missing(clean)] == ["ok"] * len(clean)


@pytest.mark.parametrize("mode", ["blank", "constant", "noise"])
def test_whole_missing_sections_are_found(clean, mode):
    for z in (0, 7, 15):  # ends included
        stack = clean.copy()
        stack[z] = simulate_ms(clean, z, seed=z, mode=mode).image
        kinds = [r.kind for r in detect_missing(stack)]
        assert kinds[z] == "whole", (mode, z, kinds)
        assert kinds.count("ok") == len(stack) - 1


def test_runs_of_missing_sections_are_found(clean):
    stack = clean.copy()
    for z in (5, 6, 7):
        stack[z] = simulate_ms(clean, z, seed=z, mode="noise").image
    assert [z for z, r in enumerate(detect_missing(stack)) if r.kind != "ok"] == [5, 6, 7]


def flat_partial_losses(section, count):
    """The first `count` seeds whose partial loss is filled blank or constant."""
    found = []
    for seed in range(100):
        art = simulate_ms(section, seed=seed, mode="partial", fraction=(0.2, 0.6))
        if art.params["fill"] != "noise":
            found.append(art)
        if len(found) == count:
            return found
    raise AssertionError("the simulator should draw flat fills two times in three")


def test_partial_flat_losses_are_outlined(clean):
    for art in flat_partial_losses(clean[8], 3):
        stack = clean.copy()
        stack[8] = art.image
        result = detect_missing(stack)
        assert result[8].kind == "partial"
        iou = (result[8].mask & art.mask).sum() / (result[8].mask | art.mask).sum()
        assert iou > 0.9, art.params
        assert all(r.kind == "ok" for z, r in enumerate(result) if z != 8)


def test_partial_noise_losses_are_found_and_outlined(clean):
    # Noise fills vary like tissue at the pixel level: only the lost relation to the neighbours
    # gives them away. The first six noise-filled draws, as many as the real-data table has.
    arts = [
        a
        for a in (
            simulate_ms(clean[8], seed=s, mode="partial", fraction=(0.2, 0.6)) for s in range(40)
        )
        if a.params["fill"] == "noise"
    ][:6]
    assert len(arts) == 6
    ious = []
    for art in arts:
        stack = clean.copy()
        stack[8] = art.image
        result = detect_missing(stack)
        assert result[8].kind == "partial", art.params
        assert all(r.kind == "ok" for z, r in enumerate(result) if z != 8)
        ious.append((result[8].mask & art.mask).sum() / (result[8].mask | art.mask).sum())
    assert min(ious) > 0.5 and np.median(ious) > 0.7, ious


def test_simulated_stack_rates(clean):
    sim = simulate_stack(
        clean, {"ms": 0.2}, seed=1, ms={"mode": {"blank": 1, "constant": 1, "noise": 1}}
    )
    truth = {s["index"] for s in sim.manifest["sections"]}
    found = {z for z, r in enumerate(detect_missing(sim.volume)) if r.kind != "ok"}
    assert found == truth
