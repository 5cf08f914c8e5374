"""gmx: an explainability explorer for GestaltMatcher.

The library is organised by stage (see ``docs/architecture.md``):
``gmx.align`` -> ``gmx.encode`` -> ``gmx.gallery`` -> ``gmx.explain`` / ``gmx.similarity``
-> ``gmx.aggregate``. It never imports streamlit; the app lives in ``app.py`` and ``pages/``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
