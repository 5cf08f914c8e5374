"""A tiny study (3 cases, 2 methods) for the study tests."""

from __future__ import annotations

import pytest

from gmx.study import new_template, study_from_text

CASES = ("c1", "c2", "c3")


@pytest.fixture()
def tiny_study():
    text = new_template(cases=CASES).replace("top_k = 5", "top_k = 2")
    return study_from_text(text)


@pytest.fixture(scope="session")
def study_gallery(tmp_path_factory):
    """A real small gallery file built from demo photos with the demo model (tests/study/galleries.py)."""
    from tests.study.galleries import build_study_gallery

    return build_study_gallery(tmp_path_factory.mktemp("study_gallery"))
