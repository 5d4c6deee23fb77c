"""The machine's measured limit: the rate of a large matrix product, and a step's share of it.

A training step of the paper's model is a few hundred small products; how close its rate comes
to what the same threads reach on one large, square product is the fraction of peak that
``grokkit bench`` reports (its roofline). The peak is measured, not read from a datasheet: the
fastest of a few timed products after a warm-up, at the thread count in use, in float32 and in
bfloat16 (a CPU without native bfloat16 products emulates them, and its bfloat16 "peak" then
shows that it does).
"""

from __future__ import annotations

import time

import torch

# Large enough to be compute-bound; bfloat16 smaller, since emulated it runs ~100x slower.
PEAK_SIZE = {torch.float32: 2048, torch.bfloat16: 512}


def gemm_peak_gflops(dtype: torch.dtype = torch.float32, repeats: int = 3) -> float:
    """GFLOP/s of an n x n by n x n product in ``dtype`` on the CPU (2n^3 FLOPs), the fastest of
    ``repeats`` after one untimed product (a peak: other load only ever slows a product down)."""
    n = PEAK_SIZE.get(dtype, 1024)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dtype)
    b = torch.randn(n, n, generator=g).to(dtype)
    out = torch.empty(n, n, dtype=dtype)
    torch.mm(a, b, out=out)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        seconds.append(time.perf_counter() - start)
    return 2 * n**3 / min(seconds) / 1e9


def fraction_of_peak(flops: float, seconds: float, peak_gflops: float) -> float:
    """The share of the peak rate that ``flops`` computed in ``seconds`` reach."""
    return flops / seconds / (peak_gflops * 1e9)
