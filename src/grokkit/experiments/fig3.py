"""Figure 3: t-SNE of the output layer's element rows, S5 (coset colours) and x+y (x -> x+8 lines).

The paper's structures are tested from the data: whether the S5 points cluster by the cosets of
H = ⟨(0,3)(1,4), (1,2)(3,4)⟩ or of one of its 5 other conjugates (left and right cosets: 12
colourings, the best reported with its chance level under shuffled elements), and whether
x -> x+8 is a local move for x+y. Next to them, the run's own best structure: the translation
a -> a∘g (or g∘a) that most often lands among a point's nearest neighbours.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from grokkit.analysis import (PAPER_S5_GENERATORS, add_constant_pairs, best_coset_colouring, chance_agreement,
                              cycle_notation, neighbour_agreement, parse_permutation,
                              residue_labels, s5_coset_labels, subgroup_closure, translation_neighbour_rates,
                              tsne_2d)  # fmt: skip
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
SIGNIFICANCE = 0.05  # the best conjugate's cosets hold when shuffled elements rarely score as well


def runs(scale: str) -> list[RunConfig]:
    common.check_scale(scale)
    if scale == "smoke":
        return [common.base_config("s5_xy", scale, train_fraction=0.3),
                common.base_config("x+y", scale, modulus=11)]
    changes = dict(steps=10_000) if scale == "laptop" else {}
    return [common.base_config("s5_xy", scale, train_fraction=0.6, **changes),
            common.base_config("x+y", scale, train_fraction=0.5, modulus=97, **changes)]


def paper_structure(result) -> dict:
    """The paper's structure tested on the run's layout. S5: the best of H's conjugates and sides
    (``best_coset_colouring``), "holds" when its shuffle p < SIGNIFICANCE; the colours are its
    cosets where it holds, H's left cosets where not. x+y: x -> x+8 among the 5 nearest
    neighbours, "holds" above STRUCTURE_FACTOR x chance; colours x mod 8."""
    cfg = result.config
    _, points = embed(result)
    if cfg.operation.startswith("s5"):
        names = make_table(cfg.operation).operation.element_names
        best = best_coset_colouring(points, names, PAPER_S5_GENERATORS, NEIGHBOURS)
        holds = best["p"] < SIGNIFICANCE
        gens = ", ".join(cycle_notation(g) for g in best["generators"])
        name = f"{'x' if best['side'] == 'left' else ''}<{gens}>{'x' if best['side'] == 'right' else ''}"
        return {**best, "holds": holds, "name": name,
                "colours": best["labels"] if holds else s5_coset_labels(names)}  # fmt: skip
    rates = translation_neighbour_rates(points, result_table(make_table(cfg.operation, cfg.modulus)), NEIGHBOURS)
    rate, chance = float(rates["right"][SHIFT]), float(rates["chance"])
    return {"name": f"x -> x+{SHIFT}", "agreement": rate, "chance": chance,
            "holds": rate > STRUCTURE_FACTOR * chance, "colours": residue_labels(len(points), SHIFT)}


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
    _, points = embed(result)
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
                         "agreement": neighbour_agreement(points, labels, NEIGHBOURS), "chance": chance_agreement(labels)}
    return out


_EMBEDDINGS: dict = {}  # plot() and verdict() see the same t-SNE without computing it twice


def embed(result) -> tuple[np.ndarray, np.ndarray]:
    """(output-layer rows, their t-SNE points) of a run."""
    key = (str(result.run_dir), result.summary.get("steps_done"))
    if key not in _EMBEDDINGS:
        _, rows = output_rows(result.run_dir)
        _EMBEDDINGS[key] = (rows.numpy(), tsne_2d(rows.numpy(), seed=0))
    return _EMBEDDINGS[key]


CSV_HEADER = ["panel", "operation", "element", "name", "label", "tsne_x", "tsne_y",
              "neighbour_agreement", "chance_agreement", "best_val_accuracy",
              "shift_8_neighbour_rate", "best_translation", "best_translation_rate",
              "translation_chance", "learned_cosets", "learned_coset_agreement",
              "learned_coset_chance", "paper_structure", "paper_structure_score", "paper_structure_chance",
              "paper_structure_best_chance_95", "paper_structure_p", "paper_structure_holds",
              "paper_subgroup_h_agreement"]  # fmt: skip


def plot(results, out_dir: Path, scale: str) -> list[Path]:
    apply_style()
    fig, axes = plt.subplots(1, 2, figsize=(12.0, 5.4))
    rows = []
    for panel, (ax, result) in enumerate(zip(axes, results)):
        cfg = result.config
        _, points = embed(result)
        paper = paper_structure(result)
        labels = paper["colours"]
        names = make_table(cfg.operation, cfg.modulus).operation.element_names
        agree, chance = neighbour_agreement(points, labels, NEIGHBOURS), chance_agreement(labels)
        best = result.summary["best_val_accuracy"]
        t = translations(result)
        c = t["cosets"]
        cosets = [None, None, None] if c is None else [c["name"], c["agreement"], c["chance"]]
        tested = [paper["name"], paper["agreement"], paper["chance"], paper.get("best_chance_95"), paper.get("p"),
                  paper["holds"], paper.get("paper_agreement")]  # fmt: skip
        rows += [[panel, cfg.operation, i, names[i], int(labels[i]), float(points[i, 0]),
                  float(points[i, 1]), agree, chance, best, t["paper_rate"], t["best"], t["best_rate"],
                  t["chance"], *cosets, *tested] for i in range(len(points))]  # fmt: skip
        if not cfg.operation.startswith("s5"):
            for i, j in add_constant_pairs(len(points), SHIFT):
                ax.plot(points[[i, j], 0], points[[i, j], 1], color="0.7", lw=0.5, zorder=1)
        for i, j in enumerate(t["best_map"]):  # the learned translation, in red
            ax.plot(points[[i, j], 0], points[[i, j], 1], color="tab:red", lw=0.6, alpha=0.6, zorder=1)
        ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab20" if labels.max() < 20 else "viridis",
                   s=14, zorder=2)  # fmt: skip
        what = _structure_text(paper, cfg.operation.startswith("s5"))
        ax.set_title(f"{common.op_label(cfg)}, {100 * cfg.train_fraction:.0f}% data "
                     f"(best val {common.fmt_pct(best)})\n{what}\n{NEIGHBOURS}-NN same colour "
                     f"{agree:.2f} (chance {chance:.2f})\nred lines: {_translation_text(t)}",
                     fontsize=8)  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
    common.add_caption(fig, common.caption(REDUCTIONS, scale, "t-SNE of the rows of W_U for the element tokens."))
    csv_path = common.write_csv(Path(out_dir) / f"{NAME}.csv", CSV_HEADER, rows)
    return [*common.save(fig, out_dir, NAME), csv_path]


def _structure_text(paper: dict, s5: bool) -> str:
    if not s5:
        return (f"colour = x mod {SHIFT}, grey lines x -> x+{SHIFT} (paper's move "
                f"{'holds' if paper['holds'] else 'does not hold'})")
    if paper["holds"]:
        return f"colour = cosets {paper['name']} (best of {paper['tested']}; p = {paper['p']:.3g})"
    return (f"colour = cosets x<(0,3)(1,4), (1,2)(3,4)>: no conjugate's cosets cluster "
            f"(best {paper['name']}, p = {paper['p']:.2g})")


def _translation_text(t: dict) -> str:
    paper = "" if t["paper_rate"] is None else f"; x+{SHIFT}: {t['paper_rate']:.2f}"
    return (f"a -> {t['best'].replace('x', 'a')}, a {NEIGHBOURS}-NN of a for {t['best_rate']:.2f} of points"
            f"{paper} (chance {t['chance']:.2f})")


def verdict(results) -> str:
    parts = []
    for result in results:
        cfg = result.config
        t = translations(result)
        paper = paper_structure(result)
        if cfg.operation.startswith("s5"):
            tested = (f"the cosets of the paper's subgroup or a conjugate {'do' if paper['holds'] else 'do not'} "
                      f"group the points (best of {paper['tested']}: {paper['name']}, 5-NN same coset "
                      f"{paper['agreement']:.2f} vs {paper['chance']:.2f} for one colouring and "
                      f"{paper['best_chance_95']:.2f} for the best of {paper['tested']} on shuffled elements "
                      f"(95th percentile), p = {paper['p']:.2g}; the paper's H itself {paper['paper_agreement']:.2f})")
        else:
            tested = (f"x -> x+{SHIFT} {'is' if paper['holds'] else 'is not'} a local move (among the "
                      f"{NEIGHBOURS} nearest for {100 * paper['agreement']:.0f} % of points, chance "
                      f"{100 * paper['chance']:.0f} %)")
        own = t["best_rate"] > STRUCTURE_FACTOR * t["chance"]
        moves = (f"its own best structure is {t['best']} (among the {NEIGHBOURS} nearest for "
                 f"{100 * t['best_rate']:.0f} % of points, chance {100 * t['chance']:.0f} %)"
                 if own else "no translation is local (no structure of its own)")
        if own and t["cosets"] is not None:
            c = t["cosets"]
            moves += (f", whose cosets {c['name']} (order {c['order']}) give 5-NN same coset "
                      f"{c['agreement']:.2f} vs chance {c['chance']:.2f}")
        parts.append(f"{common.op_label(cfg)} (best val {common.fmt_pct(result.summary['best_val_accuracy'])}): "
                     f"{tested}; {moves}")
    return "; ".join(parts) + "."
