"""Home: what the explorer does, which models and gallery are active, and the settings to change them."""

from __future__ import annotations

import streamlit as st

from ui import common, resources, settings

cfg = common.page_setup("Home")
st.title("gmx — GestaltMatcher explainability explorer")
st.markdown(
    "Upload a frontal face photo, see which syndromes GestaltMatcher ranks closest, and **why**: "
    "which facial regions drive each match, with several attribution methods side by side."
)
common.page_cards()
st.caption(f"{common.ICON_PRIVATE} {common.PRIVACY_NOTE}")

st.divider()
st.subheader("Active models and gallery")
shared = resources.shared_mode()
st.markdown(settings.describe(cfg, shared))
settings.panel(cfg, shared)
if shared is None:
    st.caption(
        f"Default configuration comes from `GMX_CONFIG` (a TOML file) or `GMX_MODELS`/`GMX_GALLERY`; "
        f"now: {resources.default_config_source()}."
    )
