"""Analyses of trained networks: sharpness (Appendix A.5) and embedding t-SNE (Figure 3)."""

from grokkit.analysis.embeddings import (
    PAPER_S5_GENERATORS,
    add_constant_pairs,
    best_coset_colouring,
    compose,
    conjugate_subgroups,
    coset_colourings,
    cycle_notation,
    from_cycles,
    inverse,
    nearest_neighbours,
    parse_permutation,
    residue_labels,
    s5_coset_labels,
    subgroup_closure,
    translation_neighbour_rates,
    tsne_2d,
)
from grokkit.analysis.sharpness import flatten_parameters, keskar_sharpness

__all__ = [
    "PAPER_S5_GENERATORS",
    "add_constant_pairs",
    "best_coset_colouring",
    "compose",
    "conjugate_subgroups",
    "coset_colourings",
    "cycle_notation",
    "flatten_parameters",
    "from_cycles",
    "inverse",
    "keskar_sharpness",
    "nearest_neighbours",
    "parse_permutation",
    "residue_labels",
    "s5_coset_labels",
    "subgroup_closure",
    "translation_neighbour_rates",
    "tsne_2d",
]
