"""gmx home page: what the explorer does, which models and gallery are active, and settings."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from gmx.config import GmxConfig
from ui import common, resources, state

cfg = common.page_setup("Home")

st.title("gmx — GestaltMatcher explainability explorer")
st.markdown(
    "Upload a frontal face photo, see which syndromes GestaltMatcher ranks closest, and **why**: "
    "which facial regions drive each match, with several attribution methods side by side."
)

cards = [
    ("🔎 Diagnose", "Photo → aligned face → top-k syndromes with their nearest gallery patients.",
     "pages/1_Diagnose.py"),
    ("🗺️ Explain", "Attribution maps of the top syndromes, many methods, one shared colour scale.",
     "pages/2_Explain.py"),
    ("👥 Similarity", "What makes your patient look like each nearest gallery patient, on both faces.",
     "pages/3_Similarity.py"),
    ("🧬 Syndromes", "Where the model looks for a syndrome across all its patients; composite faces.",
     "pages/4_Syndromes.py"),
]  # fmt: skip
for column, (title, text, page) in zip(st.columns(len(cards)), cards, strict=True):
    with column:
        st.subheader(title)
        st.write(text)
        common.page_link(page, f"Open {title.split()[-1]}", title.split()[0])
st.caption(
    "🔒 Photos stay in memory and are never written to disk unless you export something. No telemetry."
)

st.divider()
st.subheader("Active models and gallery")
if cfg.is_demo:
    st.markdown(common.DEMO_WARNING)
st.markdown(
    f"- **Source:** {cfg.source}\n"
    f"- **Models:** {', '.join(f'`{p}`' for p in cfg.model_paths)}\n"
    f"- **Gallery:** `{cfg.gallery_path}`\n"
    f"- **Test-time augmentation:** flip {'on' if cfg.flip else 'off'}, grey {'on' if cfg.grey else 'off'}"
    f" · **device:** {cfg.device}"
)

with st.expander("Settings: use real GestaltMatcher weights and a GMDB gallery"):
    st.caption(
        "Point gmx at files you are allowed to use. Supported: GestaltMatcher-Arc state_dicts, "
        "insightface ONNX, original GestaltMatcher `.pt`, gmx format. The gallery must have been "
        "built with exactly these models (`gmx gallery build`). Applies to this browser session only."
    )
    with st.form("settings"):
        models_text = st.text_area(
            "Model files (one path per line, ensemble order)",
            value="\n".join(str(p) for p in cfg.model_paths),
        )
        gallery_text = st.text_input("Gallery file (.sqlite)", value=str(cfg.gallery_path))
        f1, f2, f3, f4 = st.columns(4)
        flip = f1.toggle("TTA: flip", value=cfg.flip)
        grey = f2.toggle("TTA: grey", value=cfg.grey)
        device = f3.selectbox(
            "Device",
            ["auto", "cpu", "cuda", "mps"],
            index=["auto", "cpu", "cuda", "mps"].index(cfg.device)
            if cfg.device in ("auto", "cpu", "cuda", "mps")
            else 0,
        )
        precision = f4.selectbox(
            "Precision",
            ["fp32", "bf16"],
            index=["fp32", "bf16"].index(cfg.precision),
            help="bf16: about twice as fast on recent CPUs/GPUs, embeddings differ by ~1e-3",
        )
        applied = st.form_submit_button("Apply", type="primary")
    if applied:
        paths = [
            Path(line.strip()).expanduser() for line in models_text.splitlines() if line.strip()
        ]
        missing = [str(p) for p in [*paths, Path(gallery_text).expanduser()] if not p.is_file()]
        if not paths:
            st.error("Give at least one model file.")
        elif missing:
            st.error("These files do not exist: " + ", ".join(f"`{m}`" for m in missing))
        else:
            st.session_state[state.CONFIG] = GmxConfig(
                model_paths=tuple(paths),
                gallery_path=Path(gallery_text).expanduser(),
                flip=flip,
                grey=grey,
                device=device,
                precision=precision,
                source="settings panel",
            )
            state.clear_photo()
            st.success("Settings applied to this session.")
            st.rerun()
    if not cfg.is_demo and st.button("Back to the embedded demo"):
        st.session_state[state.CONFIG] = GmxConfig()
        state.clear_photo()
        st.rerun()

st.caption(
    f"Default configuration comes from `GMX_CONFIG` (a TOML file) or `GMX_MODELS`/`GMX_GALLERY`; "
    f"now: {resources.default_config_source()}."
)
