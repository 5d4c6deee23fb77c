"""Figure 3: t-SNE of the output layer's element rows, S5 (coset colours) and x+y (x -> x+8 lines).

The paper's structures are tested from the data, each with a shuffle null (the layout is kept and
the elements are reassigned to its points at random, 1,000 times; p = (1 + #shuffles scoring at
least as well) / 1,001):

* S5: whether the points cluster by the cosets of H = ⟨(0,3)(1,4), (1,2)(3,4)⟩ or of one of its 5
  other conjugates (left and right cosets: 12 colourings; the statistic is the best colouring's
  5-NN same-coset rate, its null the best of the 12 on shuffled elements);
* x+y: whether x -> x+8 is a local move (the statistic is the fraction of points whose x+8 is
  among their 5 nearest neighbours);
* both: the run's own best translation a -> a∘g or g∘a (the statistic is the best rate over
  every g and side, its null the best over the same search on shuffled elements).

Every task is trained with several seeds and, by default, with both architectures (``arch``:
grokkit's model and the authors' released network and tokens, side by side). Each test runs twice:
on the t-SNE projection the figure draws, and on the output layer's rows themselves (their own
space, Euclidean neighbours), so that a structure is not an artefact of the projection.

The claims (``claims``), one Holm family:

* ``<arch>.<task>.<space>``: the paper's structure, decided by the seeds' combined shuffle p
  (``combined_permutation_p``: the mean statistic over seeds against the mean of one shuffle per
  seed); a rejection holds the paper's claim. Its interval is a t interval of the mean statistic
  over seeds; the paper gives a picture, not an effect size, so no power is stated;
* ``arch_difference.<task>.<space>``: do the architectures differ in that statistic? A
  permutation test over seeds (the seeds' statistics reassigned to the architectures, difference
  of means). It is what may explain a disagreement (``disagreement``).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grokkit.analysis import statistics
from grokkit.analysis.embeddings import (
    PAPER_S5_GENERATORS,
    add_constant_pairs,
    best_coset_colouring,
    best_translation_test,
    chance_agreement,
    combined_permutation_p,
    cycle_notation,
    neighbour_agreement,
    orbit_labels,
    parse_permutation,
    residue_labels,
    s5_coset_labels,
    translation_test,
    tsne_2d,
)
from grokkit.analysis.weights import load_run_weights
from grokkit.config import RunConfig
from grokkit.data import Table, make_table
from grokkit.errors import InputError
from grokkit.experiments import claims as claim_records, common
from grokkit.plot_style import CATEGORY_COLORS

NAME = "fig3"
DESCRIPTION = (
    "t-SNE of output-layer rows: S5 x·y (coset colours) and x+y (x -> x+8 lines), both "
    "architectures"
)
CLAIM = (
    "The output layer's rows show the operation's structure: S5 elements cluster by cosets "
    "of a subgroup, and x+y mod 97 elements lie along lines x -> x+8."
)
OPTIONS: tuple[str, ...] = ("arch", "seeds")
ARCH_CHOICES = {
    "both": ("grokkit", "openai-grok"),
    "grokkit": ("grokkit",),
    "openai-grok": ("openai-grok",),
}
DEFAULT_ARCH = "both"
SEEDS = {"smoke": 2, "laptop": 10, "paper": 10}
SPACES = ("tsne", "rows")  # the t-SNE projection and the output layer's rows themselves
SPACE_NAMES = {"tsne": "t-SNE points", "rows": "the rows themselves"}
LAPTOP_STEPS = 8_000
# At laptop scale a run stops once it has held 99 % validation for this many steps: the
# structure is read from weights trained well past grokking, and 10 seeds per architecture fit
# the laptop budget (x+y groks at ~3,000 steps, S5 at 60 % at ~5,000).
LAPTOP_HOLD = 1_000
REDUCTIONS = {
    "smoke": (
        "s5_xy and x+y mod 11, 1 layer of width 16, 20 steps, 2 seeds, both architectures: code "
        "path only (no structure expected)."
    ),
    "laptop": (
        f"s5_xy at 60 % data and x+y mod 97 at 50 % data, AdamW (weight decay 1), budget "
        f"{LAPTOP_STEPS:,} steps instead of 10^5 (the paper does not give its runs' budgets), "
        f"each run stopping once it has held 99 % validation for {LAPTOP_HOLD:,} steps, "
        f"{SEEDS['laptop']} seeds (--seeds), grokkit's model and the authors' "
        "released network (arch openai-grok). Paper model size."
    ),
    "paper": (
        "s5_xy at 60 % data and x+y mod 97 at 50 % data (the paper gives neither: our choice), "
        f"AdamW (weight decay 1), budget 10^5 steps, {SEEDS['paper']} seeds, both architectures."
    ),
}
SHIFT = 8
NEIGHBOURS = 5
SHUFFLES = 1000
# Display only (which colouring the panel draws, and whether the learned cosets are listed): the
# best colouring when the seeds' combined shuffle p is below this. The verdicts are the claims'.
SIGNIFICANCE = 0.01
TASKS = (("s5_xy", {"train_fraction": 0.6}), ("x+y", {"train_fraction": 0.5, "modulus": 97}))


def archs_of(arch: str | None) -> tuple[str, ...]:
    if arch is None:
        arch = DEFAULT_ARCH
    if arch not in ARCH_CHOICES:
        raise InputError(f"fig3 arch must be one of {', '.join(ARCH_CHOICES)}, got {arch!r}")
    return ARCH_CHOICES[arch]


def runs(scale: str, arch: str | None = None, seeds: int | None = None) -> list[RunConfig]:
    """Every (architecture, task, seed), in that order."""
    common.check_scale(scale)
    n_seeds = common.check_seeds(seeds, SEEDS[scale], minimum=2)
    tasks = TASKS
    if scale == "smoke":
        tasks = (("s5_xy", {"train_fraction": 0.3}), ("x+y", {"modulus": 11}))
    changes = {"steps": LAPTOP_STEPS, "stop_after_val_99": LAPTOP_HOLD} if scale == "laptop" else {}
    configs = []
    for a in archs_of(arch):
        for operation, task in tasks:
            base = common.base_config(operation, scale, **task, **changes)
            if a != "grokkit":
                base = base.with_changes(arch=a)
            configs += [base.with_changes(seed=seed) for seed in range(n_seeds)]
    return configs


# ---------------------------------------------------------------- one run


def result_table(table: Table) -> np.ndarray:
    """[n, n] array of a ∘ b (Figure 3's operations have full tables)."""
    n = table.n_elements
    out = np.full((n, n), -1, dtype=np.int64)
    out[table.x.numpy(), table.y.numpy()] = table.result.numpy()
    if (out < 0).any():
        raise ValueError(f"{table.operation.name} has no full table; Figure 3 needs every a ∘ b")
    return out


def run_table(config: RunConfig) -> Table:
    """The run's own table: under openai-grok S5 products follow the authors' convention."""
    return make_table(config.operation, config.modulus, config.arch)


def element_rows(run_dir: Path) -> np.ndarray:
    """[n_elements, d_model]: the output layer's row of every element token, read at the
    vocabulary positions the model config gives the elements (not 0..n-1 under openai-grok)."""
    _, model_config, weights = load_run_weights(run_dir)
    return weights["W_U"][:, model_config.element_tokens()].T.contiguous().numpy()


def _paper_cosets(points: np.ndarray, names, arch: str, shuffle_seed: int) -> dict:
    """The best of the 12 coset colourings (H's and its conjugates', both sides) of the points."""
    best = best_coset_colouring(
        points, names, PAPER_S5_GENERATORS, NEIGHBOURS, SHUFFLES, shuffle_seed
    )
    gens = ", ".join(cycle_notation(g) for g in best["generators"])
    h_index = best["sides"].index(_run_side("left", arch))  # H's left cosets in the run's product
    return {
        "name": _coset_name(gens, _run_side(best["side"], arch)),
        "stat": best["agreement"],
        "chance": best["chance"],
        "null": best["null"],
        "p": best["p"],
        "best_chance_95": best["best_chance_95"],
        "tested": best["tested"],
        "paper_h_agreement": float(best["scores"][h_index]),
        "labels": best["labels"],
        "h_labels": s5_coset_labels(names, side=_run_side("left", arch)),
    }


def _own_translation(points: np.ndarray, table, names, s5: bool, shuffle_seed: int) -> dict:
    """The run's own best translation a -> a∘g (or g∘a) and, for S5, the cosets a<g> it moves in."""
    own = best_translation_test(points, table, NEIGHBOURS, SHUFFLES, shuffle_seed + 10_000)
    g, side = own["g"], own["side"]
    if not s5:
        own["name"] = f"x+{names[g]}"  # addition commutes: left and right translations coincide
        return own
    cycles = cycle_notation(parse_permutation(names[g]))
    own["name"] = f"x·{cycles}" if side == "right" else f"{cycles}·x"
    # a and a∘g close for most a: the clusters should be the orbits of a -> a∘g, the cosets a<g>.
    labels = orbit_labels(own["map"])
    own["cosets"] = {
        "name": f"x<{cycles}>" if side == "right" else f"<{cycles}>x",
        "order": int(np.bincount(labels)[0]),
        "labels": labels,
        "agreement": neighbour_agreement(points, labels, NEIGHBOURS),
        "chance": chance_agreement(labels),
    }
    return own


def measure_space(result, shuffle_seed: int) -> dict:
    """The paper's structure and the run's own best translation tested on the output layer's
    rows themselves (``SPACES``' "rows"): {"paper": {"stat", "null", "p"}, "own": {...}}."""
    cfg = result.config
    rows = element_rows(result.run_dir)
    operation_table = run_table(cfg)
    table = result_table(operation_table)
    if cfg.operation.startswith("s5"):
        names = operation_table.operation.element_names
        best = best_coset_colouring(
            rows, names, PAPER_S5_GENERATORS, NEIGHBOURS, SHUFFLES, shuffle_seed
        )
        paper = {"stat": best["agreement"], "null": best["null"], "p": best["p"]}
    else:
        shift = translation_test(
            rows, table, SHIFT % len(rows), "right", NEIGHBOURS, SHUFFLES, shuffle_seed
        )
        paper = {"stat": shift["rate"], "null": shift["null"], "p": shift["p"]}
    own = best_translation_test(rows, table, NEIGHBOURS, SHUFFLES, shuffle_seed + 10_000)
    return {"paper": paper, "own": {"stat": own["rate"], "null": own["null"], "p": own["p"]}}


def embed(result) -> tuple[np.ndarray, np.ndarray]:
    """(output-layer rows, their t-SNE points) of a run."""
    rows = element_rows(result.run_dir)
    return rows, tsne_2d(rows, seed=0)


def _run_side(side: str, arch: str) -> str:
    """Left/right as the run's product writes it. analysis.embeddings composes x(y(i)); the
    authors' product (openai-grok) is the other order, which swaps the sides of every coset."""
    return side if arch == "grokkit" else {"left": "right", "right": "left"}[side]


def _coset_name(generators: str, side: str) -> str:
    return f"x<{generators}>" if side == "left" else f"<{generators}>x"


def analyse(result, shuffle_seed: int = 0) -> dict:
    """Every test of one run: the paper's structure ("paper") and the run's own best translation
    ("own"), each with its statistic, shuffle null and p; the t-SNE points and their colours; the
    same tests on the rows themselves ("rows")."""
    cfg = result.config
    _, points = embed(result)
    operation_table = run_table(cfg)
    table = result_table(operation_table)
    names = operation_table.operation.element_names
    s5 = cfg.operation.startswith("s5")
    if s5:
        paper = _paper_cosets(points, names, cfg.arch, shuffle_seed)
    else:
        shift = translation_test(
            points, table, SHIFT % len(points), "right", NEIGHBOURS, SHUFFLES, shuffle_seed
        )
        paper = {
            "name": f"x -> x+{SHIFT}",
            "stat": shift["rate"],
            "chance": shift["chance"],
            "null": shift["null"],
            "p": shift["p"],
            "best_chance_95": float(np.percentile(shift["null"], 95)),
            "labels": residue_labels(len(points), SHIFT),
        }
    own = _own_translation(points, table, names, s5, shuffle_seed)
    return {
        "points": points,
        "names": names,
        "s5": s5,
        "paper": paper,
        "own": own,
        "rows": measure_space(result, shuffle_seed),
    }


# ---------------------------------------------------------------- runs pooled over seeds


def groups(results) -> dict[tuple[str, str], list]:
    """Results by (architecture, task), seeds in order."""
    return common.group_by(results, lambda r: (r.config.arch, common.op_label(r.config)))


def analyses_of(members) -> list[dict]:
    """``analyse`` of each seed of one (architecture, task), its shuffles seeded by its place."""
    return [analyse(r, shuffle_seed=i) for i, r in enumerate(members)]


def group_stats(members, analyses: list[dict] | None = None) -> dict:
    """The seeds of one (architecture, task), tested together: per seed the statistic and p of the
    paper's structure and of the run's own best translation, and the seeds' combined p.
    ``analyses``: the members' ``analyses_of``, computed here when not given."""
    if analyses is None:
        analyses = analyses_of(members)
    cfg = members[0].config
    out = {
        "label": common.op_label(cfg),
        "arch": cfg.arch,
        "s5": analyses[0]["s5"],
        "seeds": [r.config.seed for r in members],
        "best_vals": [r.summary["best_val_accuracy"] for r in members],
    }
    for part in ("paper", "own"):
        tests = [a[part] for a in analyses]
        stats = [t["stat"] if part == "paper" else t["rate"] for t in tests]
        p = combined_permutation_p(stats, [t["null"] for t in tests])
        out[part] = {
            "names": [t["name"] for t in tests],
            "stats": stats,
            "ps": [t["p"] for t in tests],
            "chance": tests[0]["chance"],
            "p": p,
            "holds": p < SIGNIFICANCE,
            "null_mean": float(np.mean([t["null"].mean() for t in tests])),
        }
    for part in ("paper", "own"):  # the same tests on the rows themselves
        tests = [a["rows"][part] for a in analyses]
        stats = [t["stat"] for t in tests]
        p = combined_permutation_p(stats, [t["null"] for t in tests])
        out[f"{part}_rows"] = {"stats": stats, "ps": [t["p"] for t in tests], "p": p}
    if out["s5"]:
        out["paper"]["paper_h"] = [t["paper"]["paper_h_agreement"] for t in analyses]
        out["own"]["cosets"] = [
            {k: v for k, v in a["own"]["cosets"].items() if k != "labels"} for a in analyses
        ]
    return out


@dataclass(frozen=True)
class Panel:
    """One (architecture, task): its seeds' results, their analyses and the pooled tests."""

    members: list
    analyses: list[dict]  # analyses_of(members)
    stats: dict  # group_stats(members, analyses)


@dataclass(frozen=True)
class Panels:
    """Every (architecture, task) in the order the results first show it."""

    groups: dict[tuple[str, str], Panel]
    scale: str


def measure(results, scale: str, arch: str | None = None) -> Panels:
    """The t-SNE and every shuffle test of every run, once. ``arch`` is the option ``runs`` took;
    the architectures measured are those of ``results``."""
    panels = {}
    for key, members in groups(results).items():
        analyses = analyses_of(members)
        panels[key] = Panel(members, analyses, group_stats(members, analyses))
    return Panels(panels, scale)


def _pcts(values) -> str:
    return "/".join(f"{100 * v:.0f}" for v in values) + " %"


def _ps(values) -> str:
    alone = sum(p < SIGNIFICANCE for p in values)
    return (
        "/".join(f"{p:.2g}" for p in values)
        + f" ({alone} of {len(values)} below {SIGNIFICANCE:g} alone)"
    )


def _rule(p: float) -> str:
    return f"combined p = {p:.2g}"


def paper_text(g: dict) -> str:
    """One clause on the paper's structure for one (architecture, task), from ``group_stats``."""
    t, n = g["paper"], len(g["seeds"])
    if g["s5"]:
        return (
            "cosets of the paper's subgroup or a conjugate: (best of 12 colourings per "
            f"seed: {', '.join(dict.fromkeys(t['names']))}; 5-NN same coset {_pcts(t['stats'])} "
            f"over {n} seed(s) against {100 * t['chance']:.0f} % for one colouring and "
            f"{100 * t['null_mean']:.0f} % for the best of 12 on shuffled elements; p per seed "
            f"{_ps(t['ps'])}, {_rule(t['p'])}; the paper's H itself {_pcts(t['paper_h'])})"
        )
    return (
        f"x -> x+{SHIFT}: (among the {NEIGHBOURS} "
        f"nearest for {_pcts(t['stats'])} of points over {n} seed(s), chance "
        f"{100 * t['chance']:.0f} %; p per seed {_ps(t['ps'])}, {_rule(t['p'])})"
    )


def own_text(g: dict) -> str:
    """One clause on the runs' own best translations, from ``group_stats``."""
    t = g["own"]
    text = (
        f"each run's own best translation ({', '.join(t['names'])}: among the {NEIGHBOURS} "
        f"nearest for {_pcts(t['stats'])} of points; the best of every translation on shuffled "
        f"elements {100 * t['null_mean']:.0f} %; p per seed {_ps(t['ps'])}, {_rule(t['p'])})"
    )
    if t["holds"] and g["s5"]:
        text += ", and its cosets " + ", ".join(
            f"{c['name']} (order {c['order']}) give 5-NN same coset {c['agreement']:.2f} vs "
            f"chance {c['chance']:.2f}"
            for c in t["cosets"]
        )
    return text


def group_numbers(g: dict) -> str:
    vals = "/".join(common.fmt_pct(v) for v in g["best_vals"])
    rows = g["paper_rows"]
    return (
        f"{g['label']}, {g['arch']} (best val {vals}): on the t-SNE points, {paper_text(g)}; "
        f"{own_text(g)}; on the rows themselves, the paper's structure scores "
        f"{_pcts(rows['stats'])} (combined p = {rows['p']:.2g})"
    )


def describe(panels: Panels) -> str:
    rule = (
        f"Shuffle tests (null: the layout does not know which point is which element; {SHUFFLES:,} "
        "shuffles per seed; seeds pooled by their mean statistic). "
    )
    return rule + "; ".join(group_numbers(p.stats) for p in panels.groups.values()) + "."


def _space(g: dict, space: str) -> dict:
    return g["paper"] if space == "tsne" else g["paper_rows"]


def _structure(task: str) -> str:
    return "the cosets of H or a conjugate" if task.startswith("s5") else f"x -> x+{SHIFT}"


def claims(panels: Panels) -> list[claim_records.Claim]:
    """The paper's structure per (architecture, task, space), and the architectures' difference
    per (task, space) (the module's docstring)."""
    out = []
    for (arch, task), panel in panels.groups.items():
        g = panel.stats
        for space in SPACES:
            t = _space(g, space)
            out.append(
                claim_records.Claim(
                    id=f"{arch}.{task}.{space}",
                    claim=(
                        f"The output layer's rows show {_structure(task)} ({arch}, "
                        f"{len(g['seeds'])} seeds, {SPACE_NAMES[space]})."
                    ),
                    paper_value="visible in the paper's t-SNE (Figure 3)",
                    measured=float(np.mean(t["stats"])),
                    interval=statistics.mean_interval(t["stats"]),
                    test=f"shuffle test, seeds pooled ({SHUFFLES:,} shuffles per seed)",
                    null="the layout does not know which point is which element",
                    p_value=t["p"],
                    power=None,
                )
            )
    return out + _arch_claims(panels)


def planned_power(scale: str, arch: str | None = None, seeds: int | None = None) -> list[dict]:
    """The claims --plan lists: none has a power, since the paper gives its structures as
    pictures, not as effect sizes to power a test against."""
    archs = archs_of(arch)
    n = common.check_seeds(seeds, SEEDS[scale], minimum=2)
    effect = f"no effect size in the paper (a picture); {n} seeds per architecture"
    tasks = [common.op_label(common.base_config(op, scale, **t)) for op, t in TASKS]
    rows = [
        {"id": f"{a}.{task}.{space}", "power": None, "effect": effect}
        for a in archs
        for task in tasks
        for space in SPACES
    ]
    if len(archs) == 2:
        rows += [
            {"id": f"arch_difference.{task}.{space}", "power": None, "effect": effect}
            for task in tasks
            for space in SPACES
        ]
    return rows


def _arch_claims(panels: Panels) -> list[claim_records.Claim]:
    from scipy import stats

    out = []
    tasks = dict.fromkeys(task for _, task in panels.groups)
    for task in tasks:
        archs = [a for a, t in panels.groups if t == task]
        if len(archs) != 2:
            continue
        for space in SPACES:
            a, b = (_space(panels.groups[(x, task)].stats, space)["stats"] for x in archs)
            if len(a) < 2 or len(b) < 2:
                p, diff = float("nan"), float(np.mean(a) - np.mean(b))
            else:
                test = stats.permutation_test(
                    (np.asarray(a), np.asarray(b)),
                    lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                    vectorized=True,
                    n_resamples=9999,
                    random_state=0,
                )
                p, diff = float(test.pvalue), float(test.statistic)
            out.append(
                claim_records.Claim(
                    id=f"arch_difference.{task}.{space}",
                    claim=(
                        f"The architectures ({archs[0]} minus {archs[1]}) differ in how strongly "
                        f"the rows show {_structure(task)} ({space}): the hypothesis that would "
                        "explain a disagreement between them."
                    ),
                    paper_value="not in the paper (one architecture)",
                    measured=diff,
                    interval=None,
                    test="permutation test over seeds (difference of mean statistics)",
                    null="the two architectures' per-seed statistics are exchangeable",
                    p_value=p,
                    power=None,
                    why="" if not np.isnan(p) else "fewer than 2 seeds per architecture",
                )
            )
    return out


def disagreement(panels: Panels) -> str:
    """Where the architectures' verdicts differ, and whether the test between them (not only the
    two verdicts) says the architecture explains it, read from the claim records."""
    records = {r["id"]: r for r in claim_records.decide(claims(panels), panels.scale)}
    parts = []
    for task in dict.fromkeys(task for _, task in panels.groups):
        for space in SPACES:
            verdicts = {
                a: records[f"{a}.{t}.{space}"]["verdict"] for a, t in panels.groups if t == task
            }
            held = [a for a, v in verdicts.items() if v == "holds"]
            where = f"{_structure(task)} ({space})"
            if len(held) == len(verdicts):
                parts.append(f"{where}: holds with {', '.join(held)}; no disagreement")
                continue
            diff = records.get(f"arch_difference.{task}.{space}")
            listing = ", ".join(f"{a} {v}" for a, v in verdicts.items())
            if diff is not None and diff["verdict"] != "undetermined":
                parts.append(
                    f"{where}: {listing}; the architectures differ "
                    f"({claim_records.format_p(diff['p_value'])}): the architecture explains it"
                )
            else:
                parts.append(
                    f"{where}: {listing}; the test between the architectures does not decide "
                    "whether the architecture explains it"
                )
    return "; ".join(parts) + "."


# ---------------------------------------------------------------- figure


CSV_HEADER = [
    "panel",
    "arch",
    "seed",
    "operation",
    "element",
    "name",
    "label",
    "tsne_x",
    "tsne_y",
    "neighbour_agreement",
    "chance_agreement",
    "best_val_accuracy",
    "shift_8_neighbour_rate",
    "shift_8_p",
    "best_translation",
    "best_translation_rate",
    "best_translation_p",
    "best_translation_combined_p",
    "translation_chance",
    "learned_cosets",
    "learned_coset_agreement",
    "learned_coset_chance",
    "paper_structure",
    "paper_structure_score",
    "paper_structure_chance",
    "paper_structure_best_chance_95",
    "paper_structure_p",
    "paper_structure_combined_p",
    "paper_structure_holds",
    "paper_subgroup_h_agreement",
]


def _wrap(text: str, width: int = 78) -> str:
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def plot(panels: Panels, out_dir: Path) -> list[Path]:
    # Imported here: `reproduce --list` and `--plan` import every figure module and must not wait
    # for matplotlib.
    import matplotlib.pyplot as plt

    from grokkit.plots import apply_style

    apply_style()
    archs = list(dict.fromkeys(a for a, _ in panels.groups))
    tasks = list(dict.fromkeys(t for _, t in panels.groups))
    fig, axes = plt.subplots(
        len(archs),
        len(tasks),
        figsize=(7.6 * len(tasks), 6.8 * len(archs)),
        squeeze=False,
        layout="constrained",
    )
    rows = []
    records = {r["id"]: r for r in claim_records.decide(claims(panels), panels.scale)}
    for index, ((a, task), panel) in enumerate(panels.groups.items()):
        ax = axes[archs.index(a), tasks.index(task)]
        g = {**panel.stats, "verdict": records[f"{a}.{task}.tsne"]["verdict"]}
        for result, analysis in zip(panel.members, panel.analyses):
            rows += _csv_rows(index, result, analysis, g)
        _draw(ax, panel.members[0], panel.analyses[0], g)
    common.add_caption(
        fig,
        common.caption(
            REDUCTIONS,
            panels.scale,
            "t-SNE of the rows of W_U for the element tokens; "
            "each panel shows its first seed, the text under it every seed.",
        ),
    )
    csv_path = common.write_csv(Path(out_dir) / f"{NAME}.csv", CSV_HEADER, rows)
    return [*common.save(fig, out_dir, NAME), csv_path]


def _colours(analysis: dict, g: dict) -> np.ndarray:
    paper = analysis["paper"]
    if analysis["s5"] and not g["paper"]["holds"]:
        return paper["h_labels"]  # no colouring groups the points: show the paper's H
    return paper["labels"]


def _draw(ax, result, analysis: dict, g: dict) -> None:
    from matplotlib.lines import Line2D

    cfg = result.config
    points, own = analysis["points"], analysis["own"]
    labels = _colours(analysis, g)
    lines = []
    if not analysis["s5"]:
        for i, j in add_constant_pairs(len(points), SHIFT):
            ax.plot(points[[i, j], 0], points[[i, j], 1], color="0.7", lw=0.5, zorder=1)
        lines.append(Line2D([], [], color="0.7", lw=1.0, label=f"x -> x+{SHIFT} (the paper's)"))
    for i, j in enumerate(own["map"]):  # the learned translation, in red
        ax.plot(points[[i, j], 0], points[[i, j], 1], color="tab:red", lw=0.6, alpha=0.6, zorder=1)
    lines.append(
        Line2D(
            [], [], color="tab:red", lw=1.0, label=f"a -> {own['name'].replace('x', 'a')} (best)"
        )
    )
    values = list(np.unique(labels))
    if len(values) <= len(CATEGORY_COLORS):  # one colour (and, beyond 9, a marker) per class
        for k, value in enumerate(values):
            mine = labels == value
            ax.scatter(
                points[mine, 0],
                points[mine, 1],
                s=16 if k < 9 else 20,
                zorder=2,
                color=CATEGORY_COLORS[k],
                marker="o" if k < 9 else "s",
                edgecolors="white",
                linewidths=0.3,
                label=_class_name(analysis, value),
            )
    else:
        ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="viridis", s=14, zorder=2)
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(
        handles=[*handles, *lines],
        title=_wrap(_colour_title(analysis, g), 28),
        fontsize=7,
        title_fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        frameon=False,
        handletextpad=0.3,
        labelspacing=0.35,
    )
    n = len(g["seeds"])
    ax.set_title(
        f"{common.op_label(cfg)}, {100 * cfg.train_fraction:.0f}% data, arch {cfg.arch}\n"
        f"seed {cfg.seed} shown (of {n}), best validation accuracy "
        f"{common.fmt_pct(result.summary['best_val_accuracy'])}",
        fontsize=10,
    )
    ax.set_xlabel(_wrap(_panel_text(analysis, g), 92), fontsize=7.5, loc="left")
    ax.set_xticks([])
    ax.set_yticks([])


def _colour_title(analysis: dict, g: dict) -> str:
    if not analysis["s5"]:
        return f"colour: x mod {SHIFT}"
    if g["paper"]["holds"]:
        return f"colour: cosets {g['paper']['names'][0]}"
    return "colour: cosets of the paper's H"


def _class_name(analysis: dict, value) -> str:
    return f"x ≡ {int(value)}" if not analysis["s5"] else f"coset {int(value) + 1}"


def _panel_text(analysis: dict, g: dict) -> str:
    paper, own, n = g["paper"], g["own"], len(g["seeds"])
    verdict_word = f"{g['verdict']} (Holm-corrected claim)"
    if analysis["s5"]:
        colour = (
            f"colour: cosets {paper['names'][0]} (the best of 12 colourings)"
            if paper["holds"]
            else "colour: cosets of the paper's H (no conjugate's cosets group the points)"
        )
        first = (
            f"{colour}. Cosets of H or a conjugate: {verdict_word}. Best 5-NN same coset "
            f"{_pcts(paper['stats'])} (one colouring: {100 * paper['chance']:.0f} %, best of 12 "
            f"shuffled: {100 * paper['null_mean']:.0f} %), p {_ps(paper['ps'])}, "
            f"{_rule(paper['p'])}."
        )
    else:
        first = (
            f"colour: x mod {SHIFT}; grey: x -> x+{SHIFT}: {verdict_word}. 5-NN for "
            f"{_pcts(paper['stats'])} of points (chance {100 * paper['chance']:.0f} %), "
            f"p {_ps(paper['ps'])}, {_rule(paper['p'])}."
        )
    second = (
        f"red: a -> {own['names'][0].replace('x', 'a')}, the run's best translation ({n} seed(s): "
        f"{', '.join(own['names'])}; 5-NN {_pcts(own['stats'])}, best of all on shuffled elements "
        f"{100 * own['null_mean']:.0f} %), {_rule(own['p'])}."
    )
    return f"{first}\n{second}"


def _csv_rows(panel: int, result, analysis: dict, g: dict) -> list[list]:
    cfg = result.config
    points, paper, own = analysis["points"], analysis["paper"], analysis["own"]
    labels = _colours(analysis, g)
    agree, chance = neighbour_agreement(points, labels, NEIGHBOURS), chance_agreement(labels)
    c = own.get("cosets")
    cosets = [None, None, None] if c is None else [c["name"], c["agreement"], c["chance"]]
    shift = [None, None] if analysis["s5"] else [paper["stat"], paper["p"]]
    tested = [
        paper["name"],
        paper["stat"],
        paper["chance"],
        paper["best_chance_95"],
        paper["p"],
        g["paper"]["p"],
        g["verdict"] == "holds",
        paper.get("paper_h_agreement"),
    ]
    best = result.summary["best_val_accuracy"]
    return [
        [
            panel,
            cfg.arch,
            cfg.seed,
            cfg.operation,
            i,
            analysis["names"][i],
            int(labels[i]),
            float(points[i, 0]),
            float(points[i, 1]),
            agree,
            chance,
            best,
            *shift,
            own["name"],
            own["rate"],
            own["p"],
            g["own"]["p"],
            own["chance"],
            *cosets,
            *tested,
        ]
        for i in range(len(points))
    ]
