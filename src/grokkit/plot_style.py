"""The figures' shared colours, markers and caption tag, as plain constants without matplotlib:
figure modules read them at import time, and ``grokkit reproduce --list``/``--plan`` import every
figure module without waiting for matplotlib. ``grokkit.plots`` re-exports them."""

from __future__ import annotations

TRAIN_COLOR = "tab:red"
VALIDATION_COLOR = "tab:green"
# Categories (cosets, operations, optimisers): colours that stand out on white, red left out (the
# figures use it for highlights), then three darker ones; beyond 9, markers tell them apart too.
CATEGORY_COLORS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:cyan",
    "tab:olive",
    "tab:gray",
    "black",
    "darkgoldenrod",
    "navy",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")
CAPTION_GID = "grokkit-caption"  # a figure text that ``fit_captions`` wraps to the panels' width
