"""Checkpoint contents and stored settings, as a fault corpus (issue 24, parts 4 and 6).

Every field of a checkpoint damaged in turn (missing, wrong type, wrong shape, out of range,
non-finite): with a good previous.pt the resume falls back to it, says so in one warning and
ends exactly where an uninterrupted run does; with both damaged it is one line on stderr, exit
2, and every file byte-identical after. Then settings of the wrong type or not finite (in
config.json, on the command line, from Python), summary.json with missing or wrongly typed
keys, and a config.json edited to another model shape under export and ``Run.model()``.

Four tiny runs are trained once per module (plain; Grokfast-EMA with ⊥Grad and dropout;
Grokfast-MA with decay towards the initial weights; Muon with the weight norm fixed), so each case
costs a load or ten steps.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from cli_harness import TINY, assert_one_line, run_cli, snapshot

from grokkit import checkpoint_check, runs
from grokkit.cli import main
from grokkit.config import RunConfig
from grokkit.errors import ConfigError
from grokkit.optim import OptimizerConfig

VARIANTS = {
    "plain": [],
    "ema": ["--grad-filter", "ema", "--orthogonal-grad", "--dropout", "0.1"],  # noise drawn
    "ma": ["--grad-filter", "ma", "--grad-filter-window", "7", "--decay-target", "init"],
    "muon": ["--muon", "--fixed-norm"],
}
N_TRAIN = 60  # round(0.5 * 121) equations of x+y mod 11
LATEST, PREVIOUS = runs.CHECKPOINT, runs.PREVIOUS_CHECKPOINT


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """Each variant trained to 20 steps (checkpoints at 10 and 20, so previous.pt exists)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ckpt")
    for name, flags in VARIANTS.items():
        assert main(["train", *TINY, *flags, "--steps", "20", "--out", str(root / name)]) == 0
    return {name: root / name for name in VARIANTS}


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


# ---------------------------------------------------------------- the damage corpus

# name -> (variant, damage(state) in place, keyword of the one line)
DAMAGES: dict[str, tuple] = {}


def _case(name, keyword, fn, variant="plain") -> None:
    DAMAGES[name] = (variant, fn, keyword)


def _pop(*keys):
    def fn(s):
        for k in keys[:-1]:
            s = s[k]
        del s[keys[-1]]

    return fn


def _put(*keys_and_value):
    *keys, value = keys_and_value

    def fn(s):
        for k in keys[:-1]:
            s = s[k]
        s[keys[-1]] = value(s[keys[-1]]) if callable(value) else value

    return fn


def _nan_at(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[t.numel() // 2] = float("nan")
    return t


def _inf_at(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = float("inf")
    return t


# top level and the step
_case("permutation missing", "'permutation' is missing", _pop("permutation"))
_case("noise generator missing", "'noise_generator' is missing", _pop("noise_generator"))
_case("unknown top-level key", "unknown key 'extra'", _put("extra", 1))
_case("step negative", "negative step", _put("step", -3))
_case("step a float", "'step' should be a int", _put("step", lambda v: float(v)))
_case("step a bool", "'step' should be a int", _put("step", True))
_case("step beyond the budget", "beyond the run's budget", _put("step", 21))
_case("step behind the optimizer", "'step_count'", _put("step", lambda v: v - 1))
_case("config steps a float", "steps has the wrong type", _put("config", "steps", 1e18))
_case("config n_layers a bool", "n_layers has the wrong type", _put("config", "n_layers", True))
_case(
    "config lr infinite",
    "learning rate must be a finite number",
    _put("config", "optimizer", "lr", math.inf),
)
# generators
_case("batch generator of 3 bytes", "5056 bytes", _put("batch_generator", lambda t: t[:3].clone()))
_case("batch generator as int64", "5056 bytes", _put("batch_generator", lambda t: t.long()))
_case("batch generator 2-D", "5056 bytes", _put("batch_generator", lambda t: t.view(2, -1)))
_case(
    "batch generator invalid content",
    "not a valid generator state",
    _put("batch_generator", lambda t: torch.zeros_like(t)),
)
_case(
    "batch generator not a tensor",
    "'batch_generator' should be a Tensor",
    _put("batch_generator", [1, 2]),
)
_case("noise generator of 3 bytes", "5056 bytes", _put("noise_generator", lambda t: t[:3].clone()))
_case(
    "noise generator invalid content",
    "not a valid generator state",
    _put("noise_generator", lambda t: torch.full_like(t, 255)),
)
_case("noise device unknown", "'noise_device' is 'tpu'", _put("noise_device", "tpu"))
_case("noise device not text", "'noise_device' is 3", _put("noise_device", 3))
_case(
    "noise device cuda with a cpu state",
    "cuda generator state of 16 bytes",
    _put("noise_device", "cuda"),
)
_case(
    "cuda noise state with a bad offset",
    "offset is not a multiple of 4",
    lambda s: s.update(
        noise_device="cuda",
        noise_generator=torch.tensor(
            [1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0], dtype=torch.uint8
        ),
    ),
)
# the batch order
_case("permutation of floats", "int64 tensor", _put("permutation", lambda t: t.float()))
_case("permutation too short", "int64 tensor", _put("permutation", lambda t: t[:-1].clone()))
_case(
    "permutation with a repeat",
    "not an ordering",
    _put("permutation", lambda t: torch.cat([t[:1], t[:-1]])),
)
_case("permutation out of range", "not an ordering", _put("permutation", lambda t: t + 1))
_case("permutation a list", "int64 tensor", _put("permutation", lambda t: t.tolist()))
_case("permutation none after step 0", "'permutation' is empty", _put("permutation", None))
_case("position negative", f"outside 0..{N_TRAIN}", _put("position", -1))
_case("position beyond the training set", f"outside 0..{N_TRAIN}", _put("position", N_TRAIN + 1))
_case("position a float", "'position' should be a int", _put("position", 3.0))
_case("position a bool", "'position' should be a int", _put("position", True))
_case("position missing", "'position' is missing", _pop("position"))
# the optimizer
_case("exp_avg with NaN", "'exp_avg' holds non-finite", _put("optimizer", "exp_avg", _nan_at))
_case(
    "exp_avg_sq with NaN", "'exp_avg_sq' holds non-finite", _put("optimizer", "exp_avg_sq", _nan_at)
)
_case(
    "exp_avg_sq with inf", "'exp_avg_sq' holds non-finite", _put("optimizer", "exp_avg_sq", _inf_at)
)
_case(
    "exp_avg_sq negative",
    "'exp_avg_sq' holds negative",
    _put("optimizer", "exp_avg_sq", lambda t: -t - 1),
)
_case(
    "exp_avg of another shape",
    "'exp_avg' should be a torch.float32 tensor of shape",
    _put("optimizer", "exp_avg", lambda t: t[:-1].clone()),
)
_case(
    "exp_avg as integers", "torch.float32 tensor", _put("optimizer", "exp_avg", lambda t: t.long())
)
_case("exp_avg_sq missing", "'exp_avg_sq' is missing", _pop("optimizer", "exp_avg_sq"))
_case("step_count negative", "'step_count' is -1", _put("optimizer", "step_count", -1))
_case("step_count a bool", "'step_count' is True", _put("optimizer", "step_count", True))
_case("step_count a float", "'step_count'", _put("optimizer", "step_count", 10.0))
_case("step_count missing", "'step_count' is missing", _pop("optimizer", "step_count"))
_case(
    "unknown optimizer state",
    "unknown key 'momentum'",
    _put("optimizer", "momentum", torch.zeros(3)),
)
_case("initial missing", "'initial' is missing", _pop("optimizer", "initial"), "ma")
_case("initial with NaN", "'initial' holds non-finite", _put("optimizer", "initial", _nan_at), "ma")
_case(
    "initial of another shape",
    "'initial' should be a torch.float32 tensor",
    _put("optimizer", "initial", lambda t: t[:5].clone()),
    "ma",
)
_case(
    "muon momentum with NaN",
    "'muon_momentum' holds non-finite",
    _put("optimizer", "muon_momentum", _nan_at),
    "muon",
)
_case(
    "muon momentum of another shape",
    "'muon_momentum' should be a torch.float32 tensor",
    _put("optimizer", "muon_momentum", lambda t: t[:-1].clone()),
    "muon",
)
_case(
    "muon momentum missing",
    "'muon_momentum' is missing",
    _pop("optimizer", "muon_momentum"),
    "muon",
)
_case(
    "muon momentum in a run without Muon",
    "unknown key 'muon_momentum'",
    _put("optimizer", "muon_momentum", torch.zeros(3)),
)
# the fixed norm
_case("norm target missing", "'norm_target' is missing", _pop("norm_target"), "muon")
_case("norm target negative", "'norm_target' is -1.0", _put("norm_target", -1.0), "muon")
_case("norm target NaN", "'norm_target' is nan", _put("norm_target", math.nan), "muon")
_case("norm target a tensor", "'norm_target' is tensor", _put("norm_target", torch.ones(2)), "muon")
_case(
    "norm target not the weights' norm",
    "the weights' norm",
    _put("norm_target", lambda v: 1.5 * v),
    "muon",
)
_case("norm target in a run without it", "without --fixed-norm", _put("norm_target", 1.0))
# interventions
_case(
    "intervention state in a run without any",
    "holds 1 states, the run has 0",
    _put("interventions", [{"mu": torch.zeros(3)}]),
)
_case(
    "interventions not a list", "'interventions' should be a list", _put("interventions", {"mu": 1})
)
_case("interventions missing", "'interventions' is missing", _pop("interventions"), "ema")
_case(
    "one intervention state lost",
    "holds 1 states, the run has 2",
    _put("interventions", lambda v: v[:1]),
    "ema",
)
_case("ema average missing", "'mu' is missing", _put("interventions", lambda v: [{}, v[1]]), "ema")
_case(
    "ema average with NaN", "'mu' holds non-finite", _put("interventions", 0, "mu", _nan_at), "ema"
)
_case(
    "ema average of another shape",
    "'mu' should be a torch.float32 tensor",
    _put("interventions", 0, "mu", lambda t: t[:7].clone()),
    "ema",
)
_case(
    "unknown ema state", "unknown key 'nu'", _put("interventions", 0, "nu", torch.zeros(2)), "ema"
)
_case(
    "state in the stateless ⊥Grad",
    "orthogonal_grad intervention's unknown key",
    _put("interventions", 1, "w", 1),
    "ema",
)
_case("ma count behind the step", "'count' is 5", _put("interventions", 0, "count", 5), "ma")
_case("ma count negative", "'count' is -1", _put("interventions", 0, "count", -1), "ma")
_case(
    "ma count a float",
    "'count' is 20.0",
    _put("interventions", 0, "count", lambda v: float(v)),
    "ma",
)
_case(
    "ma gradients of another shape",
    "'gradients' should be a torch.float32 tensor",
    _put("interventions", 0, "gradients", lambda t: t[1:].clone()),
    "ma",
)
_case("ma gradients missing", "'gradients' is missing", _pop("interventions", 0, "gradients"), "ma")
_case(
    "ma total with inf",
    "'total' holds non-finite",
    _put("interventions", 0, "total", _inf_at),
    "ma",
)
# the tracker
_case(
    "tracker field missing",
    "the tracker's 'best_val_accuracy' is missing",
    _pop("tracker", "best_val_accuracy"),
)
_case("tracker field extra", "the tracker's unknown key 'foo'", _put("tracker", "foo", 1))
_case("tracker rows not a list", "metric rows are missing", _put("tracker", "rows", {"step": 0}))
_case("tracker rows empty", "metric rows are missing", _put("tracker", "rows", []))
_case(
    "metric row not a dictionary",
    "row 1 should be a dictionary",
    _put("tracker", "rows", 1, [1, 2]),
)
_case("metric row lacks a column", "row 0 lacks 'val_loss'", _pop("tracker", "rows", 0, "val_loss"))
_case(
    "metric row with NaN",
    "'train_loss' is nan",
    _put("tracker", "rows", -1, "train_loss", math.nan),
)
_case("metric row with text", "'lr' is 'x'", _put("tracker", "rows", 2, "lr", "x"))
_case(
    "metric row accuracy above 1",
    "'val_accuracy' is 1.5, outside 0..1",
    _put("tracker", "rows", 1, "val_accuracy", 1.5),
)
_case(
    "metric row step repeated",
    "row 2 has step",
    _put("tracker", "rows", 2, "step", lambda v: v - 1),
)
_case(
    "metric row beyond the checkpoint",
    "has step",
    _put("tracker", "rows", -1, "step", lambda v: v + 1),
)
_case("metric rows not from step 0", "row 0 has step 1", _put("tracker", "rows", 0, "step", 1))
_case("steps to 99 % negative", "'steps_to_val_99' is -4", _put("tracker", "steps_to_val_99", -4))
_case(
    "steps to 99 % a float", "'steps_to_train_99' is 5.5", _put("tracker", "steps_to_train_99", 5.5)
)
_case("streak start beyond the step", "'val_99_since' is 999", _put("tracker", "val_99_since", 999))
_case(
    "best accuracy above 1", "'best_val_accuracy' is 2.0", _put("tracker", "best_val_accuracy", 2.0)
)
_case(
    "best accuracy NaN",
    "'best_val_accuracy' is nan",
    _put("tracker", "best_val_accuracy", math.nan),
)
_case("wall time negative", "'wall_before' is -1.0", _put("tracker", "wall_before", -1.0))
_case("wall time infinite", "'wall_before' is inf", _put("tracker", "wall_before", math.inf))
_case("wall time text", "'wall_before' is '3'", _put("tracker", "wall_before", "3"))
_case(
    "last checkpoint step text",
    "'last_checkpoint_step' is '10'",
    _put("tracker", "last_checkpoint_step", "10"),
)


# dtypes: a cast on resume would round differently from the uninterrupted run (issue 35)
_case("weights as float16", "the weights are torch.float16", _put("flat", lambda t: t.half()))
_case("weights as float64", "the weights are torch.float64", _put("flat", lambda t: t.double()))
_case("weights as integers", "the weights are torch.int64", _put("flat", lambda t: t.long()))
_case(
    "exp_avg_sq as float64",
    "should be a torch.float32 tensor",
    _put("optimizer", "exp_avg_sq", lambda t: t.double()),
)
_case(
    "muon momentum as bfloat16",
    "should be a torch.float32 tensor",
    _put("optimizer", "muon_momentum", lambda t: t.bfloat16()),
    "muon",
)
_case(
    "ema average as float64",
    "should be a torch.float32 tensor",
    _put("interventions", 0, "mu", lambda t: t.double()),
    "ema",
)


def _damage_file(path: Path, fn) -> None:
    state = _load(path)
    fn(state)
    torch.save(state, path)


@pytest.mark.parametrize("case", list(DAMAGES))
def test_damaged_field_falls_back_to_previous_then_is_one_line(case, built, tmp_path, capsys):
    variant, fn, keyword = DAMAGES[case]
    original = built[variant]
    run = Path(shutil.copytree(original, tmp_path / "run"))

    # Both checkpoints damaged: one line naming latest.pt and the problem; nothing written.
    for name in (LATEST, PREVIOUS):
        _damage_file(run / name, fn)
    before = snapshot(run)
    code, _, err = run_cli(capsys, "train", "--resume", run, "--quiet", "--no-plot", "--steps", 20)
    assert code == 2, err
    assert_one_line(err, "latest.pt is damaged", keyword)
    assert snapshot(run) == before

    # A good previous.pt: one warning, a resume from step 10, the uninterrupted run's weights.
    shutil.copy(original / PREVIOUS, run / PREVIOUS)
    code, _, err = run_cli(capsys, "train", "--resume", run, "--quiet", "--no-plot", "--steps", 20)
    assert code == 0, err
    lines = {line for line in err.splitlines() if line.strip()}  # one warning (its text once)
    assert len(lines) == 1, err
    (line,) = lines
    assert (
        line.startswith("grokkit: warning:") and keyword in line and "previous.pt (step 10)" in line
    )
    assert torch.equal(runs.load_checkpoint(run)["flat"], runs.load_checkpoint(original)["flat"])
    assert runs.read_summary(run)["status"] == "completed"


def test_the_corpus_covers_every_field(built):
    """Each top-level key, optimizer entry, tracker field and intervention kind is damaged."""
    text = " ".join(DAMAGES)
    for words in (
        "permutation",
        "noise generator",
        "batch generator",
        "noise device",
        "position",
        "step",
        "config",
        "exp_avg",
        "exp_avg_sq",
        "step_count",
        "initial",
        "muon momentum",
        "norm target",
        "interventions",
        "ema",
        "ma ",
        "⊥Grad",
        "tracker",
        "metric row",
        "steps to 99",
        "streak",
        "best accuracy",
        "wall time",
        "last checkpoint",
    ):
        assert words in text, words
    assert len(DAMAGES) >= 75


# ---------------------------------------------------------------- valid checkpoints pass


def test_the_checked_fields_are_the_ones_training_writes(built):
    from grokkit.train import Tracker

    assert checkpoint_check.TRACKER_FIELDS == tuple(f.name for f in fields(Tracker))
    required = [c for c in runs.METRIC_COLUMNS if c not in runs.LATER_METRIC_COLUMNS]
    assert list(checkpoint_check.ROW_KEYS) == required
    for variant in VARIANTS:
        state = _load(built[variant] / LATEST)
        known = set(checkpoint_check.REQUIRED_KEYS) | set(checkpoint_check.OPTIONAL_KEYS)
        assert set(state) == known - ({"norm_target"} if variant != "muon" else set())


def test_valid_checkpoints_of_every_kind_pass(built, tmp_path):
    paths = [built[v] / name for v in VARIANTS for name in (LATEST, PREVIOUS)]
    # Step 0 (no batch drawn, no filter average yet), the authors' architecture, and a population
    # mixing decay targets (a member decaying to the origin then carries the initial weights too).
    assert (
        main(
            [
                "train",
                *TINY,
                "--grad-filter",
                "ema",
                "--steps",
                "0",
                "--out",
                str(tmp_path / "zero"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                *[a for a in TINY if a not in ("--d-mlp", "64")],
                "--arch",
                "openai-grok",
                "--steps",
                "12",
                "--out",
                str(tmp_path / "openai"),
            ]
        )
        == 0
    )
    from grokkit.train import train_runs

    base = RunConfig(
        operation="x+y",
        modulus=11,
        d_model=32,
        n_heads=2,
        d_mlp=64,
        n_layers=1,
        steps=7,
        checkpoint_every=5,
        grad_filter="ma",
        grad_filter_window=3,
    )
    mixed = [tmp_path / "mixed0", tmp_path / "mixed1"]
    train_runs([base, base.with_changes(decay_target="init", seed=1)], mixed, progress=False)
    assert "initial" in _load(mixed[0] / LATEST)["optimizer"]
    paths += [
        tmp_path / "zero" / LATEST,
        tmp_path / "openai" / LATEST,
        tmp_path / "openai" / PREVIOUS,
    ]
    paths += [d / LATEST for d in mixed]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in paths:
            runs._read_checkpoint(path)


# ---------------------------------------------------------------- settings of the wrong type


@pytest.mark.parametrize(
    "change, keyword",
    [
        ({"steps": 1e18}, "steps has the wrong type: expected an integer, got 1e+18"),
        ({"n_layers": True}, "n_layers has the wrong type: expected an integer, got True"),
        ({"d_model": 32.0}, "d_model has the wrong type"),
        ({"seed": "0"}, "seed has the wrong type"),
        ({"tf32": 1}, "tf32 has the wrong type: expected true or false"),
        ({"train_fraction": False}, "train_fraction has the wrong type"),
        ({"optimizer": {"warmup_steps": 10.0}}, "warmup_steps has the wrong type"),
        (
            {"optimizer": {"batch_size": False}},
            "batch_size has the wrong type: expected an integer or null",
        ),
        ({"optimizer": {"lr": math.inf}}, "learning rate must be a finite number, got inf"),
        (
            {"optimizer": {"weight_decay": math.inf}},
            "weight decay must be a finite number, got inf",
        ),
        ({"optimizer": {"eps": math.inf}}, "eps must be a finite number"),
    ],
)
def test_config_json_with_a_wrongly_typed_or_infinite_setting(
    change, keyword, built, tmp_path, capsys
):
    run = Path(shutil.copytree(built["plain"], tmp_path / "run"))
    config = json.loads((run / "config.json").read_text())
    for key, value in change.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    (run / "config.json").write_text(json.dumps(config))  # math.inf: Infinity, as Python reads it
    before = snapshot(run)
    code, _, err = run_cli(capsys, "train", "--resume", run, "--quiet", "--steps", 30)
    assert code == 2
    assert_one_line(err, "config.json is damaged", keyword)
    assert snapshot(run) == before
    with pytest.raises(ConfigError, match=keyword.split(":")[0]):
        RunConfig.from_dict(config)


@pytest.mark.parametrize(
    "flag, value, keyword",
    [
        ("--lr", "inf", "learning rate must be a finite number"),
        ("--lr", "-inf", "learning rate must be a finite number, got -inf"),
        ("--lr", "nan", "learning rate must be > 0"),
        ("--weight-decay", "inf", "weight decay must be a finite number"),
        ("--weight-decay", "nan", "weight decay must be >= 0"),
        ("--l2", "inf", "l2 must be a finite number"),
        ("--update-noise", "inf", "update noise must be a finite number"),
        ("--weight-noise", "inf", "weight noise must be a finite number"),
        ("--beta1", "inf", "beta1 must be a finite number"),
        ("--dropout", "inf", "dropout must be a finite number"),
        ("--init-scale", "inf", "init scale"),
        ("--grad-filter-lambda", "inf", "grad filter lambda must be finite"),
        ("--train-fraction", "inf", "train fraction"),
    ],
)
def test_non_finite_settings_on_the_command_line_are_one_line(
    flag, value, keyword, tmp_path, capsys
):
    out = tmp_path / "run"
    extra = ["--grad-filter", "ema"] if flag == "--grad-filter-lambda" else []
    code, _, err = run_cli(
        capsys, "train", *TINY, *extra, "--steps", 5, f"{flag}={value}", "--out", out
    )
    assert code == 2
    assert_one_line(err, keyword)
    assert not out.exists()


@pytest.mark.parametrize(
    "make",
    [
        lambda: RunConfig(steps=1e18),
        lambda: RunConfig(n_layers=True),
        lambda: RunConfig(modulus=97.0),
        lambda: RunConfig(orthogonal_grad=1),
        lambda: RunConfig().with_changes(eval_every=50.5),
        lambda: OptimizerConfig(lr=math.inf),
        lambda: OptimizerConfig(weight_decay=-math.inf),
        lambda: OptimizerConfig(warmup_steps=True),
    ],
)
def test_settings_of_the_wrong_type_are_refused_from_python(make):
    with pytest.raises(ConfigError):
        make()


# ---------------------------------------------------------------- summary.json


@pytest.mark.parametrize(
    "change, keyword",
    [
        ({"operation": None}, "'operation' is null, not text"),
        ({"train_fraction": "half"}, "'train_fraction' is \"half\", not a number"),
        ({"seed": 1.5}, "'seed' is 1.5, not an integer"),
        ({"steps_done": -1}, "'steps_done' is -1, not an integer >= 0"),
        ({"steps_done": True}, "'steps_done' is true"),
        ({"steps_to_val_99": "never"}, "'steps_to_val_99' is \"never\", not an integer or null"),
        ({"status": 3}, "'status' is 3, not text"),
        ({"train_accuracy": [0.5]}, "'train_accuracy' is [0.5]"),
        ({"best_val_accuracy": None}, "'best_val_accuracy' is null, not a number"),
        ({"modulus": "11"}, "'modulus' is \"11\""),
        ({"population_size": 1.0}, "'population_size' is 1.0"),
        *[({key: ...}, f"{key!r} is missing") for key in runs.SUMMARY_KEYS],
    ],
)
def test_show_with_a_summary_missing_a_key_or_of_the_wrong_type(
    change, keyword, built, tmp_path, capsys
):
    run = Path(shutil.copytree(built["plain"], tmp_path / "run"))
    summary = json.loads((run / "summary.json").read_text())
    for key, value in change.items():
        if value is ...:
            del summary[key]
        else:
            summary[key] = value
    (run / "summary.json").write_text(json.dumps(summary))
    before = snapshot(run)
    code, _, err = run_cli(capsys, "show", run)
    assert code == 2
    assert_one_line(err, "summary.json is damaged", keyword)
    assert snapshot(run) == before


def test_a_summary_as_training_writes_it_passes(built):
    summary = runs.read_summary(built["plain"])
    assert set(runs.SUMMARY_KEYS) <= set(summary)


# --------------------------------------------------------------- config.json of another model shape


@pytest.mark.parametrize(
    "change, keyword",
    [
        ({"d_model": 64}, "d_model 64 in config.json, 32 in the checkpoint"),
        (
            {"n_heads": 4},
            "n_heads 4 in config.json, 2 in the checkpoint",
        ),  # as many weights, cut otherwise
        ({"n_layers": 2}, "n_layers 2 in config.json, 1 in the checkpoint"),
        ({"norm": "post"}, "norm 'post' in config.json, 'pre' in the checkpoint"),
    ],
)
def test_config_json_of_another_model_shape_under_export_and_the_api(
    change, keyword, built, tmp_path, capsys
):
    from grokkit.analysis.weights import load_run_weights
    from grokkit.api import load_run

    run = Path(shutil.copytree(built["plain"], tmp_path / "run"))
    config = json.loads((run / "config.json").read_text())
    config.update(change)
    (run / "config.json").write_text(json.dumps(config))
    before = snapshot(run)
    out = tmp_path / "export"
    code, _, err = run_cli(capsys, "export", run, "--to", "transformer-lens", out)
    assert code == 2
    assert_one_line(err, "config.json is damaged", keyword)
    assert not out.exists()
    with pytest.raises(runs.DamagedFileError, match=f"config.json is damaged.*{keyword}"):
        load_run(run).model()
    with pytest.raises(runs.DamagedFileError, match=keyword):
        load_run_weights(run)
    assert snapshot(run) == before


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.int64])
def test_weights_of_another_dtype_are_refused_by_the_library(dtype, built, tmp_path):
    """load_run(...).model(), from the checkpoint and from a snapshot: one InputError each."""
    from grokkit import load_run
    from grokkit.errors import InputError

    run = Path(shutil.copytree(built["plain"], tmp_path / "run"))
    for name in (LATEST, PREVIOUS):
        _damage_file(run / name, _put("flat", lambda t: t.to(dtype)))
    runs.save_snapshot(run, 10, _load(run / LATEST)["flat"])
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(InputError, match=f"the weights are torch.{name}"):
        load_run(run).model()
    with pytest.raises(InputError, match=f"the weights are torch.{name}"):
        load_run(run).model(step=10)
