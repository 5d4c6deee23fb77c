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

from grokkit import backend_choice  # noqa: E402
from grokkit.config import RunConfig  # noqa: E402

# Whether torch.compile pays is measured once per machine (tens of seconds, a cold compile): the
# suite's runs are tiny, so it is recorded here as not paying, for every thread count a test may
# use. tests/test_backend.py tests the measurement and the decision in caches of its own.
for _threads in range(1, 9):
    backend_choice._write_cache(
        f"{backend_choice.cache_key(_threads)}|compile",
        {"eager": 1.0, "compiled": 1.0, "compile_s": 60.0},
    )


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
