"""Losses on the answer token: what training minimises and what evaluation reports.

Every loss here maps logits ``[..., V]`` and integer labels ``[...]`` to per-example losses
``[...]``, so the population can take each member's own mean (training) or masked means over the
training and validation sets (evaluation). Accuracy is the argmax of the logits whatever the loss
(StableMax, like softmax, is increasing in each logit, so both predict the same class).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def softmax_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """−log softmax(logits)[label] per example (the paper's loss)."""
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), reduction="none").view(
        labels.shape
    )


def _stablemax_s(x: Tensor) -> Tensor:
    """s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0: positive, increasing, and linear rather
    than exponential, so it neither overflows nor underflows to an exact zero."""
    return torch.where(x < 0, 1 / (1 - torch.clamp(x, max=0)), x + 1)


def stablemax_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """−log StableMax(logits)[label] per example (Prieto et al. 2025), StableMax(x)_i =
    s(x_i) / sum_j s(x_j). Computed in float64, as the authors' code does, and returned in the
    logits' dtype. (The clamp keeps the unused branch of ``where`` finite, so no NaN gradient.)"""
    s = _stablemax_s(logits.to(torch.float64))
    log_p = torch.log(s.gather(-1, labels.unsqueeze(-1)).squeeze(-1)) - torch.log(s.sum(dim=-1))
    return (-log_p).to(logits.dtype)


LOSSES = {"softmax": softmax_cross_entropy, "stablemax": stablemax_cross_entropy}


def softmax_collapse(logits: Tensor) -> Tensor:
    """Per example, whether softmax has collapsed in float32 (Prieto et al. 2025): the sum of
    exp(x_j - max x) is exactly 1, every other class's term having vanished in rounding, so the
    cross-entropy gradient of a correctly classified example is exactly zero. The authors'
    diagnostic, computed the way their logger does."""
    x = logits.to(torch.float32)
    return torch.exp(x - x.amax(dim=-1, keepdim=True)).sum(dim=-1) == 1
