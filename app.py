"""gmx, the Streamlit app: ``streamlit run app.py``. The pages, their titles and icons are listed in
``ui.common.PAGES``; Home (``pages/0_Home.py``) opens first."""

from __future__ import annotations

from ui import common

common.navigation().run()
