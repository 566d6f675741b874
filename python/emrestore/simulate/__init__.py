"""Degradation simulator: staining precipitates, support-film folds and missing sections on clean
sections, with their ground truth, for training pairs, evaluation, the demo and the tests.

Every simulator takes one section [H, W] (or a stack and an index), a seed or a
``numpy.random.Generator``, and parameter distributions (a number, a (low, high) range, a
``LogUniform``, or a callable of the generator); it returns an ``Artifact`` with the degraded image
(same dtype), the mask of replaced pixels and a JSON-ready record of its draws.
"""

from ..conventions import BITS, MS, SFF, SP
from ._common import Artifact, LogUniform
from .ms import simulate_ms
from .sff import invert_flow, simulate_sff
from .sp import simulate_sp
from .stack import FLY_BRAIN_RATES, StackSimulation, plan_artifacts, simulate_stack

__all__ = [
    "Artifact",
    "BITS",
    "FLY_BRAIN_RATES",
    "LogUniform",
    "MS",
    "SFF",
    "SP",
    "StackSimulation",
    "invert_flow",
    "plan_artifacts",
    "simulate_ms",
    "simulate_sff",
    "simulate_sp",
    "simulate_stack",
]
