"""One run's complete, serialisable configuration, and the seeds derived from it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from grokkit import openai_grok
from grokkit.data import DataError, add_outliers, split_indices
from grokkit.errors import ConfigError, InputError
from grokkit.model_config import (
    ACTIVATION_NAMES,
    ARCHS,
    INIT_SCHEMES,
    NORMS,
    ModelConfig,
    check_init_scheme,
    check_model_size,
)
from grokkit.openai_grok import THEIR_OPERATOR
from grokkit.ops import PAPER_OPERATIONS, available_memory, get_operation
from grokkit.optim_config import DEFAULT_PRESET, RECIPES, OptimizerConfig
from grokkit.settings import Setting, check_field_types, declared, setting

# Nothing here imports PyTorch: the command line's listings (reproduce --list, --plan) build
# RunConfigs and must start in well under a second.

# Grokfast's filters (Lee et al. 2024; run by grokkit.interventions).
GRAD_FILTERS = ("none", "ema", "ma")
# The authors' recipe for the algorithmic data (their main.py): EMA alpha 0.98, lambda 2; MA a
# window of 100, lambda 5. (Their functions' own defaults differ between versions of their
# repository; grokkit follows the recipe, and every value is a flag.)
DEFAULT_ALPHA = 0.98
DEFAULT_LAMBDA = {"ema": 2.0, "ma": 5.0}
DEFAULT_WINDOW = 100
# The losses (grokkit.losses.LOSSES holds the functions).
LOSS_NAMES = ("softmax", "stablemax")

# Each use of randomness draws from its own stream, derived from (seed, purpose), so that e.g.
# changing the split seed never changes the initial weights or the batch order.
_PURPOSES = {"init": 1, "batches": 2, "noise": 3, "split": 4, "outliers": 5}


def derive_seed(seed: int, purpose: str, *more: int) -> int:
    """A well-mixed 63-bit seed for one purpose of one run (``more``: further integers mixed in,
    such as the step at which a noise stream restarts)."""
    state = np.random.SeedSequence([int(seed), _PURPOSES[purpose], *map(int, more)]).generate_state(
        2, np.uint32
    )
    return int((int(state[0]) << 31) ^ int(state[1]))


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run. Defaults: the paper's recipe on x/y mod 97."""

    # Each setting's flag, help text, group and sweep behaviour: grokkit.settings. The flags of
    # train and sweep, and the README's flag table, are made from these declarations.
    operation: str = setting(
        "x/y",
        "task",
        f"operation: one of the paper's twelve ({' '.join(PAPER_OPERATIONS)}) or x*y (Grokfast's "
        "task; like x/y, on 0 < y < p, as in the Grokfast code)",
        flag="--op",
        per_population=True,  # one table for the stack
    )
    modulus: int = setting(
        97, "task", "p of the modular operations (a prime for the division ones; S5 ignores it)"
    )
    train_fraction: float = setting(0.5, "task", "fraction of all equations used for training")
    seed: int = setting(0, "task", "seed of the initialisation, the batch order and the noise")
    # None: the seed, so that each seed is an independent repeat, as in the paper's figures.
    split_seed: int | None = setting(
        None, "task", "seed of the train/validation split", default_text="--seed"
    )
    outliers: int = setting(
        0, "task", "A.4: k training answers replaced by the answers of k other training equations"
    )
    outlier_seed: int | None = setting(
        None, "task", "seed for choosing the outliers", default_text="the split seed"
    )
    steps: int = setting(100_000, "schedule", "budget of updates", axis=False, budget=True)
    # The evaluation schedule is shared by a population's members: one value per sweep.
    eval_every: int = setting(
        50,
        "schedule",
        "evaluate the whole training and validation sets every N steps (log-spaced before)",
        axis=False,
        per_population=True,
    )
    checkpoint_every: int = setting(1000, "schedule", "steps between checkpoints", axis=False)
    snapshot_every: int = setting(
        0,  # 0: none
        "schedule",
        "also keep the weights every N steps, for analyses over training",
        metavar="N",
        default_text="none",
        axis=False,
        later=1,
    )
    stop_after_val_99: int = setting(
        0,  # 0: never
        "schedule",
        "stop once validation accuracy has stayed >= 99 % for N steps",
        metavar="N",
        default_text="never",
        axis=False,
        budget=True,
    )
    # The model's shape is shared by a population: its members' tensors stack.
    n_layers: int = setting(2, "model", "transformer layers", flag="--layers", per_population=True)
    d_model: int = setting(128, "model", "width of the residual stream", per_population=True)
    n_heads: int = setting(4, "model", "attention heads", flag="--heads", per_population=True)
    d_mlp: int = setting(512, "model", "MLP hidden width", per_population=True)
    norm: str = setting(
        "pre",
        "model",
        "LayerNorm placement: pre (GPT-2), post (Vaswani et al.) or none (Nanda et al. 2023)",
        choices=NORMS,
        per_population=True,
    )
    activation: str = setting(
        "relu", "model", "MLP activation", choices=ACTIVATION_NAMES, per_population=True
    )
    init: str = setting(  # see model.init_parameters
        "pytorch",
        "model",
        "initialisation: pytorch (PyTorch's module defaults, as Power et al.) or nanda "
        "(Nanda et al. 2023: Gaussian, std 1/sqrt(d_model))",
        choices=INIT_SCHEMES,
        later=2,
        tag=(8, "init_{}"),
        title=(4, lambda v: f"{v.capitalize()} init"),
    )
    init_scale: float = setting(
        1.0,
        "model",
        "multiply every initial weight by ALPHA (Omnigrok, Liu et al. 2022)",
        metavar="ALPHA",
        later=3,
        tag=(9, "init_scale{:g}"),
        title=(5, "init × {:g}"),
    )
    # Methods that followed the paper (all off by default). The interventions and the loss act
    # on the whole stacked gradient and batch: one kind each per population (their strengths may
    # still differ per member).
    grad_filter: str = setting(
        "none",
        "methods",
        "Grokfast (Lee et al. 2024) low-pass gradient filter: ema or ma",
        choices=GRAD_FILTERS,
        later=4,
        tag=(1, "grokfast_{}"),
        per_population=True,
    )
    grad_filter_alpha: float = setting(
        DEFAULT_ALPHA,
        "methods",
        "Grokfast-EMA momentum",
        only_with=("grad_filter", ("ema",)),
        later=5,
        tag=(2, "alpha{:g}"),
    )
    grad_filter_lambda: float | None = setting(
        None,  # None: the recipe's, DEFAULT_LAMBDA
        "methods",
        "Grokfast amplification",
        default_text=f"EMA {DEFAULT_LAMBDA['ema']:g}, MA {DEFAULT_LAMBDA['ma']:g}",
        only_with=("grad_filter", ("ema", "ma")),
        later=6,
        tag=(3, "lambda{:g}"),
    )
    grad_filter_window: int = setting(
        DEFAULT_WINDOW,
        "methods",
        "Grokfast-MA window",
        only_with=("grad_filter", ("ma",)),
        later=7,
        tag=(4, "window{}"),
        per_population=True,  # the MA filter's buffer holds one window for the stack
    )
    loss: str = setting(
        "softmax",
        "methods",
        "softmax cross-entropy or stablemax (Prieto et al. 2025)",
        choices=LOSS_NAMES,
        later=8,
        tag=(6, "{}"),
        title=(2, lambda v: {"stablemax": "StableMax"}.get(v, v) + " loss"),
        per_population=True,
    )
    orthogonal_grad: bool = setting(
        False,
        "methods",
        "⊥Grad (Prieto et al. 2025): remove from each weight tensor's gradient its component "
        "along the tensor, keeping the gradient's norm",
        later=9,
        tag=(7, "orthograd"),
        title=(3, "⊥Grad"),
        per_population=True,
    )
    fixed_norm: bool = setting(
        False,
        "methods",
        "Omnigrok (Liu et al. 2022): after every update, rescale all the weights to their global "
        "L2 norm at initialisation (after --init-scale)",
        later=12,
        tag=(12, "fixed_norm"),
        title=(9, "weight norm fixed at init"),
        per_population=True,  # a rescaling of the whole stack after each update
    )
    # The authors' released code: their network, tokens, S5 convention, split and epoch
    # batches (grokkit.openai_grok).
    arch: str = setting(
        "grokkit",
        "model",
        "grokkit (the paper's text as grokkit reads it) or openai-grok (the authors' released "
        "code: post-LN without biases, sinusoidal positions, their tokens, S5 convention and "
        "split; see the README's section on it)",
        choices=ARCHS,
        later=11,
        per_population=True,
    )
    tf32: bool = setting(  # ignored off CUDA
        False,
        "execution",
        "TF32 float32 matmuls on a CUDA GPU: faster on Ampere or newer, ~1e-3 relative error "
        "per product; no effect on the CPU; recorded in config.json",
        later=10,
        tag=(10, "tf32"),
        title=(6, "TF32"),
        per_population=True,  # a process-wide PyTorch setting: one value per population
    )
    bf16: bool = setting(
        False,
        "execution",
        "bfloat16 operands with float32 accumulation in every float32 matrix product, forward "
        "and backward (oneDNN's bf16 math on CPUs with AVX-512, fast with AVX-512-BF16 or AMX; "
        "emulated, and slower than float32, elsewhere); recorded in config.json",
        later=13,
        tag=(13, "bf16"),
        title=(7, "bfloat16 products"),
        per_population=True,  # likewise (grokkit.precision), around the step and evaluation
    )
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    # The preset the optimizer settings started from, for the record.
    preset: str | None = setting(
        DEFAULT_PRESET,
        "optimisation",
        "the optimizer's recipe: a preset of Figure 2 (left) or a recipe that came after the paper",
        flag="--optimizer",
        choices=RECIPES,
        metavar="PRESET",
    )

    def __post_init__(self) -> None:
        check_field_types(self)  # "steps": 1e18 or "n_layers": true in a config.json: refused
        if self.steps < 0:
            raise ConfigError(f"steps must be >= 0, got {self.steps}")
        if self.eval_every < 1:
            raise ConfigError(f"eval every must be >= 1, got {self.eval_every}")
        if self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint every must be >= 1, got {self.checkpoint_every}")
        if self.snapshot_every < 0:
            raise ConfigError(f"snapshot every must be >= 0, got {self.snapshot_every}")
        if self.stop_after_val_99 < 0:
            raise ConfigError(f"stop after val 99 must be >= 0, got {self.stop_after_val_99}")
        for name in ("seed", "split_seed", "outlier_seed"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name.replace('_', ' ')} must be >= 0, got {value}")
        if self.outliers < 0:
            raise ConfigError(f"number of outliers must be >= 0, got {self.outliers}")
        if self.grad_filter not in GRAD_FILTERS:
            raise ConfigError(
                f"grad filter must be one of {', '.join(GRAD_FILTERS)}, got {self.grad_filter!r}"
            )
        if not 0.0 <= self.grad_filter_alpha < 1.0:  # also refuses NaN
            raise ConfigError(f"grad filter alpha must be in [0, 1), got {self.grad_filter_alpha}")
        if self.grad_filter_lambda is not None and not math.isfinite(self.grad_filter_lambda):
            raise ConfigError(f"grad filter lambda must be finite, got {self.grad_filter_lambda}")
        if self.grad_filter_window < 1:
            raise ConfigError(f"grad filter window must be >= 1, got {self.grad_filter_window}")
        if self.loss not in LOSS_NAMES:
            raise ConfigError(f"loss must be one of {', '.join(LOSS_NAMES)}, got {self.loss!r}")
        check_init_scheme(self.init)
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.arch == "openai-grok":
            self._check_openai_grok()
        if not (math.isfinite(self.init_scale) and self.init_scale > 0):
            raise ConfigError(f"init scale must be a positive number, got {self.init_scale}")
        if not (0.0 < self.train_fraction < 1.0) or math.isnan(self.train_fraction):
            raise ConfigError(f"train fraction must be in (0, 1), got {self.train_fraction}")

    def _check_openai_grok(self) -> None:
        """Settings the authors' network cannot honour, named as the command line names them."""
        if self.norm != "post":
            raise ConfigError(
                "--arch openai-grok has post-LN blocks, as the authors' code; "
                f"--norm {self.norm} cannot be honoured"
            )
        if self.d_mlp != 4 * self.d_model:
            raise ConfigError(
                f"--arch openai-grok has an MLP of width 4 x d-model ({4 * self.d_model}); "
                f"--d-mlp {self.d_mlp} cannot be honoured"
            )
        if self.init != "pytorch":
            raise ConfigError(
                "--arch openai-grok initialises as the authors' PyTorch modules; "
                f"--init {self.init} cannot be honoured"
            )
        if self.operation not in THEIR_OPERATOR:
            raise ConfigError(
                f"--arch openai-grok has no token for the operation {self.operation!r}"
            )

    @property
    def effective_grad_filter_lambda(self) -> float:
        """The filter's amplification: as set, else the authors' recipe for the filter."""
        if self.grad_filter_lambda is not None:
            return self.grad_filter_lambda
        return DEFAULT_LAMBDA.get(self.grad_filter, 0.0)

    def method_tags(self) -> list[str]:
        """Short, filesystem-safe tags for every tagged setting (``METHOD_FIELDS``; each one's tag
        is declared on its field) that differs from its default, e.g. ``["grokfast_ema",
        "lambda2", "l2_0.005"]``: what tells apart, in run names and ``--plan`` rows, runs that
        differ only in a method. Empty for the paper's runs, so their names stay what they always
        were. A tag the preset's name already says (``lion``) is not repeated."""
        tags = []
        for s in _TAGGED:
            value = s.value(self)
            if value != s.default:
                tag = s.tag_of(value)
                if tag != self.preset:
                    tags.append(tag)
        return tags

    def method_description(self) -> str:
        """The method settings that differ from their defaults, in words for a figure's title
        (``"Grokfast-EMA (α 0.98, λ 2), L2 0.005"``); empty for the paper's runs. The filter's
        words, which join three settings, first; then each setting's declared ``title``."""
        parts = []
        if self.grad_filter == "ema":
            alpha, lam = self.grad_filter_alpha, self.effective_grad_filter_lambda
            parts.append(f"Grokfast-EMA (α {alpha:g}, λ {lam:g})")
        elif self.grad_filter == "ma":
            window, lam = self.grad_filter_window, self.effective_grad_filter_lambda
            parts.append(f"Grokfast-MA (window {window}, λ {lam:g})")
        for s in _TITLED:
            value = s.value(self)
            if value != s.default:
                parts.append(s.title_of(value))
        return ", ".join(parts)

    @property
    def effective_split_seed(self) -> int:
        return self.seed if self.split_seed is None else self.split_seed

    @property
    def effective_outlier_seed(self) -> int:
        return self.effective_split_seed if self.outlier_seed is None else self.outlier_seed

    def split(self, n_equations: int):
        """(train, validation) indices of this run's split of a table of ``n_equations``
        (openai-grok: the authors' shuffle of their equation order, seeded by the split seed)."""
        if self.arch == "openai-grok":
            n_elements = get_operation(self.operation, self.modulus).n_elements
            split_indices(n_equations, self.train_fraction, 0)  # the same checks and messages
            return openai_grok.split_indices(
                self.operation,
                n_elements,
                n_equations,
                self.train_fraction,
                self.effective_split_seed,
            )
        return split_indices(
            n_equations, self.train_fraction, derive_seed(self.effective_split_seed, "split")
        )

    def trained_answers(self, answers, train_idx):
        """The answers this run trains on: ``answers[train_idx]`` with its k outliers (A.4) drawn
        from the derived outlier seed. The one definition, for training and for analyses."""
        return add_outliers(
            answers[train_idx], self.outliers, derive_seed(self.effective_outlier_seed, "outliers")
        )

    def model_config(self, n_elements: int) -> ModelConfig:
        tokens = {}
        if self.arch == "openai-grok":
            size, first, op = openai_grok.token_layout(self.operation, self.modulus)
            tokens = {"vocabulary_size": size, "first_element_token": first, "operator_token": op}
        return ModelConfig(
            n_elements=n_elements,
            n_layers=self.n_layers,
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_mlp=self.d_mlp,
            norm=self.norm,
            activation=self.activation,
            arch=self.arch,
            **tokens,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["optimizer"] = self.optimizer.to_dict()
        return d

    def flat_dict(self) -> dict:
        """Every setting in one flat mapping, the optimizer's fields next to the run's under their
        own names (as ``with_changes`` and the CLI know them): what viewers, indexes and
        ``grokkit compare --by`` filter on. An optimizer field sharing a run field's name would
        keep an ``optimizer.`` prefix."""
        d = self.to_dict()
        for key, value in d.pop("optimizer").items():
            d[key if key not in d else f"optimizer.{key}"] = value
        return d

    def identity_dict(self) -> dict:
        """``to_dict`` less the fields added after grokkit 0.1 that still hold their defaults:
        what names a run (sweep folders, hashes), so a field added later leaves the names of
        existing runs, and so their resumption, untouched."""
        d = self.to_dict()
        for s in SETTINGS:
            if s.later is not None and s.value(self) == s.default:
                del (d if s.owner is RunConfig else d["optimizer"])[s.name]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs["optimizer"] = OptimizerConfig.from_dict(d.get("optimizer", {}))
        return cls(**kwargs)

    def with_changes(self, **changes) -> RunConfig:
        """A copy with some fields changed; optimizer fields may be given by their own names."""
        opt_names = {f.name for f in fields(OptimizerConfig)}
        opt_changes = {k: changes.pop(k) for k in list(changes) if k in opt_names}
        if changes.get("arch") == "openai-grok" and self.arch != "openai-grok":
            # The authors' network fixes these: take its values unless they are given (a given
            # value it cannot honour is then refused by __post_init__).
            changes.setdefault("norm", "post")
            changes.setdefault("d_mlp", 4 * changes.get("d_model", self.d_model))
        cfg = replace(self, **changes)
        if opt_changes:
            cfg = replace(cfg, optimizer=replace(cfg.optimizer, **opt_changes))
        return cfg


# Every fact about a setting is declared on its field (grokkit.settings); the lists the rest of
# the library reads are derived here, never written out again.
SETTINGS: tuple[Setting, ...] = declared(RunConfig, OptimizerConfig)
# The run's settings added after grokkit 0.1, in the order they came (a sweep varies them last,
# in this order; at their defaults they are left out of a run's identity).
LATER_FIELDS = tuple(
    s.name
    for s in sorted(SETTINGS, key=lambda s: s.later or 0)
    if s.owner is RunConfig and s.later is not None
)
# The settings that add a tag to a run's name, in the order the tags come.
_TAGGED = tuple(sorted((s for s in SETTINGS if s.tag), key=lambda s: s.tag[0]))
METHOD_FIELDS = tuple(s.name for s in _TAGGED)
# The settings a figure's title names (RunConfig.method_description), in the order it names them.
_TITLED = tuple(sorted((s for s in SETTINGS if s.title), key=lambda s: s.title[0]))
# The budget and the stop rule: the settings a resume may change.
BUDGET_FIELDS = tuple(s.name for s in SETTINGS if s.budget)
# Settings every member of a population shares (grokkit.population.population_key).
PER_POPULATION = tuple(s for s in SETTINGS if s.per_population)


def validate_run(config: RunConfig) -> None:
    """Everything about a run that can be checked before training starts, so that bad input ends
    in one InputError before any folder is written (the CLI, sweeps and the Python API use it)."""
    operation = get_operation(config.operation, config.modulus)  # sizes only: no table is built
    train_idx, _ = split_indices(operation.n_equations, config.train_fraction, 0)
    n_train = len(train_idx)
    if n_train < 2:
        raise DataError(
            f"a training set of {n_train} equation cannot be split into batches; "
            "raise --train-fraction"
        )
    if 2 * config.outliers > n_train:
        raise DataError(
            f"{config.outliers} outliers need {2 * config.outliers} training equations; "
            f"the training set has {n_train}"
        )
    batch_size = config.optimizer.batch_size
    if batch_size and batch_size > n_train:
        raise DataError(f"batch size {batch_size} exceeds the training set ({n_train} equations)")
    # A model that cannot fit is refused here, before a folder exists (a failed allocation
    # would leave one behind, holding only its lock).
    check_model_size(
        config.model_config(operation.n_elements),
        batch_size or min(512, n_train),
        available_memory(),
    )


def checked_configs(configs) -> list[RunConfig]:
    """``configs`` (a list or tuple of RunConfig) as a list, each validated (``validate_run``);
    InputError naming the first that is not a RunConfig or not valid. The library's entry points
    that take configs call it before touching any folder."""
    if not isinstance(configs, (list, tuple)):
        raise InputError(f"configs must be a list of RunConfig, got {type(configs).__name__}")
    for i, c in enumerate(configs):
        if not isinstance(c, RunConfig):
            raise InputError(f"configs[{i}] is a {type(c).__name__}, not a RunConfig")
        validate_run(c)
    return list(configs)
