"""The data-randomisation control of the demo: labels permuted with a seed, the committed
checkpoint loadable (weights only, fingerprint checked) and documented in its card."""

from __future__ import annotations

import json

import numpy as np

from gmx.demo import SHUFFLED_MODEL_NAME, shuffled_labels
from gmx.metrics.scorecard import demo_shuffled_model_path


def test_shuffled_labels_keep_the_counts_and_are_seeded() -> None:
    y = np.repeat(np.arange(5), 20)
    a, b = shuffled_labels(y, 0), shuffled_labels(y, 0)
    assert np.array_equal(a, b) and not np.array_equal(a, y)
    assert np.array_equal(np.bincount(a), np.bincount(y))
    assert not np.array_equal(shuffled_labels(y, 1), a)
    assert (a == y).mean() < 0.5  # mostly other labels than the true ones


def test_committed_shuffled_control_loads_and_says_what_it_is() -> None:
    from gmx.encode import load_model

    path = demo_shuffled_model_path()
    assert path.name == f"{SHUFFLED_MODEL_NAME}.pt"
    model = load_model(path, device="cpu")  # weights_only load, fingerprint checked
    card = json.loads(path.with_suffix(".card.json").read_text())
    notes = json.loads(card["notes"])
    assert card["name"] == SHUFFLED_MODEL_NAME and notes["labels_shuffled_with_seed"] == 0
    assert len(card["weights_fingerprint"]) == 64
    assert model.card.classes == tuple(card["classes"])
    # Trained on permuted labels: about chance on the true test labels (10 classes).
    assert notes["classifier_macro_top1_test"] < 0.3
