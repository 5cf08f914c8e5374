"""gmx, the Streamlit app: ``streamlit run app.py``. The pages, their titles and icons are listed in
``ui.common.PAGES``; Home (``pages/0_Home.py``) opens first."""

from __future__ import annotations

# pandas is imported lazily by plotly and Streamlit from whichever script thread first needs it; two
# sessions (or a page change mid-run) importing it at once got "partially initialized module
# 'pandas'" (seen in the browser). Import it once here, before any page runs.
import pandas  # noqa: F401

from ui import common

common.navigation().run()
