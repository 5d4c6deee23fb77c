"""The optimiser's settings, without PyTorch: the paper's AdamW recipe, the presets of Figure 2
(left) and the recipes beyond the paper that ``--optimizer`` also names. ``grokkit.optim`` holds
the optimisers that run them and re-exports these names; they live apart so that
``grokkit.config`` and the command line's listings start without importing PyTorch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from grokkit.errors import ConfigError, unknown
from grokkit.settings import check_field_types, declared, setting

# The update rules (grokkit.optim.UPDATE_RULES holds the optimizers that run them).
UPDATE_RULE_NAMES = ("adamw", "lion")


@dataclass(frozen=True)
class OptimizerConfig:
    """One run's optimisation settings. Defaults: the paper's recipe (A.1.2)."""

    # Each setting's flag, help and group: grokkit.settings; "optimisation" lists them under the
    # preset (--optimizer), whose values they override.
    lr: float = setting(1e-3, "optimisation", "learning rate")
    weight_decay: float = setting(1.0, "optimisation", "decoupled weight decay (AdamW)")
    l2: float = setting(
        0.0,
        "optimisation",
        "coupled L2 penalty: l2 * W added to the gradient before Adam's moments, as "
        "torch.optim.Adam's weight_decay (the Grokfast recipe, Lee et al. 2024); --weight-decay "
        "is AdamW's decoupled decay",
        later=1,
        tag=(5, "l2_{:g}"),
        title=(1, "L2 {:g}"),
    )
    decay_target: str = setting(
        "origin",
        "optimisation",
        "weight decay pulls towards the origin (AdamW) or the initial weights",
        choices=("origin", "init"),
    )
    beta1: float = setting(
        0.9, "optimisation", "Adam beta1 (Lion: the weight of the momentum in the update)"
    )
    beta2: float = setting(0.98, "optimisation", "Adam beta2 (Lion: the momentum's decay)")
    eps: float = 1e-8  # Adam's epsilon: no flag (Python and config.json only)
    warmup_steps: int = setting(
        10, "optimisation", "linear warm-up: update u (1-based) uses lr * min(1, u / warmup-steps)"
    )
    batch_size: int | None = setting(
        None,  # the paper's min(512, ceil(N_train / 2)); 0: the whole training set
        "optimisation",
        "minibatch size, or 'full' for the whole training set",
        default_text="min(512, ceil(N_train / 2))",
    )
    update_noise: float = setting(
        0.0, "optimisation", "std of Gaussian noise added to the Adam update direction"
    )
    weight_noise: float = setting(
        0.0, "optimisation", "std of Gaussian noise on the weights in each forward pass"
    )
    dropout: float = setting(0.0, "optimisation", "residual dropout rate")
    # An optimizer setting rather than a run's: Muon replaces AdamW's update rule for part of the
    # weights with the same learning rate, warm-up and weight decay, and so combines with every
    # preset as its other knobs do (--optimizer adam --muon: Muon without weight decay).
    muon: bool = setting(
        False,
        "optimisation",
        "Muon (Jordan et al. 2024; torch.optim.Muon, momentum 0.95, Nesterov) for the blocks' "
        "hidden weight matrices, AdamW for the rest (embeddings, unembedding, biases, LayerNorms)",
        later=2,
        tag=(11, "muon"),
        title=(8, "Muon (hidden matrices)"),
        per_population=True,  # the optimizer of the whole stack
    )
    # The update rule, shared by a population (one optimizer updates the stack); the betas,
    # learning rate, warm-up, decays and noises are the settings above, per member.
    update_rule: str = setting(
        "adamw",
        "optimisation",
        "the update rule: adamw, or lion (Chen et al. 2023: W <- W - lr sign(beta1 m + "
        "(1 - beta1) g), then m <- beta2 m + (1 - beta2) g; weight decay decoupled as AdamW's)",
        choices=UPDATE_RULE_NAMES,
        later=3,
        tag=(14, "{}"),
        title=(10, lambda v: f"{v.capitalize()} update rule"),
        per_population=True,
    )

    def __post_init__(self) -> None:
        check_field_types(self)
        for f in fields(self):  # nan is refused by the ranges below, inf here
            value = getattr(self, f.name)
            if isinstance(value, float) and math.isinf(value):
                what = "learning rate" if f.name == "lr" else f.name.replace("_", " ")
                raise ConfigError(f"{what} must be a finite number, got {value}")
        checks = [
            (self.lr > 0, f"learning rate must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (self.l2 >= 0, f"l2 must be >= 0, got {self.l2}"),
            (
                self.decay_target in ("origin", "init"),
                f"decay target must be 'origin' or 'init', got {self.decay_target!r}",
            ),
            (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "betas must be in [0, 1)"),
            (self.eps > 0, f"eps must be > 0, got {self.eps}"),
            (self.warmup_steps >= 0, f"warmup steps must be >= 0, got {self.warmup_steps}"),
            (
                self.batch_size is None or self.batch_size >= 0,
                f"batch size must be >= 0 (0 = full batch), got {self.batch_size}",
            ),
            (self.update_noise >= 0, f"update noise must be >= 0, got {self.update_noise}"),
            (self.weight_noise >= 0, f"weight noise must be >= 0, got {self.weight_noise}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (
                self.update_rule in UPDATE_RULE_NAMES,
                f"update rule must be one of {', '.join(UPDATE_RULE_NAMES)}, "
                f"got {self.update_rule!r}",
            ),
            (
                not (self.muon and self.update_rule != "adamw"),
                "--muon runs AdamW on the weights Muon leaves; "
                f"--update-rule {self.update_rule} cannot be honoured",
            ),
            (
                not (self.muon and self.decay_target == "init"),
                "--muon decays the hidden matrices towards the origin, as torch.optim.Muon; "
                "--decay-target init cannot be honoured",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def lr_at(self, update: int) -> float:
        """Learning rate of the given 1-based update: linear warm-up, lr * min(1, u / warmup)."""
        return self.lr * (min(1.0, update / self.warmup_steps) if self.warmup_steps > 0 else 1.0)

    @property
    def draws_noise(self) -> bool:
        """Whether a run draws random numbers besides its batch order (dropout masks, noise)."""
        return self.dropout > 0 or self.weight_noise > 0 or self.update_noise > 0

    def resolve_batch_size(self, n_train: int) -> int:
        """The minibatch size for a training set of n_train equations."""
        if self.batch_size == 0:
            return n_train
        if self.batch_size is None:
            return min(512, math.ceil(n_train / 2))
        return min(self.batch_size, n_train)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "OptimizerConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# Fields added after grokkit 0.1 (declared ``later``), in the order they came: left out of a run's
# identity while at their defaults (see RunConfig.identity_dict), so existing run names stay.
LATER_FIELDS = tuple(
    s.name
    for s in sorted(declared(OptimizerConfig), key=lambda s: s.later or 0)
    if s.later is not None
)

_BASE = OptimizerConfig()
_ADAM = replace(_BASE, weight_decay=0.0)

# Figure 2 (left), in the paper's reading order. "adamw" is the default everywhere else.
PRESETS: dict[str, OptimizerConfig] = {
    "adam-full-batch": replace(_ADAM, batch_size=0),
    "adam": _ADAM,
    "adam-full-batch-update-noise": replace(_ADAM, batch_size=0, update_noise=1.0),
    "adam-dropout": replace(_ADAM, dropout=0.1),
    "adamw": _BASE,
    "adamw-to-init": replace(_BASE, decay_target="init"),
    "adam-lr3e-4": replace(_ADAM, lr=3e-4),
    "adam-lr3e-3": replace(_ADAM, lr=3e-3),
    "adam-weight-noise": replace(_ADAM, weight_noise=0.01),
}
DEFAULT_PRESET = "adamw"

PRESET_DESCRIPTIONS: dict[str, str] = {
    "adam-full-batch": "Adam, full batch",
    "adam": "Adam",
    "adam-full-batch-update-noise": "Adam, full batch, Gaussian noise on the update",
    "adam-dropout": "Adam, residual dropout 0.1",
    "adamw": "AdamW, weight decay 1 (default)",
    "adamw-to-init": "AdamW, weight decay 1 towards the initialisation",
    "adam-lr3e-4": "Adam, lr 3e-4",
    "adam-lr3e-3": "Adam, lr 3e-3",
    "adam-weight-noise": "Adam, Gaussian weight noise 0.01",
}


# Every value of --optimizer (a run's ``preset``): Figure 2's presets, then recipes that came after
# the paper. Figure 2 (left) trains PRESETS alone.
RECIPES: dict[str, OptimizerConfig] = {
    **PRESETS,
    # Lion (Chen et al. 2023, arXiv 2302.06675): the paper's betas (0.9, 0.99), and its advice
    # of a learning rate 3-10x smaller and a weight decay 3-10x larger than AdamW's applied to
    # grokkit's AdamW recipe (lr 1e-3, weight decay 1): lr 1e-4, weight decay 10, so that the
    # decay per update, lr * wd, stays AdamW's 1e-3.
    "lion": replace(_BASE, update_rule="lion", lr=1e-4, weight_decay=10.0, beta2=0.99),
}


def preset(name: str) -> OptimizerConfig:
    """The optimizer settings --optimizer ``name`` starts from."""
    if name not in RECIPES:
        raise ConfigError(unknown("optimizer preset", name, RECIPES))
    return RECIPES[name]
