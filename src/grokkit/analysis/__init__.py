"""Analyses of trained networks: sharpness (Appendix A.5) and embedding t-SNE (Figure 3)."""

from __future__ import annotations

from importlib import import_module

# Each name's submodule, imported on first use: figure modules import grokkit.analysis.* and
# `reproduce --list` and `--plan` import every figure module, so importing this package must not
# import the analyses (numpy, torch and, inside them, scipy and sklearn) before they are needed.
_SUBMODULE_OF = {
    **dict.fromkeys(
        (
            "PAPER_S5_GENERATORS",
            "add_constant_pairs",
            "best_coset_colouring",
            "chance_agreement",
            "compose",
            "conjugate_subgroups",
            "coset_colourings",
            "cycle_notation",
            "from_cycles",
            "inverse",
            "nearest_neighbours",
            "neighbour_agreement",
            "parse_permutation",
            "residue_labels",
            "s5_coset_labels",
            "subgroup_closure",
            "translation_neighbour_rates",
            "tsne_2d",
        ),
        "embeddings",
    ),
    **dict.fromkeys(("flatten_parameters", "keskar_sharpness"), "sharpness_torch"),
}


def __getattr__(name: str):
    if name in _SUBMODULE_OF:
        value = getattr(import_module(f"grokkit.analysis.{_SUBMODULE_OF[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PAPER_S5_GENERATORS",
    "add_constant_pairs",
    "best_coset_colouring",
    "chance_agreement",
    "compose",
    "conjugate_subgroups",
    "coset_colourings",
    "cycle_notation",
    "flatten_parameters",
    "from_cycles",
    "inverse",
    "keskar_sharpness",
    "nearest_neighbours",
    "neighbour_agreement",
    "parse_permutation",
    "residue_labels",
    "s5_coset_labels",
    "subgroup_closure",
    "translation_neighbour_rates",
    "tsne_2d",
]
