"""The landmark index groups are MediaPipe's mesh topology, re-derived from MediaPipe itself."""

from __future__ import annotations

import pytest
from mediapipe.tasks.python.vision import FaceLandmarksConnections as C

from gmx.align import mesh


def _nodes(conns: list) -> set[int]:
    return {i for c in conns for i in (c.start, c.end)}


def _edges(conns: list) -> set[frozenset[int]]:
    return {frozenset((c.start, c.end)) for c in conns}


@pytest.mark.parametrize(
    ("loop", "conns"),
    [
        (mesh.FACE_OVAL, C.FACE_LANDMARKS_FACE_OVAL),
        (mesh.LEFT_EYE, C.FACE_LANDMARKS_LEFT_EYE),
        (mesh.RIGHT_EYE, C.FACE_LANDMARKS_RIGHT_EYE),
        (mesh.LEFT_IRIS[1:], C.FACE_LANDMARKS_LEFT_IRIS),
        (mesh.RIGHT_IRIS[1:], C.FACE_LANDMARKS_RIGHT_IRIS),
    ],
)
def test_closed_loops_follow_mediapipe_edges(loop: tuple[int, ...], conns: list) -> None:
    assert set(loop) == _nodes(conns) and len(loop) == len(set(loop))
    walked = {frozenset((loop[i], loop[(i + 1) % len(loop)])) for i in range(len(loop))}
    assert walked == _edges(conns)


def test_lips_are_two_loops() -> None:
    edges = _edges(C.FACE_LANDMARKS_LIPS)
    walked: set[frozenset[int]] = set()
    for loop in (mesh.LIPS_OUTER, mesh.LIPS_INNER):
        walked |= {frozenset((loop[i], loop[(i + 1) % len(loop)])) for i in range(len(loop))}
    assert walked == edges
    assert set(mesh.LIPS) == _nodes(C.FACE_LANDMARKS_LIPS) and len(mesh.LIPS) == 40


@pytest.mark.parametrize(
    ("poly", "conns"),
    [
        (mesh.LEFT_EYEBROW, C.FACE_LANDMARKS_LEFT_EYEBROW),
        (mesh.RIGHT_EYEBROW, C.FACE_LANDMARKS_RIGHT_EYEBROW),
    ],
)
def test_eyebrow_polygons_contain_both_paths(poly: tuple[int, ...], conns: list) -> None:
    assert set(poly) == _nodes(conns) and len(poly) == 10
    walked = {frozenset((poly[i], poly[(i + 1) % len(poly)])) for i in range(len(poly))}
    assert _edges(conns) <= walked  # plus the two closing edges at the brow's ends
    assert len(walked - _edges(conns)) == 2


def test_nose_and_iris_centres() -> None:
    assert set(mesh.NOSE) == _nodes(C.FACE_LANDMARKS_NOSE)
    assert mesh.RIGHT_IRIS[0] == 468 and mesh.LEFT_IRIS[0] == 473
    assert mesh.FIVE_POINT_GROUPS[0] == mesh.RIGHT_IRIS  # subject's right = image left first
    everything = [i for g in (mesh.FACE_OVAL, mesh.LIPS, mesh.NOSE, mesh.LEFT_IRIS) for i in g]
    assert all(0 <= i < mesh.NUM_LANDMARKS for i in everything)
