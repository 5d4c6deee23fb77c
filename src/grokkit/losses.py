"""Losses on the answer token: what training minimises and what evaluation reports.

Every loss here maps logits ``[..., V]`` and integer labels ``[...]`` to per-example losses
``[...]``, so the population can take each member's own mean (training) or masked means over the
training and validation sets (evaluation). Accuracy is the argmax of the logits whatever the loss.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def softmax_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """−log softmax(logits)[label] per example (the paper's loss)."""
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), reduction="none").view(labels.shape)

