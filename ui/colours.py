"""The one colour-map choice of the app (every page, overlays and raw panels) and its legends."""

from __future__ import annotations

import streamlit as st

from gmx.viz import DEFAULT_PALETTE, PALETTES, Palette, Scale, colour_bar, legend_text, range_text
from ui import state

#: Kept setting (survives a change of page): the label of the chosen palette.
PALETTE = state.KEEP_PREFIX + "palette"
PALETTE_HELP = (
    "One choice for every map on every page: signed maps (support / oppose) use the first, "
    "diverging map, centred on zero; unsigned maps (importance without direction) the second. "
    "Pink-green and viridis are safe for colour-blind readers."
)
#: Width (pixels, before the browser stretches it) and height of a legend strip.
BAR_WIDTH = 256
BAR_HEIGHT = 10


def palette_control() -> Palette:
    """The colour-map select box (a kept setting); returns the chosen palette."""
    label = st.selectbox(
        "Colour map", list(PALETTES), key=state.keep("palette", DEFAULT_PALETTE), help=PALETTE_HELP
    )
    return PALETTES[label]


def current_palette() -> Palette:
    """The chosen palette without drawing the control (the default before any choice)."""
    return PALETTES.get(state.get(PALETTE, DEFAULT_PALETTE), PALETTES[DEFAULT_PALETTE])


def bar(palette: Palette, signed: bool) -> None:
    """The colour bar alone (low values left), in the current container."""
    st.image(colour_bar(palette.cmap(signed), BAR_WIDTH, BAR_HEIGHT), width="stretch")


def legend(scale: Scale, palette: Palette, note: str = "", *, compact: bool = False) -> None:
    """A colour bar with its range in words, in the current container; ``compact`` (narrow
    columns) shows only the range, the words and ``note`` on hover."""
    cmap = palette.cmap(scale.diverging)
    bar(palette, scale.diverging)
    words = legend_text(scale, cmap) + (f" · {note}" if note else "")
    if compact:
        st.caption(range_text(scale), help=words)
    else:
        st.caption(words)
