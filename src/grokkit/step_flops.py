"""How much arithmetic a run's training takes, counted from its model's shapes.

The count is the dense model's, what a plain PyTorch implementation of the network computes: per
example and layer, the four d x d projections of every position, the attention scores and their
weighted sum, the MLP's two products, then the unembedding of each scored position. A product of
an [a, b] by a [b, c] matrix counts 2abc FLOPs; the backward pass counts twice the forward (the
gradients with respect to the inputs and to the weights); LayerNorm, softmax, activations and the
optimizer are left out (a few per cent at the paper's shape), but for Muon's Newton-Schulz products
(``--muon``: about a quarter of a step at the paper's shape). ``grokkit.fast_path`` computes the
same function with less arithmetic, so a measured step time against this count is the rate of the
dense-equivalent work.

The sweep uses ``run_flops`` to balance its populations across workers (``sweep.balance_workers``).
"""

from __future__ import annotations

from grokkit.config import RunConfig
from grokkit.model_config import (
    OPENAI_SEQUENCE_LENGTH,
    SEQUENCE_LENGTH,
    ModelConfig,
    hidden_matrices,
)
from grokkit.ops import get_operation
from grokkit.optim import NS_STEPS
from grokkit.train import evaluation_count


def forward_flops_per_example(model: ModelConfig) -> int:
    """FLOPs of one example's forward pass through the dense model."""
    d, m = model.d_model, model.d_mlp
    T = OPENAI_SEQUENCE_LENGTH if model.openai else SEQUENCE_LENGTH
    scored = 2 if model.openai else 1  # the authors score "=" -> c and c -> <eos>
    projections = 4 * T * d * d
    attention = 2 * T * T * d  # scores q.k and the weighted sum of the values
    mlp = 2 * T * d * m
    per_layer = 2 * (projections + attention + mlp)
    return model.n_layers * per_layer + 2 * scored * d * model.vocab_size


def training_step_flops(model: ModelConfig, batch_size: int) -> int:
    """FLOPs of one training step of one member: forward and backward over a minibatch."""
    return 3 * batch_size * forward_flops_per_example(model)


def muon_flops(model: ModelConfig) -> int:
    """FLOPs of Muon's orthogonalisation in one update of one member: on each module's weight of
    each hidden matrix, iterated as [r, c] with r <= c, every Newton-Schulz step forms X X^T, its
    square, and the product with X."""
    total = 0
    for _, _, (rows, cols), pieces in hidden_matrices(model):
        r, c = sorted((rows, cols // pieces))
        total += pieces * NS_STEPS * (4 * r * r * c + 2 * r**3)
    return total


def run_flops(config: RunConfig, start_step: int = 0) -> int:
    """FLOPs a run still has to compute from ``start_step``: its training steps and its
    evaluations of the whole table (forward passes only)."""
    operation = get_operation(config.operation, config.modulus)
    model = config.model_config(operation.n_elements)
    n_train = round(config.train_fraction * operation.n_equations)
    batch = config.optimizer.resolve_batch_size(n_train)
    steps = max(0, config.steps - start_step)
    evaluations = evaluation_count(config, start_step)
    forward = forward_flops_per_example(model)
    step = training_step_flops(model, batch) + (muon_flops(model) if config.optimizer.muon else 0)
    return steps * step + evaluations * operation.n_equations * forward
