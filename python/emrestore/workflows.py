"""Library entry points that read their inputs from files and write their outputs themselves, one
per command: ``simulate_to_disk``, ``detect_to_disk``, ``evaluate_to_disk``, ``fit_to_disk`` and
``restore_to_disk`` (in memory, or block by block for zarr/HDF5 outputs). The command line is a thin
layer over these; each returns what it wrote and what it found, for the caller to report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import io
from .conventions import BITS

PHANTOM_SHAPE = (32, 384, 384)  # fit --phantom


def read_sections(path, sections: slice = slice(None), step: int = 1) -> np.ndarray:
    """The stack at ``path`` cut to ``sections`` and thinned to every ``step``-th section; only
    those sections are read."""
    if step < 1:
        raise ValueError(f"step must be >= 1; got {step}")
    volume = io.open_volume(path)
    picked = range(len(volume))[sections][::step]
    if len(picked) == 0:
        return np.empty((0,) + volume.shape[1:], volume.dtype)
    return volume[picked.start : picked.stop : picked.step]


def simulate_to_disk(
    src,
    out,
    *,
    rates: dict,
    seed: int = 0,
    preset: str = "realistic",
    masks=None,
    manifest=None,
    flows=None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Degrades the stack at ``src`` with ``emrestore.simulate.simulate_stack`` and writes the
    degraded stack to ``out`` (the input's kind of format), the masks (default ``OUT_masks``),
    the JSON manifest (default ``OUT.json``) and, with ``flows``, the folds' flows as ``.npz``.
    Returns the manifest."""
    from .simulate import simulate_stack

    names, section_format = _check_outputs(
        src,
        [out, masks],
        overwrite,
        [manifest or io.beside(out, "", ".json")] + ([flows] if flows else []),
    )
    src, out = Path(src), Path(out)
    masks = Path(masks) if masks else io.beside(out, "_masks")
    manifest_path = Path(manifest) if manifest else io.beside(out, "", ".json")
    volume = io.read_stack(src)
    if volume.dtype.kind == "f":
        section_format = "tif"  # PNG holds no floats
    result = simulate_stack(
        volume,
        rates,
        seed=seed,
        sff={"preset": preset},
        return_flows=bool(flows),
        progress=progress,
    )
    kw = {"overwrite": overwrite, "section_format": section_format, "names": names}
    io.write_stack(out, result.volume, **kw)
    io.write_stack(masks, result.masks, **kw)
    if flows:
        arrays = {f"{kind}_{z}": a[kind] for z, a in result.flows.items() for kind in a}
        with io.atomic_path(flows) as tmp:
            np.savez_compressed(tmp, **arrays)
    record = dict(result.manifest, input=str(src), output=str(out), masks=str(masks))
    if names is not None:
        record["section_names"] = names
    io.write_json(manifest_path, record)
    return record


def detect_to_disk(
    src,
    masks,
    *,
    report=None,
    options: dict | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Finds the artifacts of the stack at ``src`` (``emrestore.detect.detect_stack`` with
    ``options``) and writes the mask stack to ``masks`` and, with ``report``, a JSON report.
    Returns the report."""
    from .detect import detect_stack

    names, section_format = _check_outputs(src, [masks], overwrite, [report] if report else [])
    src, masks = Path(src), Path(masks)
    report_path = Path(report) if report else None
    volume = io.read_stack(src)
    result = detect_stack(volume, progress=progress, **(options or {}))
    io.write_stack(
        masks, result.masks, overwrite=overwrite, names=names, section_format=section_format
    )
    counts = {k: sum(k in s["verdict"] for s in result.sections) for k in ("ok", "ms", "sff", "sp")}
    record = {
        "input": str(src),
        "masks": str(masks),
        "mask_bits": dict(BITS),
        "counts": counts,
        "calibration": result.calibration,
        "sections": result.sections,
    }
    if names is not None:
        for s, name in zip(record["sections"], names):
            s["name"] = name
    if report_path:
        io.write_json(report_path, record)
    return record


def restore_to_disk(
    src,
    out,
    *,
    masks=None,
    masks_from=None,
    report=None,
    block=None,
    halo=None,
    part=None,
    model=None,
    tile: int | None = 512,
    device=None,
    tta: bool = False,
    detail: float | None = None,
    overwrite: bool = False,
    progress: bool = False,
    scheduler=None,
    workers: int | None = None,
) -> dict:
    """Restores the stack at ``src`` into ``out`` (the input's format and dtype), with the masks
    (default ``OUT_masks``) and the JSON report (default ``OUT_report.json``). In memory, unless
    ``out`` is zarr/HDF5 or ``block``, ``halo``, ``part`` or ``scheduler`` is given: then block by
    block (``emrestore.blockwise.restore_volume``, on Dask with ``scheduler`` and ``workers``).
    ``masks_from``: a mask stack (bits ms 1, sff 2, sp 4, any format ``src`` may have) to restore
    with instead of detecting (``restoration.open_masks`` checks it); ``masks`` is then written as
    a copy of it. Returns the report (with ``part``, a summary of the blocks done)."""
    from .restoration import open_masks, restore

    blockwise = (
        block is not None
        or halo is not None
        or part is not None
        or scheduler is not None
        or io.is_chunked(out)
    )
    if not blockwise:  # restore_volume checks its own outputs and masks
        given = None
        if masks_from is not None:  # before the outputs: a default one may be in its place
            outputs = [out, masks or io.beside(out, "_masks"), report or _report_path(out)]
            given = open_masks(masks_from, io.open_volume(src).shape, outputs)
        names, section_format = _check_outputs(
            src, [out, masks], overwrite, [report or _report_path(out)]
        )
    src, out = Path(src), Path(out)
    masks = Path(masks) if masks else io.beside(out, "_masks")
    report = Path(report) if report else _report_path(out)
    if blockwise:
        from .blockwise import DEFAULT_BLOCK, DEFAULT_HALO, restore_volume

        if not (io.is_chunked(out) and io.is_chunked(masks)):
            raise ValueError(
                "block-wise restoration (--block, --halo, --part, --scheduler) writes zarr "
                f"(OUT.zarr) or HDF5 (OUT.h5) outputs; got {out} and masks {masks}"
            )
        return restore_volume(
            src,
            out,
            masks=masks,
            masks_from=masks_from,
            report=report,
            block=block or DEFAULT_BLOCK,
            halo=halo or DEFAULT_HALO,
            part=part,
            model=model,
            tile=tile,
            device=device,
            tta=tta,
            detail=detail,
            overwrite=overwrite,
            progress=progress,
            scheduler=scheduler,
            workers=workers,
        )
    stack = io.read_stack(src)
    result = restore(
        stack,
        model=model,
        masks=None if given is None else given[:],
        tile=tile,
        device=device,
        tta=tta,
        detail=detail,
        progress=progress,
    )
    if given is not None:
        result.report["masks"] = {"source": "file", "path": str(masks_from)}
    kw = {"overwrite": overwrite, "names": names}
    stack_format = "tif" if stack.dtype.kind == "f" else section_format
    io.write_stack(out, result.stack, section_format=stack_format, **kw)
    io.write_stack(masks, result.masks, section_format=section_format, **kw)
    io.write_json(report, result.report)
    return result.report


def _report_path(out) -> Path:
    return io.beside(out, "_report", ".json")


def _check_outputs(src, stacks: list, overwrite: bool, others: list) -> tuple[list | None, str]:
    """Checks a command's outputs before any work (``io.check_outputs``): ``stacks`` its stack
    outputs (None: the default beside the first), ``others`` its reports. A stack output without
    an extension is a folder of sections only when the input is one or the first output's path
    ends with '/'. Returns the input's section names and format (``io.sections_like``)."""
    names, section_format = io.sections_like(src)
    folder = names is not None or io.names_folder(stacks[0])
    stacks = [p if p else io.beside(stacks[0], "_masks") for p in stacks]
    for path in stacks:
        io.check_output_name(path, folder=folder)
    io.check_outputs(src, stacks + others, overwrite, names=names)
    return names, section_format


def fit_to_disk(
    src,
    out,
    *,
    phantom: bool = False,
    sections: slice = slice(None),
    config=None,
    resume: bool = False,
    overwrite: bool = False,
    crop: int | None = None,
    **fit_options,
):
    """Trains the interpolation network on the stack at ``src`` (cut to ``sections``; every
    offset trains, see ``fit``'s ``z_step``) or, with ``phantom``, on the built-in phantom, and
    saves it to the model folder ``out``; refuses a non-empty folder unless ``resume`` or
    ``overwrite``. ``crop``: the training crops' side, at most the sections' and, for a new model,
    a multiple of its pooling stride (default: ``FitConfig``'s, at most the sections' side).
    ``config`` and ``fit_options`` as ``emrestore.fit`` takes them. Returns its ``FitResult``.
    Everything is checked before the stack is read."""
    from .models import InterpolationConfig, fit

    if (src is None) == (not phantom):
        raise ValueError("give a stack IN or --phantom (not both)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; the model goes to a folder")
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise ValueError(f"{out} is not empty; pass --resume to continue it or --overwrite")
    if crop is not None:
        shape = PHANTOM_SHAPE if phantom else io.open_volume(src).shape
        _check_crop(crop, shape[1:], None if resume else (config or InterpolationConfig()))
        fit_options["crop"] = crop
    if phantom:
        from .phantom import make_phantom

        stack = make_phantom(PHANTOM_SHAPE, seed=fit_options.get("seed", 0)).raw
    else:
        stack = read_sections(src, sections)
    return fit(stack, out, config=config, resume=resume, **fit_options)


def _check_crop(crop: int, section_shape, config) -> None:
    """Refuses a training crop larger than the sections, or one that the network (``config``;
    None: not known yet, as when resuming) cannot pool down to whole pixels."""
    h, w = section_shape
    if crop > min(h, w):
        raise ValueError(
            f"--crop {crop} is larger than the sections ({h} x {w} pixels); give at "
            f"most {min(h, w)}"
        )
    if config is not None and crop % config.stride:
        stride = config.stride
        nearest = [
            c
            for c in (crop // stride * stride, (crop // stride + 1) * stride)
            if 0 < c <= min(h, w)
        ]
        raise ValueError(
            f"--crop {crop} is no multiple of {stride}, the network's pooling "
            f"stride (2 ** (levels - 1) for --widths "
            f"{','.join(map(str, config.widths))})"
            + (f"; try {' or '.join(map(str, nearest))}" if nearest else "")
        )


EVALUATE_FILES = ("results.md", "results.csv", "results.json", "comparison.md", "comparison.json")


def evaluate_to_disk(
    data,
    output,
    *,
    artifacts,
    methods: dict,
    model=None,
    tta: bool = False,
    detail: float | None = None,
    reference: str = "flow",
    labels=None,
    sections: slice = slice(None),
    section_text: str | None = None,
    z_step: int = 1,
    seed: int = 0,
    all_sections: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> tuple[list[dict], list[dict]]:
    """Scores ``methods`` (name -> method) and, with ``model`` (a model folder or network), the
    interpolation network as method "emrestore" (``restoration.as_method`` with ``tta`` and
    ``detail``) on every stack in ``data`` (``emrestore.evaluate``), each cut to ``sections``
    (written ``section_text`` in the table) and thinned by ``z_step``; ``labels``: ground-truth
    membrane masks (cells > 0) for the one stack. Writes the results to the folder ``output``
    (``EVALUATE_FILES``); refuses, before any work, a folder holding any of them unless
    ``overwrite`` (then a comparison left from an earlier run is removed when this one makes
    none). Returns the rows and the pairs compared with ``reference``."""
    from . import evaluate

    output = io.check_folder_outputs(output, EVALUATE_FILES, overwrite)
    if labels is not None and len(data) != 1:
        raise ValueError("--labels goes with exactly one DATA stack")
    methods = dict(methods)
    if model is not None:
        from .restoration import as_method

        methods["emrestore"] = as_method(model, tta=tta, detail=detail)
    rows = []
    for path in data:
        stack = read_sections(path, sections, z_step)
        cells = None
        if labels is not None:
            from scipy import ndimage

            raw = read_sections(labels, sections, z_step)
            cells = np.stack([ndimage.label(s > 0)[0] for s in raw])
        p = Path(path)
        name = (
            f"{p.parent.name}/{p.name}"
            + (f" [{section_text}]" if section_text else "")
            + (f" (z-step {z_step})" if z_step > 1 else "")
        )
        rows += evaluate.evaluate(
            stack,
            artifacts=artifacts,
            methods=methods,
            seed=seed,
            labels=cells,
            name=name,
            all_sections=all_sections,
            progress=progress,
        )
    pairs = evaluate.compare(rows, reference) if reference in methods else []
    evaluate.write_results(rows, output, pairs)
    if not pairs:  # an earlier run's comparison would not describe these results
        for name in ("comparison.md", "comparison.json"):
            (output / name).unlink(missing_ok=True)
    return rows, pairs
