from __future__ import annotations

import numpy as np
import pytest

from gmx.aggregate.imbalance import EXCLUDED, variant_data
from gmx.synth.dataset import load_demo_data


@pytest.fixture(scope="module")
def data():
    return load_demo_data("models/demo")


def _train_patients(d, syn):
    t = d.splits == "train"
    return len(np.unique(d.subject_ids[t & (d.labels == syn)]))


@pytest.mark.parametrize("cap", [10, 20])
def test_cap_limits_every_syndrome_and_keeps_all_photos_of_kept_patients(data, cap):
    v = variant_data(data, f"cap{cap}")
    syns = np.unique(data.labels[data.splits == "train"])
    for s in syns:
        assert _train_patients(v, s) == min(cap, _train_patients(data, s))
    kept = np.unique(v.subject_ids[v.splits == "train"])
    assert (
        (v.splits == "train") == (np.isin(data.subject_ids, kept) & (data.splits == "train"))
    ).all()
    # nothing but training rows changes
    assert (v.splits[data.splits != "train"] == data.splits[data.splits != "train"]).all()
    assert set(np.unique(v.splits)) <= {*np.unique(data.splits), EXCLUDED}


def test_drop3_removes_the_three_largest_syndromes(data):
    v = variant_data(data, "drop3")
    syns = np.unique(data.labels[data.splits == "train"])
    sizes = sorted(syns, key=lambda s: _train_patients(data, s), reverse=True)
    assert [_train_patients(v, s) for s in sizes[:3]] == [0, 0, 0]
    assert all(_train_patients(v, s) == _train_patients(data, s) for s in sizes[3:])


def test_unknown_variant_is_refused(data):
    with pytest.raises(ValueError, match="unknown variant"):
        variant_data(data, "half")
