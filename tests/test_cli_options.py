"""The command line checks every option as it parses it, shows every default once in --help, and
refuses to replace earlier evaluate/demo results without --overwrite."""

import argparse
import json
import re
from pathlib import Path

import pytest
from emrestore import cli, io
from emrestore.cli import options
from emrestore.phantom import make_phantom

MISSING = "no-such-stack.tif"  # never read: the options fail first


@pytest.fixture(scope="module")
def stack_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("stack") / "clean.tif"
    io.write_stack(path, make_phantom((8, 64, 64), seed=0).raw)
    return path


def _parse_error(capsys, argv) -> str:
    """The message of a command line that argparse refuses: exit code 2, no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, (argv, exit_info.value.code, err)
    assert "Traceback" not in err
    return err


BAD_VALUES = [
    # (command line, option, what the message says is expected)
    (
        ["restore", MISSING, "-o", "o.tif", "--tile", "3"],
        "--tile",
        "0 (whole sections) or an integer >= 80",
    ),
    (["restore", MISSING, "-o", "o.tif", "--tile", "-5"], "--tile", "integer >= 80"),
    (
        ["restore", MISSING, "-o", "o.tif", "--detail", "nan"],
        "--detail",
        "a number in [0, 1]; got nan",
    ),
    (["fit", MISSING, "-o", "m", "--minutes", "nan"], "--minutes", "a finite number > 0"),
    (["fit", MISSING, "-o", "m", "--minutes", "0"], "--minutes", "a finite number > 0"),
    (["fit", MISSING, "-o", "m", "--minutes", "inf"], "--minutes", "a finite number > 0"),
    (["fit", MISSING, "-o", "m", "--iterations", "0"], "--iterations", "an integer >= 1"),
    (["fit", MISSING, "-o", "m", "--iterations", "-2"], "--iterations", "an integer >= 1"),
    (["fit", MISSING, "-o", "m", "--batch-size", "0"], "--batch-size", "an integer >= 1"),
    (["fit", MISSING, "-o", "m", "--workers", "0"], "--workers", "an integer >= 1"),
    (["fit", MISSING, "-o", "m", "--max-gap", "0"], "--max-gap", "an integer >= 1"),
    (["fit", MISSING, "-o", "m", "--crop", "0"], "--crop", f"an integer >= {options.MIN_CROP}"),
    (["fit", MISSING, "-o", "m", "--kernel-size", "0"], "--kernel-size", "an integer >= 1"),
    (["fit", MISSING, "-o", "m", "--flow-views", "3"], "--flow-views", "invalid choice"),
    (["fit", MISSING, "-o", "m", "--lr", "0"], "--lr", "a finite number > 0"),
    (["fit", MISSING, "-o", "m", "--lr", "nan"], "--lr", "a finite number > 0"),
    (
        ["fit", MISSING, "-o", "m", "--membrane-weight", "-1"],
        "--membrane-weight",
        "a finite number >= 0",
    ),
    (["fit", MISSING, "-o", "m", "--ssim-weight", "inf"], "--ssim-weight", "a finite number >= 0"),
    (["fit", MISSING, "-o", "m", "--widths", "8,0"], "--widths", "integers >= 1"),
    (["fit", MISSING, "-o", "m", "--z-step", "0"], "--z-step", "an integer >= 1"),
    (["fit", MISSING, "-o", "m", "--range", "2-5"], "--range", "START:STOP"),
    (["fit", MISSING, "-o", "m", "--seed", "-1"], "--seed", "an integer in [0, 4294967295]"),
    (["simulate", MISSING, "out.tif", "--seed", "-1"], "--seed", "an integer in [0, "),
    (["simulate", MISSING, "out.tif", "--ms", "2"], "--ms", "a finite number in [0, 1]"),
    (["simulate", MISSING, "out.tif", "--sff", "nan"], "--sff", "a finite number in [0, 1]"),
    (["simulate", MISSING, "out.tif", "--sp", "-0.1"], "--sp", "a finite number in [0, 1]"),
    (
        ["detect", MISSING, "-o", "m.tif", "--ms-min-similarity", "1.5"],
        "--ms-min-similarity",
        "a finite number in [0, 1]",
    ),
    (
        ["detect", MISSING, "-o", "m.tif", "--sff-band-threshold", "nan"],
        "--sff-band-threshold",
        "a finite number in [0, 1]",
    ),
    (
        ["detect", MISSING, "-o", "m.tif", "--sff-min-darkness", "-0.5"],
        "--sff-min-darkness",
        "a finite number in [0, 1]",
    ),
    (
        ["detect", MISSING, "-o", "m.tif", "--sp-threshold", "0"],
        "--sp-threshold",
        "a finite number in (0, 1]",
    ),
    (
        ["detect", MISSING, "-o", "m.tif", "--sp-verdict", "2"],
        "--sp-verdict",
        "a finite number in [0, 1]",
    ),
    (["evaluate", MISSING, "--z-step", "0"], "--z-step", "an integer >= 1"),
    (["evaluate", MISSING, "--range", "5:3"], "--range", "which selects no section"),
    (["evaluate", MISSING, "--range", "a:b"], "--range", "START:STOP"),
    (["evaluate", MISSING, "--artifacts", "ms,magic"], "--artifacts", "unknown 'magic'"),
    (["evaluate", MISSING, "--seed", "x"], "--seed", "an integer in [0, "),
]


@pytest.mark.parametrize(
    "argv, option, expected", BAD_VALUES, ids=[" ".join([a[0], *a[-2:]]) for a, _, _ in BAD_VALUES]
)
def test_bad_values_are_refused_when_parsed_naming_the_option(capsys, argv, option, expected):
    err = _parse_error(capsys, argv)
    assert f"emrestore {argv[0]}: error: argument {option}: " in err
    assert expected in err
    if "invalid choice" not in expected and "got" not in expected:
        assert f"got {argv[-1]!r}" in err  # what was given


def test_good_values_at_the_bounds_are_taken():
    parse = cli.build_parser().parse_args
    args = parse(["restore", "in.tif", "-o", "o.tif", "--tile", "0"])
    assert args.tile == 0
    assert parse(["restore", "in.tif", "-o", "o.tif", "--tile", str(options.MIN_TILE)]).tile == 80
    args = parse(
        [
            "fit",
            "in.tif",
            "-o",
            "m",
            "--minutes",
            "0.5",
            "--iterations",
            "1",
            "--lr",
            "1e-4",
            "--ssim-weight",
            "0",
            "--widths",
            "8,16",
            "--range=-6:",
            "--seed",
            str(options.MAX_SEED),
            "--crop",
            "16",
            "--max-gap",
            "1",
        ]
    )
    assert (args.minutes, args.iterations, args.lr, args.ssim_weight) == (0.5, 1, 1e-4, 0.0)
    assert args.widths == (8, 16) and args.range == slice(-6, None) and args.crop == 16
    assert parse(["fit", "in.tif", "-o", "m"]).widths == (16, 32, 64, 96)  # the default, parsed
    args = parse(["simulate", "a.tif", "b.tif", "--ms", "0", "--sp", "1", "--seed", "0"])
    assert (args.ms, args.sp, args.seed) == (0.0, 1.0, 0)
    args = parse(["evaluate", "a.tif", "--range", "2:7", "--artifacts", "ms,sp,ms"])
    assert args.range == slice(2, 7) and options.range_text(args.range) == "2:7"
    assert args.artifacts == ["ms", "sp"]


def test_min_tile_is_the_networks_halo():
    from emrestore.models import InterpolationConfig
    from emrestore.models.interpolation import padded_size

    config = InterpolationConfig()  # the shipped model's architecture
    assert options.MIN_TILE == padded_size(config.receptive_radius, config.stride)


def test_fit_refuses_a_crop_larger_than_the_sections(stack_path, tmp_path):
    base = [
        "fit",
        str(stack_path),
        "-o",
        str(tmp_path / "m"),
        "--iterations",
        "1",
        "--quiet",
        "--no-detect",
    ]
    with pytest.raises(
        SystemExit,
        match=r"--crop 1000 is larger than the sections \(64 x 64 "
        r"pixels\); give at most 64",
    ):
        cli.main(base + ["--crop", "1000"])
    with pytest.raises(SystemExit, match="--crop 20 is no multiple of 8.*try 16 or 24"):
        cli.main(base + ["--crop", "20"])
    assert not (tmp_path / "m").exists()  # refused before anything was written
    small = ["--widths", "8,16", "--kernel-size", "5", "--align", "none", "--batch-size", "2"]
    assert cli.main(base + small + ["--crop", "64"]) == 0  # the whole section: allowed
    record = json.loads((tmp_path / "m" / "config.json").read_text())["training"]
    assert record["crop"] == 64


def test_fit_to_disk_refuses_the_crop_before_reading(stack_path, tmp_path, monkeypatch):
    from emrestore import workflows

    def no_reading(*args, **kwargs):
        raise AssertionError("the stack was read before the options were checked")

    monkeypatch.setattr(workflows, "read_sections", no_reading)
    with pytest.raises(ValueError, match="larger than the sections"):
        workflows.fit_to_disk(stack_path, tmp_path / "m", crop=65, iterations=1)


def test_device_is_checked_when_parsed(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    for device in ("cuda", "foo", "cuda:0"):
        err = _parse_error(capsys, ["fit", MISSING, "-o", "m", "--device", device])
        assert (
            f"argument --device: expected a torch device available here (cpu); got {device!r}"
        ) in err
    assert (
        cli.build_parser().parse_args(["fit", "in.tif", "-o", "m", "--device", "cpu"]).device
        == "cpu"
    )

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    parse = cli.build_parser().parse_args
    for device in ("cuda", "cuda:1"):
        assert parse(["restore", "in.tif", "-o", "o.tif", "--device", device]).device == device
    err = _parse_error(capsys, ["restore", MISSING, "-o", "o.tif", "--device", "cuda:2"])
    assert "available here (cpu, cuda:0, cuda:1); got 'cuda:2'" in err


EVALUATE = ["--artifacts", "ms", "--methods", "degraded,linear", "--quiet"]


def test_evaluate_refuses_earlier_results_before_any_work(stack_path, tmp_path, monkeypatch):
    from emrestore import workflows

    out = tmp_path / "results"
    base = ["evaluate", str(stack_path), "-o", str(out), *EVALUATE]
    assert cli.main(base + ["--reference", "linear"]) == 0
    assert (out / "comparison.json").exists()
    first = (out / "results.json").read_text()

    read = []
    real_read = workflows.read_sections
    monkeypatch.setattr(
        workflows, "read_sections", lambda *a, **k: read.append(a) or real_read(*a, **k)
    )
    with pytest.raises(
        SystemExit,
        match=r"results\.md.* exist\(s\); pass --overwrite "
        r"\(overwrite=True\) to replace",
    ):
        cli.main(base)
    assert not read  # refused before reading the stack
    with pytest.raises(FileExistsError, match="comparison.json"):  # any file it writes
        for name in ("results.md", "results.csv", "results.json", "comparison.md"):
            (out / name).unlink()
        workflows.evaluate_to_disk([stack_path], out, artifacts=["ms"], methods={})
    assert not read

    # --overwrite: replaced, and the comparison of the earlier run does not stay beside them
    assert cli.main(base + ["--overwrite", "--seed", "3"]) == 0
    assert (out / "results.json").read_text() != first
    assert not (out / "comparison.json").exists() and not (out / "comparison.md").exists()


def test_demo_refuses_earlier_results_before_any_work(tmp_path, monkeypatch):
    from emrestore import demo

    out = tmp_path / "demo"
    out.mkdir()
    (out / "report.json").write_text("{}")
    monkeypatch.setattr(demo, "restore", lambda *a, **k: pytest.fail("restored before checking"))
    with pytest.raises(SystemExit, match=r"report\.json exist\(s\); pass --overwrite"):
        cli.main(["demo", "-o", str(out), "--quiet"])
    with pytest.raises(FileExistsError, match="report.json"):
        demo.run(out, progress=False)
    assert (out / "report.json").read_text() == "{}"

    monkeypatch.undo()
    monkeypatch.setattr(demo, "SHAPE", (13, 64, 64))  # PLAN's sections, small: a quick run
    assert cli.main(["demo", "-o", str(out), "--quiet", "--overwrite"]) == 0
    assert json.loads((out / "report.json").read_text())["phantom"]["shape"] == [13, 64, 64]
    assert (out / "panel.png").exists()


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"emrestore": parser, **sub.choices}


def test_help_shows_every_default_once_through_one_formatter():
    for name, parser in _commands().items():
        assert parser.formatter_class is options.HelpFormatter, name
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(
                action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
            ):
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{where} has no help"
            shown = formatter._expand_help(action)  # as --help prints it, before wrapping
            if action.default is None or action.default is False:
                assert "(default: None)" not in shown and "(default: False)" not in shown, where
            else:
                assert shown.endswith(f" (default: {action.default})"), where
                # the formatter prints it: the help must not say it too
                assert not re.search(r"\(default[ :]", action.help), where


def test_help_of_the_options_found_without_one(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--methods METHODS comma-separated restoration methods to score" in text
    assert "(default: degraded,substitution,linear,flow,inpaint)" in text
    with pytest.raises(SystemExit):
        cli.main(["restore", "--help"])
    assert "-o OUT, --output OUT restored stack to write" in " ".join(
        capsys.readouterr().out.split()
    )


def test_version(capsys):
    from emrestore.version import __version__

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"emrestore {__version__}"


def test_the_command_line_stays_thin():
    """Option parsing and printing only: no file writing, no array work in cli/."""
    for path in Path(cli.__file__).parent.glob("*.py"):
        source = path.read_text()
        for word in (
            "numpy",
            "np.",
            "open(",
            "write_",
            ".mkdir",
            ".unlink",
            "write_text",
            "imwrite",
            "torch.from_numpy",
            "torch.tensor",
        ):
            assert word not in source, (path.name, word)
