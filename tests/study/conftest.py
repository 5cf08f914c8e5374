"""A tiny study (3 cases, 2 methods) for the study tests."""

from __future__ import annotations

import pytest

from gmx.study import new_template, study_from_text

CASES = ("c1", "c2", "c3")


@pytest.fixture()
def tiny_study():
    text = new_template(cases=CASES).replace("top_k = 5", "top_k = 2")
    return study_from_text(text)
