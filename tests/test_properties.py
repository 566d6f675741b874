"""Property-based checks of the command line's promises, on generated stacks (dtypes, ranges,
shapes, formats) and option values: inputs and unrelated files stay byte-identical, a command
exits 0 only with complete outputs and otherwise leaves none, a user error is a message and never
a traceback, and restore changes only the sections its report lists."""

import hashlib
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from emrestore import cli, io
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# zarr and HDF5 where this environment has them (a GPU image may lack a declared dependency).
FORMATS = ("in.tif", "in.npy", "sections") + tuple(
    name
    for name, module in (("in.zarr", "zarr"), ("in.h5", "h5py"))
    if importlib.util.find_spec(module)
)
OUTPUTS = ("out.tif", "out.npy", "out.zarr", "out.h5", "out_dir/")
REFUSED_OUTPUTS = ("outnoext", "out.jpg")


@st.composite
def stacks(draw, min_sections: int = 1):
    dtype = draw(st.sampled_from(["uint8", "uint16", "float32", "float64"]))
    shape = (draw(st.integers(min_sections, 6)), draw(st.integers(8, 40)), draw(st.integers(8, 40)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype.startswith("uint"):
        stack = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    else:
        low, high = draw(st.sampled_from([(0.0, 1.0), (-500.0, 520.0), (0.0, 4000.0)]))
        stack = rng.uniform(low, high, shape).astype(dtype)
        if draw(st.booleans()) and draw(st.booleans()):  # now and then a NaN
            stack[0, 0, 0] = np.nan
    if shape[0] > 2 and draw(st.booleans()):
        stack[shape[0] // 2] = 0  # a missing section
    return stack


def _write(folder: Path, name: str, stack: np.ndarray) -> Path:
    path = folder / name
    if name == "sections":
        fmt = "png" if stack.dtype.kind == "u" else "tif"
        io.write_stack(path, stack, section_format=fmt)
    elif name.endswith(".npy"):
        np.save(path, stack)
    else:
        io.write_stack(path, stack)
    return path


def _target(folder: Path, out: str) -> str:
    """The output's path as the user types it: a folder's with its trailing '/', which a Path
    would drop."""
    return f"{folder / out}/" if out.endswith("/") else str(folder / out)


def _digests(folder: Path, skip=()) -> dict:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(p.is_relative_to(folder / s) for s in skip)
    }


def _run(args) -> tuple[int, str]:
    """Exit status and message of one command, in this process: any exception other than
    SystemExit escapes (a traceback, the test fails)."""
    try:
        code, message = cli.main([str(a) for a in args]), ""
    except SystemExit as exit:
        code = exit.code
        message = "" if isinstance(code, int) else str(code)
        code = code if isinstance(code, int) else 1
    event(f"{args[0]} exit {code}")  # hypothesis statistics: how often each outcome was tried
    return code, message


def _workspace(stack, fmt, capsys):
    capsys.readouterr()  # one example's output must not count for the next
    folder = Path(tempfile.mkdtemp(prefix="props-"))
    src = _write(folder, fmt, stack)
    (folder / "notes.txt").write_text("the user's own file")
    return folder, src


def _outputs_absent_or_unchanged(folder, before, outputs):
    after = _digests(folder)
    for name in outputs:
        stem = name.rstrip("/")
        created = [k for k in after if k == stem or k.startswith(stem + "/")]
        assert not created or all(before.get(k) == after[k] for k in created), name


def _check_user_error(code, message, capsys):
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in message and "Traceback" not in err
    assert message.startswith("emrestore ") or "error:" in err, (message, err)


def _complete_or_absent(folder, before, stack, outputs, code, message, capsys):
    """After a command that writes a stack (``outputs[0]``) and a JSON record (``outputs[2]``):
    both, complete, when it exited 0; otherwise None, once its refusal is checked to be a message
    that left no output behind."""
    if code != 0:
        _check_user_error(code, message, capsys)
        _outputs_absent_or_unchanged(folder, before, outputs)
        return None
    written = io.read_stack(folder / outputs[0])
    assert written.shape == stack.shape and written.dtype == stack.dtype
    return written, json.loads((folder / outputs[2]).read_text())


def _same_but(written, stack, listed):
    """Every section not ``listed`` as changed is bit-identical to the input's."""
    for z in set(range(len(stack))) - set(listed):
        assert written[z].tobytes() == stack[z].tobytes(), z


@SETTINGS
@given(
    stack=stacks(min_sections=3),
    fmt=st.sampled_from(FORMATS),
    out=st.sampled_from(OUTPUTS + REFUSED_OUTPUTS[:1]),
    tile=st.sampled_from(["0", "80", "-5"]),
)
def test_restore_keeps_promises(capsys, stack, fmt, out, tile):
    folder, src = _workspace(stack, fmt, capsys)
    try:
        before = _digests(folder)
        code, message = _run(
            [
                "restore",
                src,
                "-o",
                _target(folder, out),
                "--tile",
                tile,
                "--quiet",
            ]
        )
        stem = out.rstrip("/")
        outputs = [stem, io.beside(stem, "_masks").name, io.beside(stem, "_report", ".json").name]
        written = _complete_or_absent(folder, before, stack, outputs, code, message, capsys)
        if written:
            result, report = written
            masks = io.read_stack(folder / outputs[1])
            assert masks.shape == stack.shape and masks.dtype == np.uint8
            _same_but(result, stack, {r["index"] for r in report["restored"] if r.get("changed")})
        assert _digests(folder, skip=outputs) == before
    finally:
        shutil.rmtree(folder)


@SETTINGS
@given(
    stack=stacks(),
    fmt=st.sampled_from(FORMATS),
    out=st.sampled_from(OUTPUTS + REFUSED_OUTPUTS[1:]),
    rate=st.sampled_from(["0", "0.5", "1", "-0.1"]),
    seed=st.sampled_from(["0", "7", "-1"]),
)
def test_simulate_and_detect_keep_promises(capsys, stack, fmt, out, rate, seed):
    folder, src = _workspace(stack, fmt, capsys)
    try:
        before = _digests(folder)
        stem = out.rstrip("/")
        target = _target(folder, out)
        code, message = _run(
            ["simulate", src, target, "--ms", rate, "--sp", rate, "--seed", seed, "--quiet"]
        )
        outputs = [stem, io.beside(stem, "_masks").name, io.beside(stem, "", ".json").name]
        written = _complete_or_absent(folder, before, stack, outputs, code, message, capsys)
        if written:
            degraded, manifest = written
            _same_but(degraded, stack, {s["index"] for s in manifest["sections"]})
        assert _digests(folder, skip=outputs) == before

        before = _digests(folder)
        code, message = _run(
            [
                "detect",
                src,
                "-o",
                folder / "masks.tif",
                "--report",
                folder / "report.json",
                "--quiet",
            ]
        )
        if code != 0:
            _check_user_error(code, message, capsys)
            assert not (folder / "masks.tif").exists() and not (folder / "report.json").exists()
        else:
            masks = io.read_stack(folder / "masks.tif")
            assert masks.shape == stack.shape and masks.dtype == np.uint8
            assert len(json.loads((folder / "report.json").read_text())["sections"]) == len(stack)
        assert _digests(folder, skip=["masks.tif", "report.json"]) == before
    finally:
        shutil.rmtree(folder)


@SETTINGS
@given(
    command=st.sampled_from(["restore", "detect", "simulate", "fit", "evaluate"]),
    option=st.sampled_from(
        [
            "--tile",
            "--seed",
            "--minutes",
            "--iterations",
            "--batch-size",
            "--workers",
            "--max-gap",
            "--crop",
            "--z-step",
            "--ms",
            "--lr",
            "--device",
            "--sp-threshold",
            "--detail",
            "--range",
        ]
    ),
    value=st.sampled_from(["nan", "inf", "-1", "0", "-5", "1e9", "x", "", "cuda:7", "3:1"]),
)
def test_bad_option_values_are_messages_not_tracebacks(capsys, command, option, value):
    capsys.readouterr()
    folder = Path(tempfile.mkdtemp(prefix="props-"))
    try:
        src = _write(folder, "in.tif", np.zeros((3, 16, 16), np.uint8))
        out = (
            ["-o", folder / "o.tif"]
            if command in ("restore", "detect")
            else ([folder / "o.tif"] if command == "simulate" else ["-o", folder / "o"])
        )
        extra = ["--iterations", "1"] if command == "fit" and option != "--iterations" else []
        code, message = _run([command, src, *out, option, value, *extra, "--quiet"])
        err = capsys.readouterr().err
        assert "Traceback" not in message and "Traceback" not in err
        if code != 0:
            assert message.startswith("emrestore") or "error:" in err
    finally:
        shutil.rmtree(folder)


def test_the_generators_reach_every_kind_of_input():
    # The strategies must cover what the promises are about; a narrowed generator would pass
    # vacuously.
    seen = set()

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(stacks())
    def collect(stack):
        floats = stack.dtype.kind == "f"
        seen.add(stack.dtype.name)
        if floats and np.isnan(stack).any():
            seen.add("nan")
        if floats and np.nanmax(stack) > 1:
            seen.add("wide")

    collect()
    assert {"uint8", "uint16", "float32", "float64", "nan", "wide"} <= seen
