"""Per-photo checks (the Explain page's, on demand): the scorecard's functions on one face."""

from __future__ import annotations

import numpy as np
import pytest

from gmx.encode import Variant
from gmx.explain import SimilarityTarget, explain
from gmx.metrics.completeness import method_completeness
from gmx.metrics.faithfulness import faithfulness_curves
from gmx.metrics.photo import PHOTO_FILL, PHOTO_STEPS, null_map, photo_checks
from gmx.metrics.scorecard import ScorecardSettings


def test_null_map_is_the_registered_random_method(tiny) -> None:
    """One null: the random map of the per-photo check is the registry's ``random`` method."""
    target = SimilarityTarget(tiny.gallery.embeddings[0], "g")
    got = explain(tiny.model, tiny.faces[0], target, [Variant(0)], methods=["random"])["random"]
    assert np.array_equal(np.asarray(got.values, np.float32), null_map(0))
    assert not np.array_equal(null_map(0), null_map(1))


def test_photo_checks_are_the_scorecards_numbers(tiny) -> None:
    face = tiny.faces[0]
    variants = list(tiny.gallery.variants)
    targets = [
        SimilarityTarget(tiny.gallery.embeddings[0], "a"),
        SimilarityTarget(tiny.gallery.embeddings[4], "b"),
    ]
    maps = [
        {
            m: np.asarray(a.values)
            for m, a in explain(
                tiny.model, face, t, variants, methods=["saliency", "deeplift"]
            ).items()
        }
        for t in targets
    ]
    got = photo_checks(tiny.model, face, targets, maps, variants)
    assert (ScorecardSettings().steps, ScorecardSettings().fill) == (PHOTO_STEPS, PHOTO_FILL)
    assert set(got.checks) == {(0, "saliency"), (0, "deeplift"), (1, "saliency"), (1, "deeplift")}
    # The same numbers as the scorecard's curve kernel, called one face at a time.
    for i, t in enumerate(targets):
        alone = faithfulness_curves(
            tiny.model, face[None], {"m": maps[i]["saliency"][None], "r": null_map(0)[None]}, [t],
            variants, modes=("deletion",), orders=("most",), fills=("blur",), steps=PHOTO_STEPS,
        )  # fmt: skip
        c = got.get(i, "saliency")
        assert c.deletion_auc == pytest.approx(alone[0].auc, abs=1e-9)
        assert c.random_deletion_auc == pytest.approx(alone[1].auc, abs=1e-9)
        assert c.deletion_vs_random == pytest.approx(alone[1].auc - alone[0].auc, abs=1e-9)
        assert c.beats_random == (c.deletion_vs_random > 0)
        assert c.completeness is None  # saliency makes no completeness claim
        assert c.score == pytest.approx(c.random_deletion[0], abs=1e-12)  # same clean face
        dl = got.get(i, "deeplift").completeness
        want = method_completeness(tiny.model, face, t, "deeplift")
        assert dl is not None and dl.relative == pytest.approx(want.relative, abs=1e-9)
    assert len(got.fractions) == PHOTO_STEPS + 1


def test_photo_checks_bad_input(tiny) -> None:
    t = SimilarityTarget(tiny.gallery.embeddings[0], "a")
    with pytest.raises(ValueError, match="rows"):
        photo_checks(tiny.model, tiny.faces[0], [t], [])
    with pytest.raises(ValueError, match="face"):
        photo_checks(tiny.model, tiny.faces[0][:50], [t], [{}])
    assert photo_checks(tiny.model, tiny.faces[0], [t], [{}]).checks == {}
