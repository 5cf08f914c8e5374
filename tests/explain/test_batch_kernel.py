"""explain_batch and RowTarget: the batch path is the engine's own loop over registered methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gmx.explain import (
    LogitTarget,
    RowTarget,
    SimilarityTarget,
    explain,
    explain_batch,
    get_method,
    list_methods,
)
from gmx.variants import Variant

from .helpers import gallery

BATCHABLE = tuple(m for m in list_methods() if get_method(m).batchable)


def _faces(face: np.ndarray) -> np.ndarray:
    return np.stack([face, face[:, ::-1], np.roll(face, 9, axis=0)])


def test_row_target_scores_each_row_like_the_single_targets() -> None:
    refs = np.stack([gallery(8, rows=2, seed=s) for s in range(3)])  # (3, V=2, D=8)
    cls = np.array([-1, 1, -1])
    classifier = nn.Linear(8, 3)
    emb = torch.from_numpy(gallery(8, rows=3, seed=9))
    for v in (0, 1):
        got = RowTarget(refs, cls).bind(v, classifier)(emb)
        want = [
            SimilarityTarget(refs[0]).bind(v)(emb[:1])[0],
            LogitTarget(1).bind(v, classifier)(emb[1:2])[0],
            SimilarityTarget(refs[2]).bind(v)(emb[2:])[0],
        ]
        torch.testing.assert_close(got, torch.stack(want))
    # A one-row target scores every row against that row, as SimilarityTarget does.
    one = RowTarget(refs[:1]).bind(1)(emb)
    torch.testing.assert_close(one, SimilarityTarget(refs[0]).bind(1)(emb))


def test_row_target_rejects_what_does_not_fit() -> None:
    refs = np.stack([gallery(8, rows=1, seed=s) for s in range(2)])
    with pytest.raises(ValueError, match="classifier"):
        RowTarget(refs, [0, -1]).bind(0, None)
    with pytest.raises(ValueError, match="2 target rows"):
        RowTarget(refs).bind(0)(torch.zeros((3, 8)))
    with pytest.raises(ValueError, match="reference row"):
        RowTarget(refs).bind(1)
    with pytest.raises(ValueError, match="zero reference"):
        RowTarget(np.zeros((2, 1, 8)))
    RowTarget(np.zeros((1, 1, 8)), [0])  # a logit row needs no reference


@pytest.mark.parametrize("variants", [None, (Variant(0, flip=True, grey=True),)])
def test_batch_rows_equal_one_face_calls_for_every_batchable_method(
    tiny_model, face, variants
) -> None:
    faces = _faces(face)
    before = faces.copy()
    refs = np.stack([gallery(64, seed=s) for s in range(3)])
    maps = explain_batch(tiny_model, faces, RowTarget(refs), variants, methods=BATCHABLE)
    np.testing.assert_array_equal(faces, before)
    assert list(maps) == list(BATCHABLE)
    for i in range(3):
        one = explain(tiny_model, faces[i], SimilarityTarget(refs[i]), variants, methods=BATCHABLE)
        for m in BATCHABLE:
            scale = float(np.abs(one[m].values).max()) or 1.0
            np.testing.assert_allclose(
                maps[m][i], one[m].values, rtol=1e-4, atol=1e-5 * scale, err_msg=f"{m} row {i}"
            )


def test_batch_refuses_what_it_cannot_share(tiny_model, face) -> None:
    faces = _faces(face)
    target = SimilarityTarget(gallery(64))
    with pytest.raises(ValueError, match="not batchable"):
        explain_batch(tiny_model, faces, target, methods=["occlusion"])
    with pytest.raises(ValueError, match="SmoothGrad"):
        explain_batch(
            tiny_model,
            faces,
            target,
            methods=["saliency"],
            params={"saliency": {"smooth_samples": 2}},
        )
    with pytest.raises(ValueError, match="2 rows for 3 faces"):
        explain_batch(
            tiny_model, faces, RowTarget(np.stack([gallery(64)] * 2)), methods=["gradcam"]
        )
    with pytest.raises(ValueError, match="uint8"):
        explain_batch(tiny_model, faces.astype(np.float32), target, methods=["gradcam"])


def test_native_batch_maps_are_the_engines_raw_maps(tiny_model, face) -> None:
    faces = _faces(face)
    refs = np.stack([gallery(64, seed=s) for s in range(3)])
    maps = explain_batch(
        tiny_model, faces, RowTarget(refs), methods=["gradcam", "saliency"], native=True
    )
    assert maps["gradcam"].shape == (3, 7, 7) and maps["saliency"].shape == (3, 112, 112)
    for i in range(3):
        one = explain(tiny_model, faces[i], SimilarityTarget(refs[i]), methods=["gradcam"])
        np.testing.assert_allclose(maps["gradcam"][i], one["gradcam"].raw, rtol=1e-4, atol=1e-7)
