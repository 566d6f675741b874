"""Full detection (missing sections, folds, precipitates) throughput at 1024 x 1024 on a degraded
phantom stack (pytest-benchmark; the target is >= 5 sections/s on 2 cores), with the neighbours'
evidence (the default) and with the section alone.

Run: pytest benchmarks/test_bench_detect.py --benchmark-enable --benchmark-columns=median,rounds
"""

import pytest
from emrestore.detect import detect_stack
from emrestore.phantom import make_phantom
from emrestore.simulate import simulate_stack

SECTIONS = 6


@pytest.fixture(scope="module")
def degraded():
    clean = make_phantom((SECTIONS, 1024, 1024), seed=0).raw
    return simulate_stack(clean, {"ms": 0.2, "sff": 0.3, "sp": 0.3}, seed=0).volume


@pytest.mark.parametrize("consistency", [True, False], ids=["neighbours", "section-alone"])
def test_detect_stack_1024(benchmark, degraded, consistency):
    result = benchmark.pedantic(
        detect_stack,
        args=(degraded,),
        kwargs={"consistency": consistency},
        rounds=3,
        warmup_rounds=1,
    )
    assert len(result.sections) == SECTIONS
    if benchmark.stats is not None:
        benchmark.extra_info["sections_per_second"] = SECTIONS / benchmark.stats.stats.median
