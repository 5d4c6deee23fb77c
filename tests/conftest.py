import os
import tempfile

import pytest
import torch

# The measured backend choices (grokkit.backend_choice) are cached per machine; tests keep theirs.
os.environ["GROKKIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="grokkit-test-cache-")
# An explicit thread count, as a user's OMP_NUM_THREADS would be: commands then keep the thread
# setting they find instead of sampling the machine's load (whose one-line note would vary with
# whatever else runs), and a test's subprocesses use one thread each, like the tests themselves.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from grokkit.config import RunConfig


@pytest.fixture(autouse=True)
def _one_thread():
    # One thread: tiny test models run fastest on one, and two processes each spinning two
    # OpenMP threads on two cores slow each other down a hundredfold.
    torch.set_num_threads(1)


def tiny_run(**changes) -> RunConfig:
    """A run small enough to train a few dozen steps in well under a second."""
    base = RunConfig(
        operation="x+y",
        modulus=11,
        train_fraction=0.5,
        steps=20,
        eval_every=5,
        checkpoint_every=10,
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_mlp=64,
    )
    return base.with_changes(**{"batch_size": 16, **changes})
