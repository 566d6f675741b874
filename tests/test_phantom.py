import numpy as np
import pytest
from emrestore.phantom import adjacent_ncc, make_phantom


@pytest.fixture(scope="module")
def small():
    return make_phantom((6, 192, 224), seed=3)


def test_shapes_and_types(small):
    assert small.raw.shape == small.labels.shape == small.membrane.shape == (6, 192, 224)
    assert (
        small.raw.dtype == np.uint8
        and small.labels.dtype == np.uint32
        and small.membrane.dtype == bool
    )
    assert small.labels.min() >= 1


def test_same_seed_same_stack_other_seed_other_stack(small):
    again = make_phantom((6, 192, 224), seed=3)
    assert np.array_equal(small.raw, again.raw) and np.array_equal(small.labels, again.labels)
    assert not np.array_equal(small.raw, make_phantom((6, 192, 224), seed=4).raw)


def test_membranes_are_dark_thin_bands_between_cells(small):
    raw = small.raw.astype(float)
    assert raw[small.membrane].mean() < raw[~small.membrane].mean() - 25
    assert 0.03 < small.membrane.mean() < 0.3
    # Cell ids change across membranes, and cells span several sections.
    per_section = [len(np.unique(lab)) for lab in small.labels]
    assert min(per_section) >= 5
    shared = np.intersect1d(np.unique(small.labels[0]), np.unique(small.labels[1]))
    assert len(shared) >= 0.5 * per_section[0]


def test_neighbouring_sections_correlate_like_sstem(small):
    ncc = adjacent_ncc(small.raw)
    assert 0.15 < ncc.mean() < 0.5
    thick = make_phantom((6, 192, 224), seed=3, z_step=40.0)
    assert adjacent_ncc(thick.raw).mean() < ncc.mean()


def test_bad_shape_is_rejected():
    with pytest.raises(ValueError, match=r"at least \(1, 8, 8\); got \(0, 64, 64\)"):
        make_phantom((0, 64, 64))
