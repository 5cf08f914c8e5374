"""Region metrics against values computed by hand (see each test's comment)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gmx.study.definition import StudyError
from gmx.study.regions import (
    Annotation,
    annotation_mask,
    auc_judd,
    cell_bounds,
    fixations,
    iou,
    nss,
    read_fixations,
    region_agreement,
    top_mask,
    truth_agreement,
)

S = np.array([[4.0, 3.0], [2.0, 1.0]])


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([(0, 0)], 1.0),  # the maximum: TPR 1 at FPR 0
        ([(1, 1)], 0.5),  # the minimum: (0,0)-(1,1)
        ([(1, 0)], 5 / 6),  # value 3: (1/3, 1) -> 1/6 + 2/3
        ([(0, 0), (0, 1)], 0.875),  # values 4, 2: (0, .5), (.5, 1) -> .375 + .5
    ],
)
def test_auc_judd_by_hand(points, expected):
    assert auc_judd(S, np.array(points)) == pytest.approx(expected)


def test_auc_judd_degenerate():
    assert math.isnan(auc_judd(S, np.zeros((0, 2), int)))


def test_nss_by_hand():
    z4 = 1.5 / math.sqrt(1.25)  # mean 2.5, population sd sqrt(1.25)
    assert nss(S, np.array([[0, 0]])) == pytest.approx(z4)
    # weights 1 and 3 on the values 4 and 1: (z4 - 3 z4) / 4
    assert nss(S, np.array([[0, 0], [1, 1]]), np.array([1.0, 3.0])) == pytest.approx(-z4 / 2)
    assert math.isnan(nss(np.ones((3, 3)), np.array([[0, 0]])))


def test_top_mask_and_iou_by_hand():
    m = np.arange(100, dtype=float).reshape(10, 10)
    top = top_mask(m, 10)
    assert top.sum() == 10 and top[9].all()
    half = np.zeros((10, 10), bool)
    half[9, :5] = True
    assert iou(top, half) == 0.5
    assert math.isnan(iou(np.zeros(4, bool), np.zeros(4, bool)))
    with pytest.raises(ValueError):
        top_mask(m, 0)


def test_marks_geometry():
    assert cell_bounds(5) == (28, 28, 56, 56)  # 4x4 grid of 28-pixel cells
    disc = annotation_mask(Annotation(points=((50.0, 50.0),)))
    assert disc.sum() == 197  # lattice points within radius 8 (Gauss circle N(8))
    cell = annotation_mask(Annotation(cells=(0,)))
    assert cell.sum() == 28 * 28 and cell[:28, :28].all()
    xy, w = fixations(Annotation(points=((3.4, 7.6),), cells=(5,)))
    assert xy.tolist() == [[3, 8], [41, 41]] and w.tolist() == [1.0, 1.0]


def test_annotation_json_roundtrip_and_no_mutation():
    a = Annotation().with_point(10, 20).with_point(200, -5).with_cells([3, 1, 3])
    assert a.points == ((10.0, 20.0), (111.0, 0.0)) and a.cells == (1, 3)
    assert Annotation.from_json(a.to_json()) == a
    with pytest.raises(ValueError):
        a.with_cells([16])


def test_region_agreement_perfect_and_truth():
    region = np.zeros((112, 112), bool)
    region[:28, :28] = True
    ann = Annotation(cells=(0,))
    smap = region.astype(float)
    got = region_agreement(smap, ann, top_percent=100 * 28 * 28 / 112**2)
    assert got.iou_top == 1.0
    # one fixation (the cell centre) on a binary map: TPR 1 at FPR 783/12543 (the other pixels
    # of the cell tie with it), so AUC = 1 - FPR/2; NSS of a 1-in-16 binary map = sqrt(15)
    assert got.auc_judd == pytest.approx(1 - 0.5 * 783 / 12543)
    assert got.nss == pytest.approx(math.sqrt(15))
    t = truth_agreement(ann, region)
    assert (t.iou, t.hit_rate, t.coverage) == (1.0, 1.0, 1.0)
    # half the marked cell lies in the region
    t2 = truth_agreement(Annotation(cells=(0,)), np.pad(region[:, :14], ((0, 0), (0, 98))))
    assert t2.iou == 0.5 and t2.coverage == 1.0


def test_read_fixations(tmp_path):
    p = tmp_path / "fix.csv"
    p.write_text("image_id,x,y,duration\na,10,20,0.25\na,30,40,0.5\nb,1,2,0.1\n")
    got = read_fixations(p)
    assert got["a"].points == ((10.0, 20.0), (30.0, 40.0)) and got["a"].durations == (0.25, 0.5)
    p.write_text("image_id,x,y\na,1,2\n")
    with pytest.raises(StudyError, match="duration"):
        read_fixations(p)
    p.write_text("image_id,x,y,duration\na,500,2,1\n")
    with pytest.raises(StudyError, match="outside"):
        read_fixations(p)
