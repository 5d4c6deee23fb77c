"""Figure 3: t-SNE of the output layer's element rows, S5 (coset colours) and x+y (x -> x+8 lines)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from grokkit.analysis import (add_constant_pairs, nearest_neighbours, parse_permutation, residue_labels,
                              s5_coset_labels, subgroup_closure, translation_neighbour_rates, tsne_2d)  # fmt: skip
from grokkit.analysis.weights import output_rows
from grokkit.config import RunConfig
from grokkit.data import Table, make_table
from grokkit.experiments import common
from grokkit.plots import apply_style

NAME = "fig3"
DESCRIPTION = "t-SNE of output-layer rows: S5 x·y (coset colours) and x+y (x -> x+8 lines)"
CLAIM = ("The output layer's rows show the operation's structure: S5 elements cluster by cosets "
         "of a subgroup, and x+y mod 97 elements lie along lines x -> x+8.")
OPTIONS: tuple[str, ...] = ()
REDUCTIONS = {
    "smoke": "s5_xy and x+y mod 11, 1 layer of width 16, 20 steps: code path only (no structure expected).",
    "laptop": ("s5_xy at 60 % data and x+y mod 97 at 50 % data, AdamW (weight decay 1), budget "
               "10,000 steps instead of 10^5 (the paper does not give its runs' budgets), no early "
               "stop. Paper model."),
    "paper": ("s5_xy at 60 % data and x+y mod 97 at 50 % data (the paper gives neither: our choice), "
              "AdamW (weight decay 1), budget 10^5 steps, seed 0."),
}
SHIFT = 8
NEIGHBOURS = 5
STRUCTURE_FACTOR = 5  # a translation rate above 5x chance counts as structure


def runs(scale: str) -> list[RunConfig]:
    common.check_scale(scale)
    if scale == "smoke":
        return [common.base_config("s5_xy", scale, train_fraction=0.3),
                common.base_config("x+y", scale, modulus=11)]
    changes = dict(steps=10_000) if scale == "laptop" else {}
    return [common.base_config("s5_xy", scale, train_fraction=0.6, **changes),
            common.base_config("x+y", scale, train_fraction=0.5, modulus=97, **changes)]


def _labels(cfg: RunConfig, n: int) -> np.ndarray:
    if cfg.operation.startswith("s5"):
        return s5_coset_labels(make_table(cfg.operation).operation.element_names)
    return residue_labels(n, SHIFT)


def neighbour_agreement(points: np.ndarray, labels: np.ndarray, k: int = NEIGHBOURS) -> float:
    """Fraction of each point's k nearest neighbours (in the plane) sharing its colour."""
    nearest = nearest_neighbours(points, k)
    return float((labels[nearest] == labels[:, None]).mean())


def chance_agreement(labels: np.ndarray) -> float:
    """The same fraction for a random layout: sum over colours of (n_c / n) * ((n_c - 1) / (n - 1))."""
    n = len(labels)
    counts = np.bincount(labels)
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


def result_table(table: Table) -> np.ndarray:
    """[n, n] array of a ∘ b (Figure 3's operations have full tables)."""
    n = table.n_elements
    out = np.full((n, n), -1, dtype=np.int64)
    out[table.x.numpy(), table.y.numpy()] = table.result.numpy()
    if (out < 0).any():
        raise ValueError(f"{table.operation.name} has no full table; Figure 3 needs every a ∘ b")
    return out


def translations(result) -> dict:
    """The translation measure of one panel: the paper's own (x -> x+8 for x+y; none named for
    S5, whose claim is the coset colouring) and the best over every element and side."""
    cfg = result.config
    _, points, _ = embed(result)
    operation_table = make_table(cfg.operation, cfg.modulus)
    table = result_table(operation_table)
    rates = translation_neighbour_rates(points, table, NEIGHBOURS)
    names = operation_table.operation.element_names
    side = "right" if rates["right"].max() >= rates["left"].max() else "left"
    g = int(np.argmax(rates[side]))
    s5 = cfg.operation.startswith("s5")
    if not s5:
        best = f"x+{names[g]}"  # addition commutes: left and right translations coincide
    else:
        best = f"x·{names[g]}" if side == "right" else f"{names[g]}·x"
    out = {"chance": float(rates["chance"]), "best": best, "best_rate": float(rates[side][g]),
           "best_map": table[:, g] if side == "right" else table[g, :],  # a -> its translate
           "paper_rate": None if s5 else float(rates["right"][SHIFT]), "cosets": None}  # fmt: skip
    if s5:
        # a and a∘g close for most a: the clusters should be the left cosets a<g> (right cosets
        # <g>a for g∘a). Colour by them and measure, as for the paper's H.
        generator = [parse_permutation(names[g])]
        labels = s5_coset_labels(names, side="left" if side == "right" else "right", generators=generator)
        out["cosets"] = {"name": f"x<{names[g]}>" if side == "right" else f"<{names[g]}>x",
                         "order": len(subgroup_closure(generator)),
                         "agreement": neighbour_agreement(points, labels), "chance": chance_agreement(labels)}
    return out


_EMBEDDINGS: dict = {}  # plot() and verdict() see the same t-SNE without computing it twice


def embed(result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    key = (str(result.run_dir), result.summary.get("steps_done"))
    if key not in _EMBEDDINGS:
        cfg, rows = output_rows(result.run_dir)
        points = tsne_2d(rows.numpy(), seed=0)
        _EMBEDDINGS[key] = (rows.numpy(), points, _labels(cfg, rows.shape[0]))
    return _EMBEDDINGS[key]


CSV_HEADER = ["panel", "operation", "element", "name", "label", "tsne_x", "tsne_y",
              "neighbour_agreement", "chance_agreement", "best_val_accuracy",
              "shift_8_neighbour_rate", "best_translation", "best_translation_rate",
              "translation_chance", "learned_cosets", "learned_coset_agreement",
              "learned_coset_chance"]  # fmt: skip


def plot(results, out_dir: Path, scale: str) -> list[Path]:
    apply_style()
    fig, axes = plt.subplots(1, 2, figsize=(12.0, 5.4))
    rows = []
    for panel, (ax, result) in enumerate(zip(axes, results)):
        cfg = result.config
        _, points, labels = embed(result)
        names = make_table(cfg.operation, cfg.modulus).operation.element_names
        agree, chance = neighbour_agreement(points, labels), chance_agreement(labels)
        best = result.summary["best_val_accuracy"]
        t = translations(result)
        c = t["cosets"]
        cosets = [None, None, None] if c is None else [c["name"], c["agreement"], c["chance"]]
        rows += [[panel, cfg.operation, i, names[i], int(labels[i]), float(points[i, 0]),
                  float(points[i, 1]), agree, chance, best, t["paper_rate"], t["best"], t["best_rate"],
                  t["chance"], *cosets] for i in range(len(points))]  # fmt: skip
        if not cfg.operation.startswith("s5"):
            for i, j in add_constant_pairs(len(points), SHIFT):
                ax.plot(points[[i, j], 0], points[[i, j], 1], color="0.7", lw=0.5, zorder=1)
        for i, j in enumerate(t["best_map"]):  # the learned translation, in red
            ax.plot(points[[i, j], 0], points[[i, j], 1], color="tab:red", lw=0.6, alpha=0.6, zorder=1)
        ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab20" if labels.max() < 20 else "viridis",
                   s=14, zorder=2)  # fmt: skip
        what = ("colour = left coset of <(0,3)(1,4), (1,2)(3,4)>" if cfg.operation.startswith("s5")
                else f"colour = x mod {SHIFT}, grey lines x -> x+{SHIFT}")
        ax.set_title(f"{common.op_label(cfg)}, {100 * cfg.train_fraction:.0f}% data "
                     f"(best val {common.fmt_pct(best)})\n{what}\n{NEIGHBOURS}-NN same colour "
                     f"{agree:.2f} (chance {chance:.2f})\nred lines: {_translation_text(t)}",
                     fontsize=8)  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
    common.add_caption(fig, common.caption(REDUCTIONS, scale, "t-SNE of the rows of W_U for the element tokens."))
    csv_path = common.write_csv(Path(out_dir) / f"{NAME}.csv", CSV_HEADER, rows)
    return [*common.save(fig, out_dir, NAME), csv_path]


def _translation_text(t: dict) -> str:
    paper = "" if t["paper_rate"] is None else f"; x+{SHIFT}: {t['paper_rate']:.2f}"
    return (f"a -> {t['best'].replace('x', 'a')}, a {NEIGHBOURS}-NN of a for {t['best_rate']:.2f} of points"
            f"{paper} (chance {t['chance']:.2f})")


def verdict(results) -> str:
    parts = []
    for result in results:
        cfg = result.config
        _, points, labels = embed(result)
        agree, chance = neighbour_agreement(points, labels), chance_agreement(labels)
        t = translations(result)
        colours = "the paper's colouring groups them" if agree > 2 * chance else "the paper's colouring does not group them"
        moves = (f"a translation maps points to near neighbours ({t['best']} is among the {NEIGHBOURS} "
                 f"nearest for {100 * t['best_rate']:.0f} % of points, chance {100 * t['chance']:.0f} %)"
                 if t["best_rate"] > STRUCTURE_FACTOR * t["chance"] else "no translation is local (no structure found)")
        paper = ("" if t["paper_rate"] is None else
                 f"; x -> x+{SHIFT} itself: {100 * t['paper_rate']:.0f} %")
        if t["cosets"] is not None:
            c = t["cosets"]
            paper += (f"; the cosets {c['name']} of that order-{c['order']} subgroup group the points: "
                      f"5-NN same coset {c['agreement']:.2f} vs chance {c['chance']:.2f}")
        parts.append(f"{common.op_label(cfg)} (best val {common.fmt_pct(result.summary['best_val_accuracy'])}): "
                     f"{moves}{paper}; {NEIGHBOURS}-NN colour agreement {agree:.2f} vs chance {chance:.2f}, "
                     f"{colours}")  # fmt: skip
    return "; ".join(parts) + "."
