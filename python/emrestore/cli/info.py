"""``emrestore info``: what this installation contains."""

from __future__ import annotations

import json


def add_parser(sub):
    return sub.add_parser("info", help="what this installation contains (extension, CUDA, threads)")


def run(args) -> int:
    from .. import ops

    print(json.dumps(ops.build_info(), indent=2))
    return 0
