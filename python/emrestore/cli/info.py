"""``emrestore info``: what this installation contains."""

from __future__ import annotations

import json

from .options import command_parser


def add_parser(sub):
    return command_parser(
        sub, "info", help="what this installation contains (extension, CUDA, threads)"
    )


def run(args) -> int:
    from .. import ops

    print(json.dumps(ops.build_info(), indent=2))
    return 0
