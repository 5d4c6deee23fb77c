"""Export a grokkit model to a TransformerLens ``HookedTransformer`` (and save / load the export).

``to_hooked_transformer(model_config, weights)`` builds a HookedTransformer that computes the same
function as grokkit's ``forward_reference``: its logits on tokens ``[B, 4]`` equal grokkit's at
every position to float tolerance (the tests compare them on the whole table at atol 1e-5). The
weights are mapped as they are, with no TransformerLens weight processing (no LayerNorm folding,
no centring), so every matrix in the export is the trained matrix, only reshaped per head.

Tokens map one to one: a sequence is ``[x, op, y, =]`` with the operator token ``n_elements`` and
"=" ``n_elements + 1`` (vocabulary ``n_elements + 2``, context 4), no BOS token, no tokenizer:
pass integer tensors. The answer is read at position 3, ``logits[:, 3]``.

Normalisation:

* ``norm="pre"`` (GPT-2 style) is TransformerLens's own ``normalization_type="LN"``: ``ln1`` before
  attention, ``ln2`` before the MLP and ``ln_final`` before the unembedding, eps 1e-5.
* ``norm="post"`` (Vaswani et al.: ``h = LN1(h + attn(h)); h = LN2(h + mlp(h))``, no final LN)
  has no TransformerLens option. The export is built with ``normalization_type=None`` and each
  block gets two extra submodules, ``ln1_post`` and ``ln2_post`` (weights ``w`` and ``b``, listed
  in ``state_dict()`` and ``parameters()``), applied by *permanent* hooks on
  ``blocks.L.hook_resid_mid`` and ``blocks.L.hook_resid_post``. TransformerLens's block feeds the
  MLP and the next residual add from what those hook points return, so the computation is exactly
  post-LN. What that means for users:

  - the cached ``hook_resid_mid`` / ``hook_resid_post`` (and so every later ``hook_resid_pre``)
    hold the *normalised* stream; a hook added on those points sees, and replaces, the normalised
    value (unless added with ``prepend=True``, when it sees the sum before the LayerNorm);
  - ``reset_hooks()`` keeps the LayerNorms (it keeps permanent hooks by default), but
    ``reset_hooks(including_permanent=True)`` silently removes them and changes the model;
  - ``ln1_post`` / ``ln2_post`` mean "LayerNorm after the residual add" here, not
    TransformerLens's Gemma-style norm of a sublayer's output;
  - TransformerLens's LayerNorm-aware tools (``fold_ln``, ``apply_ln_to_stack``, logit
    attribution through ``ln_final``) do not know about these norms.

``arch="openai-grok"`` (the authors' network) is post-LN as above, with context 6 (tokens
``<eos> x op y = c`` of its shared vocabulary, see grokkit.openai_grok), its fixed sinusoidal
positions written into ``W_pos`` and every bias zero; its answer is ``logits[:, 4]`` and the
closing ``<eos>`` is predicted at ``logits[:, 5]``.

``save_hooked_transformer`` writes ``config.json`` (the HookedTransformerConfig settings, grokkit's
model config and where the weights came from) and ``state_dict.pt``; ``load_hooked_transformer``
rebuilds the model, post-LN hooks included, loading the weights without running code.

TransformerLens is an optional extra (``pip install 'grokkit[transformer-lens]'``); this module
imports without it and only the functions that build a model need it.
"""

from __future__ import annotations

import io
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grokkit import openai_grok
from grokkit.errors import InputError
from grokkit.model import OPENAI_SEQUENCE_LENGTH, SEQUENCE_LENGTH, ModelConfig, parameter_shapes
from grokkit.runs import DamagedFileError, atomic_write_bytes, load_tensors, read_json, write_json

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

CONFIG_FILE = "config.json"
STATE_DICT_FILE = "state_dict.pt"
EXPORT_FORMAT = "grokkit-hooked-transformer"
EXPORT_VERSION = 1
LAYER_NORM_EPS = 1e-5  # F.layer_norm's default, which grokkit's model uses
POST_LN_MODULES = ("ln1_post", "ln2_post")  # the post-LN submodules added to each block
# Hook point each post-LN submodule is applied on (its output replaces the hook point's value).
_POST_LN_HOOK_POINTS = {"ln1_post": "hook_resid_mid", "ln2_post": "hook_resid_post"}


def _import_transformer_lens():
    """(HookedTransformer, HookedTransformerConfig), or a one-line InputError if not installed.

    A function-level import on purpose: TransformerLens is an optional extra, and importing it takes
    seconds, which the rest of grokkit (and its CLI start-up) should not pay."""
    try:
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    except ImportError:
        raise InputError(
            "exporting to a HookedTransformer needs TransformerLens: "
            "pip install 'grokkit[transformer-lens]'"
        ) from None
    return HookedTransformer, HookedTransformerConfig


# ---------------------------------------------------------------- building the model


def hooked_transformer_settings(model_config: ModelConfig) -> dict:
    """The HookedTransformerConfig settings of the export, JSON-friendly (dtype as a name)."""
    return {
        "n_layers": model_config.n_layers,
        "d_model": model_config.d_model,
        "n_heads": model_config.n_heads,
        "d_head": model_config.d_head,
        "d_mlp": model_config.d_mlp,
        "d_vocab": model_config.vocab_size,
        "d_vocab_out": model_config.vocab_size,
        "n_ctx": OPENAI_SEQUENCE_LENGTH if model_config.openai else SEQUENCE_LENGTH,
        # TransformerLens's "gelu" is F.gelu (exact erf form), as is grokkit's; "relu" is F.relu.
        "act_fn": model_config.activation,
        # Post-LN is realised by hooks (see the module docstring); TransformerLens has no LN then.
        "normalization_type": "LN" if model_config.norm == "pre" else None,
        "eps": LAYER_NORM_EPS,
        "positional_embedding_type": "standard",
        "attention_dir": "causal",
        "default_prepend_bos": False,
        "tokenizer_name": None,
        "model_name": "grokkit",
        "dtype": "float32",
        "device": "cpu",
    }


class PostLayerNorm(nn.Module):
    """LayerNorm of the residual stream after a sublayer's residual add (post-LN), with the
    parameter names of TransformerLens's LayerNorm (``w``, ``b``)."""

    def __init__(self, d_model: int, eps: float = LAYER_NORM_EPS):
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w, self.b, self.eps)


def _post_ln_hook(norm: PostLayerNorm):
    """A TransformerLens hook function (activation, hook) that returns the normalised activation."""

    def apply_post_ln(activation: Tensor, hook) -> Tensor:
        return norm(activation)

    return apply_post_ln


def _add_post_layer_norms(model: HookedTransformer, d_model: int) -> None:
    """Register each block's post-LN submodules and the permanent hooks that apply them."""
    for layer, block in enumerate(model.blocks):
        for module_name in POST_LN_MODULES:
            norm = PostLayerNorm(d_model)
            block.add_module(module_name, norm)
            hook_name = f"blocks.{layer}.{_POST_LN_HOOK_POINTS[module_name]}"
            model.add_hook(hook_name, _post_ln_hook(norm), is_permanent=True)


def _build_skeleton(model_config: ModelConfig) -> HookedTransformer:
    """An export-shaped HookedTransformer (post-LN included) whose weights are not yet set."""
    HookedTransformer, HookedTransformerConfig = _import_transformer_lens()
    settings = hooked_transformer_settings(model_config)
    settings["dtype"] = getattr(torch, settings["dtype"])
    # init_weights=False: every weight is overwritten, and TransformerLens's initialisation would
    # draw from (and so advance) the global random number generator.
    tl_config = HookedTransformerConfig(**settings, init_weights=False)
    with warnings.catch_warnings():
        # TransformerLens 3.x deprecates HookedTransformer in favour of 4.0's TransformerBridge,
        # which needs a Hugging Face checkpoint; grokkit pins transformer-lens < 4 for this reason.
        warnings.filterwarnings(
            "ignore", message="HookedTransformer is deprecated", category=DeprecationWarning
        )
        model = HookedTransformer(tl_config)
    if model_config.norm == "post":
        _add_post_layer_norms(model, model_config.d_model)
    return model.eval()


def _check_weights(model_config: ModelConfig, weights: dict[str, Tensor]) -> None:
    expected = parameter_shapes(model_config)
    missing = [name for name in expected if name not in weights]
    unexpected = [name for name in weights if name not in expected]
    if missing or unexpected:
        raise InputError(
            "the weights do not fit the model config: "
            f"missing {missing[:5] or 'none'}, unexpected {unexpected[:5] or 'none'}"
        )
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            raise InputError(
                f"the weight {name} has shape {tuple(weights[name].shape)}, the model needs {shape}"
            )


def _tl_weights(model_config: ModelConfig, weights: dict[str, Tensor]) -> dict[str, Tensor]:
    """grokkit's weights under TransformerLens's names and per-head shapes (values unchanged)."""
    d, H, dh = model_config.d_model, model_config.n_heads, model_config.d_head
    V = model_config.vocab_size
    w = {k: v.detach() for k, v in weights.items()}
    if model_config.openai:
        # The authors' network: fixed sinusoidal positions (a learned W_pos that is never trained
        # here) and no biases (zeros). Its logits at "=" and at c are positions 4 and 5.
        w["W_pos"] = openai_grok.position_encoding(OPENAI_SEQUENCE_LENGTH, d)
        for layer in range(model_config.n_layers):
            b = f"blocks.{layer}."
            for n, size in (
                ("b_Q", d),
                ("b_K", d),
                ("b_V", d),
                ("b_O", d),
                ("b_in", model_config.d_mlp),
                ("b_out", d),
            ):
                w[b + n] = torch.zeros(size)
    out = {"embed.W_E": w["W_E"], "pos_embed.W_pos": w["W_pos"], "unembed.W_U": w["W_U"]}
    out["unembed.b_U"] = torch.zeros(V)  # grokkit's unembedding has no bias
    for layer in range(model_config.n_layers):
        b = f"blocks.{layer}."
        for n in "QKV":
            # grokkit: q = h @ W_Q [d, d], columns head-major -> TransformerLens W_Q [H, d, dh].
            out[f"{b}attn.W_{n}"] = w[f"{b}W_{n}"].reshape(d, H, dh).permute(1, 0, 2)
            out[f"{b}attn.b_{n}"] = w[f"{b}b_{n}"].reshape(H, dh)
        # grokkit: z (heads concatenated, head-major) @ W_O [d, d] -> W_O [H, dh, d].
        out[f"{b}attn.W_O"] = w[f"{b}W_O"].reshape(H, dh, d)
        out[f"{b}attn.b_O"] = w[f"{b}b_O"]
        for n in ("W_in", "b_in", "W_out", "b_out"):
            out[f"{b}mlp.{n}"] = w[b + n]
        # Pre-LN: TransformerLens's own ln1 / ln2; post-LN: the submodules the hooks apply;
        # no LayerNorm (norm "none"): nothing to map.
        ln1, ln2 = ("ln1", "ln2") if model_config.norm == "pre" else POST_LN_MODULES
        for ours, theirs in (("ln1", ln1), ("ln2", ln2)) if model_config.norm != "none" else ():
            out[f"{b}{theirs}.w"] = w[f"{b}{ours}_w"]
            out[f"{b}{theirs}.b"] = w[f"{b}{ours}_b"]
    if model_config.norm == "pre":
        out["ln_final.w"], out["ln_final.b"] = w["ln_f_w"], w["ln_f_b"]
    return out


def to_hooked_transformer(
    model_config: ModelConfig, weights: dict[str, Tensor]
) -> HookedTransformer:
    """A HookedTransformer (float32, CPU, eval mode) computing the same logits as grokkit's model
    with these weights (one member's, as ``unflatten(flat, cfg)`` gives them). The weights are
    copied, so the export does not share memory with the training state."""
    _check_weights(model_config, weights)
    model = _build_skeleton(model_config)
    # Start from the model's own state dict so its buffers (attn.mask, attn.IGNORE) are kept.
    state = model.state_dict()
    mapped = _tl_weights(model_config, weights)
    unknown = sorted(set(mapped) - set(state))
    if unknown:  # a TransformerLens version that names its weights differently
        raise RuntimeError(f"the HookedTransformer has no weights named {unknown[:5]}")
    state.update(mapped)
    model.load_state_dict(state)
    return model


# ---------------------------------------------------------------- saving and loading


def save_hooked_transformer(
    model: HookedTransformer, out_dir: Path, grokkit_model_config: ModelConfig, source: dict
) -> None:
    """Write ``out_dir/state_dict.pt`` and ``out_dir/config.json`` (each atomically).

    ``source`` (JSON-serialisable) says where the weights came from, e.g. the run folder and step.
    The state dict is written first: ``config.json`` appears only once the weights are in place.
    """
    out_dir = Path(out_dir)
    expected = _build_skeleton(grokkit_model_config).state_dict()
    actual = model.state_dict()
    if {k: v.shape for k, v in actual.items()} != {k: v.shape for k, v in expected.items()}:
        raise InputError(
            "the HookedTransformer does not match the grokkit model config it is saved with"
        )
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in actual.items()}, buf)
    atomic_write_bytes(out_dir / STATE_DICT_FILE, buf.getvalue())
    write_json(
        out_dir / CONFIG_FILE,
        {
            "format": EXPORT_FORMAT,
            "format_version": EXPORT_VERSION,
            "transformer_lens_version": _transformer_lens_version(),
            "hooked_transformer_config": hooked_transformer_settings(grokkit_model_config),
            "post_ln": _post_ln_note(grokkit_model_config),
            "grokkit_model_config": grokkit_model_config.to_dict(),
            "source": source,
        },
    )


def _transformer_lens_version() -> str | None:
    try:
        return metadata.version("transformer-lens")
    except metadata.PackageNotFoundError:
        return None


def _post_ln_note(model_config: ModelConfig) -> str | None:
    """How a reader rebuilding the model by hand must apply the post-LN weights (None: pre-LN or
    no LayerNorm)."""
    if model_config.norm != "post":
        return None
    return (
        "blocks.L.ln1_post (w, b) is a LayerNorm (eps 1e-5) applied to blocks.L.hook_resid_mid "
        "and blocks.L.ln2_post to blocks.L.hook_resid_post, as permanent hooks"
    )


def load_hooked_transformer(out_dir: Path) -> HookedTransformer:
    """The HookedTransformer saved in ``out_dir`` (post-LN hooks included). A missing or damaged
    file raises an InputError naming it; the weights load without running code."""
    out_dir = Path(out_dir)
    config_path, state_path = out_dir / CONFIG_FILE, out_dir / STATE_DICT_FILE
    if not out_dir.is_dir():
        raise InputError(f"{config_path} does not exist: {out_dir} is not a folder")
    model_config = _read_export_config(config_path)
    state = _read_state_dict(state_path)
    model = _build_skeleton(model_config)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # missing, unexpected or wrongly shaped weights
        first = str(e).strip().splitlines()[0]
        raise DamagedFileError(
            f"{state_path} is damaged: its weights do not fit the model in {config_path} "
            f"({first[:160]})"
        ) from None
    return model


def _read_export_config(path: Path) -> ModelConfig:
    config = read_json(path)  # one-line InputError for a missing, unreadable or invalid file
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        raise DamagedFileError(f"{path} is damaged: it is not a grokkit HookedTransformer export")
    if config.get("format_version") != EXPORT_VERSION:
        raise DamagedFileError(
            f"{path} has export format version {config.get('format_version')!r}; "
            f"this grokkit reads version {EXPORT_VERSION}"
        )
    stored = config.get("grokkit_model_config")
    try:
        model_config = ModelConfig(**stored)
    except InputError as e:
        raise DamagedFileError(f"{path} is damaged: {e}") from None
    except TypeError:  # not a mapping, or unknown / missing settings
        problem = "'grokkit_model_config' is not a model config"
        raise DamagedFileError(f"{path} is damaged: {problem}") from None
    if config.get("hooked_transformer_config") != hooked_transformer_settings(model_config):
        raise DamagedFileError(
            f"{path} is damaged: its TransformerLens settings do not match its grokkit model config"
        )
    return model_config


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """The saved weights, loaded with ``weights_only=True``: a file that holds anything but
    tensors and plain containers is refused unread, so loading it cannot run code."""
    state = load_tensors(path, "state dict")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise DamagedFileError(f"{path} is damaged: expected a dictionary of named tensors")
    return state
