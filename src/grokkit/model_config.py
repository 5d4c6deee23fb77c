"""The transformer's configuration and the layout of its weights, without PyTorch.

What a run's settings need to know about the model (its shape, its weights' names and sizes, whether
it fits in memory) lives here, so that ``grokkit.config`` and the listings of the command line
(``reproduce --list``, ``--plan``) start without importing PyTorch. ``grokkit.model`` holds the
network itself and re-exports these names.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

from grokkit.errors import ConfigError

SEQUENCE_LENGTH = 4  # x, op, y, =
OPENAI_SEQUENCE_LENGTH = 6  # openai-grok: <eos>, x, op, y, =, c
ANSWER_POSITION = 3

ACTIVATION_NAMES = ("relu", "gelu")  # grokkit.model.ACTIVATIONS holds the functions
NORMS = ("pre", "post", "none")
# "grokkit": the paper's text as read in grokkit.model's docstring. "openai-grok": the network of
# the authors' released code (grok/transformer.py): post-LN blocks without biases, fixed sinusoidal
# positions, the sequence "<eos> x op y = c" scored after "="; see grokkit.openai_grok.
ARCHS = ("grokkit", "openai-grok")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the transformer. Defaults are the paper's: 2 layers, width 128, 4 heads."""

    n_elements: int  # operand/answer symbols; the vocabulary adds the operator and "="
    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512  # 4 * d_model, as in Vaswani et al.
    # "pre" (GPT-2 style, final LayerNorm), "post" (Vaswani et al. 2017) or "none" (no LayerNorm
    # at all, as in Nanda et al. 2023's modular-addition model)
    norm: str = "pre"
    activation: str = "relu"
    arch: str = "grokkit"
    # openai-grok only: its shared vocabulary (grokkit.openai_grok.token_layout); element i is
    # token first_element_token + i.
    vocabulary_size: int = 0
    first_element_token: int = 0
    operator_token: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.arch == "openai-grok":
            if self.norm != "post":
                raise ConfigError(
                    "--arch openai-grok has post-LN blocks (as the authors' code); "
                    f"--norm {self.norm} cannot be honoured"
                )
            if self.d_mlp != 4 * self.d_model:
                raise ConfigError(
                    f"--arch openai-grok has an MLP of width 4 * d_model = {4 * self.d_model}; "
                    f"--d-mlp {self.d_mlp} cannot be honoured"
                )
            if self.vocabulary_size < self.first_element_token + self.n_elements:
                raise ConfigError(
                    "openai-grok model config without its vocabulary (use RunConfig.model_config)"
                )
        if self.n_elements < 1:
            raise ConfigError(f"n_elements must be >= 1, got {self.n_elements}")
        if self.n_layers < 1:
            raise ConfigError(f"n_layers must be >= 1, got {self.n_layers}")
        if self.d_model < 1 or self.n_heads < 1 or self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model ({self.d_model}) must be a positive multiple of n_heads ({self.n_heads})"
            )
        if self.d_mlp < 1:
            raise ConfigError(f"d_mlp must be >= 1, got {self.d_mlp}")
        if self.norm not in NORMS:
            raise ConfigError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.activation not in ACTIVATION_NAMES:
            raise ConfigError(
                f"activation must be one of {sorted(ACTIVATION_NAMES)}, got {self.activation!r}"
            )

    @property
    def openai(self) -> bool:
        return self.arch == "openai-grok"

    @property
    def vocab_size(self) -> int:
        return self.vocabulary_size if self.openai else self.n_elements + 2

    @property
    def op_token(self) -> int:
        return self.operator_token if self.openai else self.n_elements

    @property
    def eq_token(self) -> int:
        return 1 if self.openai else self.n_elements + 1

    @property
    def element_offset(self) -> int:
        """Token id of element 0 (elements are consecutive tokens in both vocabularies)."""
        return self.first_element_token if self.openai else 0

    def element_tokens(self) -> slice:
        """The token ids of the elements, as a slice of the vocabulary axis."""
        return slice(self.element_offset, self.element_offset + self.n_elements)

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- weights: names, shapes, layout


def parameter_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of one member's weights, in a fixed order (the order of the flat parameter vector,
    so of every checkpoint: never reorder)."""
    if cfg.openai:
        return _openai_parameter_shapes(cfg)
    d, V, m = cfg.d_model, cfg.vocab_size, cfg.d_mlp
    shapes: dict[str, tuple[int, ...]] = {"W_E": (V, d), "W_pos": (SEQUENCE_LENGTH, d)}
    block = {
        "ln1_w": (d,),
        "ln1_b": (d,),
        "W_Q": (d, d),
        "b_Q": (d,),
        "W_K": (d, d),
        "b_K": (d,),
        "W_V": (d, d),
        "b_V": (d,),
        "W_O": (d, d),
        "b_O": (d,),
        "ln2_w": (d,),
        "ln2_b": (d,),
        "W_in": (d, m),
        "b_in": (m,),
        "W_out": (m, d),
        "b_out": (d,),
    }
    if cfg.norm == "none":
        block = {name: shape for name, shape in block.items() if not name.startswith("ln")}
    for layer in range(cfg.n_layers):
        shapes.update({f"blocks.{layer}.{name}": shape for name, shape in block.items()})
    if cfg.norm == "pre":
        shapes.update({"ln_f_w": (d,), "ln_f_b": (d,)})
    shapes["W_U"] = (d, V)
    return shapes


def _openai_parameter_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """grok/transformer.py: no biases in any projection, LayerNorms with weight and bias after
    each residual add, no final LayerNorm, positions a fixed buffer (not a parameter). Their
    per-head Wq/Wk/Wv [d_key, d] sit side by side as the columns of W_Q/W_K/W_V [d, d]."""
    d, V, m = cfg.d_model, cfg.vocab_size, cfg.d_mlp
    shapes: dict[str, tuple[int, ...]] = {"W_E": (V, d)}
    block = {
        "W_Q": (d, d),
        "W_K": (d, d),
        "W_V": (d, d),
        "W_O": (d, d),
        "ln1_w": (d,),
        "ln1_b": (d,),
        "W_in": (d, m),
        "W_out": (m, d),
        "ln2_w": (d,),
        "ln2_b": (d,),
    }
    for layer in range(cfg.n_layers):
        shapes.update({f"blocks.{layer}.{name}": shape for name, shape in block.items()})
    shapes["W_U"] = (d, V)
    return shapes


@functools.lru_cache(maxsize=None)
def parameter_layout(cfg: ModelConfig) -> tuple[tuple[str, int, int, tuple[int, ...]], ...]:
    """(name, offset, size, shape) of each weight in the flat parameter vector, in order."""
    layout, offset = [], 0
    for name, shape in parameter_shapes(cfg).items():
        size = math.prod(shape)
        layout.append((name, offset, size, shape))
        offset += size
    return tuple(layout)


HIDDEN_MATRICES = ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out")


def hidden_matrices(cfg: ModelConfig) -> tuple[tuple[str, int, tuple[int, int], int], ...]:
    """(name, offset, shape, pieces) of each 2-D weight matrix of the blocks (``HIDDEN_MATRICES``),
    in layout order: what ``--muon`` updates by Muon. ``pieces``: how many PyTorch modules' weights
    the matrix holds side by side as blocks of columns: openai-grok's W_Q, W_K and W_V hold one
    ``Linear(d_model, d_key)`` per head (grok/transformer.py's AttentionHead); 1 otherwise."""
    heads = cfg.n_heads if cfg.openai else 1
    return tuple(
        (name, offset, shape, heads if leaf in ("W_Q", "W_K", "W_V") else 1)
        for name, offset, _, shape in parameter_layout(cfg)
        if name.startswith("blocks.") and (leaf := name.rsplit(".", 1)[-1]) in HIDDEN_MATRICES
    )


def norm_groups(cfg: ModelConfig) -> dict[str, list[str]]:
    """The model's parts whose weight norms metrics.csv records: ``embed`` (W_E, W_pos), each
    ``block_L``, and ``unembed`` (the final LayerNorm, if any, and W_U)."""
    names = parameter_shapes(cfg)
    groups: dict[str, list[str]] = {"embed": [n for n in ("W_E", "W_pos") if n in names]}
    for name in names:
        if name.startswith("blocks."):
            groups.setdefault("block_" + name.split(".")[1], []).append(name)
    groups["unembed"] = [n for n in names if n.startswith("ln_f") or n == "W_U"]
    return groups


def count_parameters(cfg: ModelConfig, embeddings: bool = True) -> int:
    total = 0
    for name, shape in parameter_shapes(cfg).items():
        if not embeddings and name in ("W_E", "W_pos", "W_U"):
            continue
        total += math.prod(shape)
    return total


# Training holds per parameter: the weights, their gradient, Adam's two moments and a spare copy
# (a Grokfast filter, the decay target), each float32.
TRAINING_BYTES_PER_PARAMETER = 5 * 4
# Activations per example, layer and unit of width, forward and backward, at most 6 positions.
ACTIVATION_BYTES_PER_UNIT = 2 * 6 * 4


def training_bytes(cfg: ModelConfig, batch_size: int) -> int:
    """A generous estimate of the memory one run of this model takes to train."""
    units = 8 * cfg.d_model + 2 * cfg.d_mlp
    activations = batch_size * cfg.n_layers * units * ACTIVATION_BYTES_PER_UNIT
    return count_parameters(cfg) * TRAINING_BYTES_PER_PARAMETER + activations


def check_model_size(cfg: ModelConfig, batch_size: int, memory: tuple[int, str] | None) -> None:
    """Refuse, before anything is allocated or written, a model that cannot train in half of
    ``memory`` (``ops.available_memory``: bytes and whose they are, as for tables; None: no
    limit known)."""
    # ops is light, but model must not depend on it at import
    from grokkit.ops import byte_size_text, memory_text

    needed = training_bytes(cfg, batch_size)
    if memory is not None and needed > memory[0] // 2:
        raise ConfigError(
            f"a model of width {cfg.d_model}, MLP {cfg.d_mlp} and {cfg.n_layers} layers has "
            f"{count_parameters(cfg):,} parameters (about {byte_size_text(needed)} to train), "
            f"more than half of {memory_text(memory)}; "
            "choose a smaller --d-model, --d-mlp or --layers"
        )


# ---------------------------------------------------------------- initialisation

INIT_SCHEMES = ("pytorch", "nanda")


def check_init_scheme(scheme: str) -> None:
    if scheme not in INIT_SCHEMES:
        raise ConfigError(
            f"unknown init scheme {scheme!r}; choose one of: {', '.join(INIT_SCHEMES)}"
        )
