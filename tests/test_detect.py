"""Fold and precipitate detection, whole-stack detection and the detect command, on the phantom
degraded by the simulator (no external data)."""

import itertools
import json

import numpy as np
import pytest
from emrestore import cli, io
from emrestore.detect import detect_folds, detect_precipitates, detect_stack
from emrestore.phantom import make_phantom
from emrestore.simulate import simulate_sff, simulate_sp, simulate_stack


@pytest.fixture(scope="module")
def clean():
    return make_phantom((6, 512, 512), seed=4).raw


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_no_fold_in_clean_tissue(clean):
    assert [len(detect_folds(s).folds) for s in clean] == [0] * len(clean)


@pytest.mark.parametrize("preset", ["paper", "realistic"])
def test_dark_folds_are_found_and_outlined(clean, preset):
    for z in range(len(clean)):
        art = simulate_sff(
            clean,
            z,
            seed=z,
            preset=preset,
            n_folds=1,
            black_band=1.0,
            partial=0.0,
            return_flow=False,
        )
        det = detect_folds(art.image)
        # One fold; a steep published-model fold can pull the border in so far that a dark blob
        # is smeared into a streak there (section 1), which may be flagged too.
        assert 1 <= len(det.folds) <= (2 if preset == "paper" else 1), (preset, z)
        assert iou(det.mask, art.alpha > 0.5) >= 0.5, (preset, z)
        # The traced centre line lies on the true one (the polyline, sampled every pixel).
        true = np.array(art.params["folds"][0]["vertices"])
        steps = [
            np.linspace(a, b, int(np.linalg.norm(b - a)) + 2) for a, b in itertools.pairwise(true)
        ]
        dense = np.concatenate(steps)
        fold = max(det.folds, key=lambda f: f.length)
        inside = (fold.centre >= 0).all(1) & (fold.centre < 512).all(1)  # ends were extended
        distance = np.linalg.norm(fold.centre[inside, None] - dense[None], axis=-1).min(1)
        assert distance.max() < 12, (preset, z, distance.max())


def test_a_partial_curved_fold_is_traced_to_its_end(clean):
    hits = 0
    for z in range(len(clean)):
        art = simulate_sff(
            clean,
            z,
            seed=100 + z,
            n_folds=1,
            partial=1.0,
            black_band=1.0,
            bend=(0.02, 0.04),
            return_flow=False,
        )
        det = detect_folds(art.image)
        fold = art.params["folds"][0]
        if not det.folds:
            continue
        hits += iou(det.mask, art.alpha > 0.5) >= 0.5
        # The detected fold does not run on past the end of the true one by more than a window.
        true = np.array(fold["vertices"])
        span = np.linalg.norm(true[-1] - true[0])
        found = det.folds[0].centre
        assert np.linalg.norm(found[-1] - found[0]) <= span + 40
    assert hits >= len(clean) - 1


def test_pale_partial_folds_are_found(clean):
    # Film overlaps (half the content or darker), ending inside the section: the tracker starts on
    # the band rather than at the line's end, where it could lock onto tissue first, and long
    # ridge pieces add lines that a curved fold's spread votes would not.
    hits = []
    for z in range(len(clean)):
        for k in range(3):
            art = simulate_sff(
                clean,
                z,
                seed=200 + 10 * z + k,
                n_folds=1,
                partial=1.0,
                black_band=0.0,
                band_level=(0.35, 0.5),
                return_flow=False,
            )
            hits.append(iou(detect_folds(art.image).mask, art.alpha > 0.5) >= 0.5)
    # Of these 18: 12 when the tracker started at the line's end, 14 with Hough lines only.
    assert sum(hits) >= 15, hits


def test_a_long_curved_ridge_gives_a_line_along_it():
    from emrestore.detect.sff import ridge_lines

    ridge = np.zeros((256, 256), bool)
    x = np.arange(20, 236)
    y = np.rint(128 + 12 * np.sin((x - 20) / 216 * np.pi)).astype(int)  # bowed by 12 px
    ridge[y, x] = True
    ridge[40:44, 60] = True  # a short piece: no line
    ((theta, rho),) = ridge_lines(ridge, min_extent=60, f2=1)
    distance = np.abs(x * np.cos(theta) + y * np.sin(theta) - rho)
    assert distance.max() < 12
    # At a coarser vote scale the line is given in working-scale pixels.
    ((theta2, rho2),) = ridge_lines(ridge, min_extent=60, f2=2)
    assert theta2 == pytest.approx(theta) and rho2 == pytest.approx(
        2 * rho + 0.5 * (np.cos(theta) + np.sin(theta))
    )


def test_fold_evidence_favours_long_smooth_bands():
    from emrestore.detect.sff import Fold, fold_evidence

    def trace(length, waver):
        t = np.linspace(0, length, int(length // 8) + 1)
        y = 200 + waver * (-1.0) ** np.arange(len(t))  # zigzag of +- waver px
        return Fold(
            centre=np.stack([t, y], 1),
            half_width=np.full(len(t), 8.0),
            darkness=0.5,
            length=float(length),
        )

    smooth, short, zigzag = trace(400, 0), trace(120, 0), trace(400, 6)
    assert fold_evidence(smooth, 512) > fold_evidence(short, 512)
    assert fold_evidence(smooth, 512) > fold_evidence(zigzag, 512)
    assert fold_evidence(smooth, 512) >= 0.6 > fold_evidence(zigzag, 512)


def test_a_dark_band_along_the_border_is_not_a_fold(clean):
    # Shading along an edge has tissue on one side only; the same band inside the section is a fold.
    for z in range(3):
        edge = clean[z].astype(np.float32)
        edge[:, -14:] *= 0.4
        inner = clean[z].astype(np.float32)
        inner[:, 250:270] *= 0.4
        assert detect_folds(edge.astype(clean.dtype)).folds == [], z
        assert len(detect_folds(inner.astype(clean.dtype)).folds) == 1, z


def test_stretches_of_one_band_are_bridged_and_others_are_not():
    from emrestore.detect.sff import MAX_BRIDGE, MAX_GAP, longest_run

    def stretch(n, half, dark):
        return [(np.zeros(2), half, dark, False)] * n

    gap = [None] * (MAX_GAP + 6)
    same = stretch(6, 10.0, 0.6) + gap + stretch(8, 11.0, 0.55)
    assert len(longest_run(same)) == 14
    wider = stretch(6, 10.0, 0.6) + gap + stretch(8, 20.0, 0.6)  # another band further on
    assert len(longest_run(wider)) == 8
    paler = stretch(6, 10.0, 0.6) + gap + stretch(8, 10.0, 0.35)
    assert len(longest_run(paler)) == 8
    far = stretch(6, 10.0, 0.6) + [None] * (MAX_BRIDGE + 1) + stretch(8, 10.0, 0.6)
    assert len(longest_run(far)) == 8
    assert longest_run([None, None]) == []


def test_precipitates_are_found(clean):
    for z in range(3):
        art = simulate_sp(
            clean, z, seed=z, caps=(0, 0, 1, 0, 0), contrast=None
        )  # one 15-30k px blob
        mask, soft = detect_precipitates(art.image)
        truth = art.alpha > 0.5
        recall = (mask & truth).sum() / truth.sum()
        precision = (mask & truth).sum() / max(mask.sum(), 1)
        # The phantom's mitochondria are darker than real ones: some of them pass as precipitates.
        assert recall > 0.8 and precision > 0.5, (z, recall, precision)
        assert soft.shape == mask.shape and soft.max() <= 1 and (soft[~mask] == 0).all()


def test_detect_stack_verdicts_and_mask_bits(clean):
    sim = simulate_stack(
        clean, {"ms": 0.2, "sff": 0.2}, seed=3, sff={"black_band": 1.0, "partial": 0.0}
    )
    result = detect_stack(sim.volume)
    truth = {s["index"]: {a["kind"] for a in s["artifacts"]} for s in sim.manifest["sections"]}
    for z, section in enumerate(result.sections):
        bits = int(np.bitwise_or.reduce(result.masks[z].ravel()))
        assert bits == sum({"ms": 1, "sff": 2, "sp": 4}[k] for k in section["verdict"] if k != "ok")
        if "ms" in truth.get(z, ()):
            assert "ms" in section["verdict"] and "sff" not in section["verdict"]
        if "sff" in truth.get(z, ()):
            assert "sff" in section["verdict"] and section["folds"]


def test_detect_rejects_bad_stacks():
    with pytest.raises(ValueError, match=r"\[Z, H, W\]"):
        detect_stack(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        detect_stack(np.zeros((0, 8, 8), np.uint8))
    with pytest.raises(TypeError, match="int32"):
        detect_stack(np.zeros((3, 8, 8), np.int32))
    with pytest.raises(ValueError, match="NaN"):
        detect_stack(np.full((3, 8, 8), np.nan, np.float32))


def test_detect_command(tmp_path, clean, capsys):
    sim = simulate_stack(clean, {"ms": 0.2}, seed=0)
    io.write_stack(tmp_path / "in.tif", sim.volume)
    before = (tmp_path / "in.tif").read_bytes()
    args = [
        "detect",
        str(tmp_path / "in.tif"),
        "-o",
        str(tmp_path / "masks.tif"),
        "--report",
        str(tmp_path / "report.json"),
        "--quiet",
    ]
    assert cli.main(args) == 0
    assert "masks" in capsys.readouterr().out
    assert (tmp_path / "in.tif").read_bytes() == before
    masks = io.read_stack(tmp_path / "masks.tif")
    report = json.loads((tmp_path / "report.json").read_text())
    missing = {s["index"] for s in sim.manifest["sections"]}
    assert {s["index"] for s in report["sections"] if "ms" in s["verdict"]} == missing
    assert {z for z in range(len(masks)) if (masks[z] & 1).any()} == missing
    with pytest.raises(SystemExit, match="--overwrite"):
        cli.main(args)


def test_a_dark_stain_makes_the_section_verdict(clean):
    stack = clean.copy()
    art = simulate_sp(clean, 2, seed=0, caps=(0, 0, 1, 0, 0), darkness=0.9, contrast=None)
    stack[2] = art.image
    result = detect_stack(stack)
    assert "sp" in result.sections[2]["verdict"]
    assert result.sections[2]["sp"]["core"] >= 0.85
    called = (result.masks[2] & 4) > 0
    assert (called & (art.alpha > 0.5)).sum() > 0.8 * (art.alpha > 0.5).sum()
