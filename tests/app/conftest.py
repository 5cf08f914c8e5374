"""Fixtures shared by the AppTest modules."""

from __future__ import annotations

import pytest


@pytest.fixture()
def tiny_env(tiny_setup, monkeypatch):
    """The tiny fixture configuration (``tests/conftest.py``) as the app's ``GMX_CONFIG``."""
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    return tiny_setup


@pytest.fixture()
def media_managers(monkeypatch) -> list:
    """The media file managers of AppTest runs (where a deferred download's callable waits)."""
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.testing.v1 import app_test as app_test_module

    managers: list = []

    class Recording(MediaFileManager):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            managers.append(self)

    monkeypatch.setattr(app_test_module, "MediaFileManager", Recording)
    return managers


@pytest.fixture()
def clicked(media_managers):
    """``clicked(at, label_part)``: what a click on the (deferred) download button whose label
    holds ``label_part`` gets."""

    def click(at, label_part: str) -> bytes:
        proto = next(b.proto for b in at.get("download_button") if label_part in b.proto.label)
        manager = media_managers[-1]
        url = manager.execute_deferred(proto.deferred_file_id)
        return manager._storage.get_file(url.rsplit("/", 1)[-1].split(".")[0]).content

    return click
