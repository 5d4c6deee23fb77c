"""The GPU path, checked without a GPU.

PyTorch's ``meta`` device holds shapes without data: an op mixing a CPU tensor into it raises, and
anything that reads a value back (``.item()``, ``.tolist()``, ``bool(t)``: a host-device sync on a
GPU) raises too. A population's step and evaluation therefore run on ``meta`` exactly when they
keep every tensor on the population's device and never wait for it. ``FakeTensorMode`` gives a
fake ``cuda`` device the same way, for the fused optimizer kernel that ``meta`` lacks. What this
does not check: numerics and speed on a real GPU (benchmarks/gpu.sh measures those).
"""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from grokkit import backend_choice, runs
from grokkit.config import RunConfig
from grokkit.devices import describe_cpuinfo
from grokkit.errors import GrokkitWarning
from grokkit.optim import BatchedAdamW, preset
from grokkit.population import Population
from grokkit.sweep import default_jobs, executors

TINY = RunConfig(operation="x+y", modulus=11, n_layers=1, d_model=16, n_heads=2, d_mlp=32)
VARIANTS = {
    "paper (AdamW)": TINY,
    "weight noise": TINY.with_changes(
        optimizer=preset("adam-weight-noise"), preset="adam-weight-noise"
    ),
    "full batch, update noise": TINY.with_changes(optimizer=preset("adam-full-batch-update-noise")),
    "dropout": TINY.with_changes(optimizer=preset("adam-dropout")),
    "decay to init": TINY.with_changes(optimizer=preset("adamw-to-init")),
    "grokfast ema": TINY.with_changes(grad_filter="ema"),
    "grokfast ma": TINY.with_changes(grad_filter="ma", grad_filter_window=2),
    "orthogonal grad": TINY.with_changes(orthogonal_grad=True),
    "stablemax, l2": TINY.with_changes(loss="stablemax", l2=0.01),
    "post-ln, gelu": TINY.with_changes(norm="post", activation="gelu"),
    "openai-grok": TINY.with_changes(arch="openai-grok"),
    "openai-grok, dropout": TINY.with_changes(arch="openai-grok", optimizer=preset("adam-dropout")),
    "muon, fixed norm, update noise": TINY.with_changes(
        muon=True, fixed_norm=True, update_noise=1.0, l2=0.01
    ),
    "openai-grok, muon": TINY.with_changes(arch="openai-grok", muon=True),
}


class CpuTensors(TorchDispatchMode):
    """Records every op that produces a CPU tensor."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(o, torch.Tensor) and o.device.type == "cpu":
                self.ops.append(str(func))
        return out


@pytest.mark.parametrize("name", list(VARIANTS))
def test_a_step_keeps_every_tensor_on_the_device_and_never_syncs(name):
    config = VARIANTS[name]
    pop = Population([config, config.with_changes(seed=1)], device="meta")
    n_train, batch = pop.members[0].n_train, pop.batch_size
    for step in range(6):
        epoch_starts = (step * batch) % n_train + batch > n_train or step * batch % n_train == 0
        recorder = CpuTensors()
        with recorder:
            losses = pop.step()  # a sync or a CPU tensor mixed into device math would raise here
        assert losses.device.type == "meta" and pop.flat.device.type == "meta"
        # The only CPU work: drawing a new epoch's order (on the CPU, so that the data order is the
        # same on every device), copied to the device once per epoch, never per step.
        assert set(recorder.ops) <= {"aten.randperm.generator"}, recorder.ops
        if not epoch_starts:
            assert not recorder.ops, f"step {step}: {recorder.ops}"


@pytest.mark.parametrize(
    "config", [TINY, TINY.with_changes(arch="openai-grok")], ids=["grokkit", "openai-grok"]
)
def test_the_evaluation_stays_on_the_device_until_its_one_copy(config):
    pop = Population([config, config.with_changes(seed=1)], device="meta")
    recorder = CpuTensors()
    with recorder:
        metrics = pop.evaluate_on_device()
    assert not recorder.ops
    assert {v.device.type for v in metrics.values()} == {"meta"}
    assert all(v.shape == (2,) for v in metrics.values())


def test_fused_adamw_on_a_fake_cuda_device():
    configs = [preset("adamw"), preset("adamw")]
    with FakeTensorMode():
        flat = torch.randn(2, 100, device="cuda")
        optimizer = BatchedAdamW(configs, flat)
        assert optimizer.fused
        for _ in range(3):  # a sync (DataDependentOutputException) or a CPU tensor would raise
            optimizer.step(flat, torch.randn(2, 100, device="cuda"))
        assert flat.device.type == "cuda"


class CountingFused:
    def __init__(self, real):
        self.real, self.calls = real, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.real(*args, **kwargs)


@pytest.mark.parametrize("lrs,calls", [((1e-3,) * 4, 1), ((1e-3, 1e-3, 3e-4, 1e-3), 2)])
def test_fused_adamw_runs_once_per_set_of_shared_hyperparameters(monkeypatch, lrs, calls):
    from dataclasses import replace

    configs = [replace(preset("adamw"), lr=lr) for lr in lrs]
    flat = torch.randn(len(lrs), 50, dtype=torch.float32)
    grad = torch.randn_like(flat)
    counter = CountingFused(torch._fused_adamw_)
    monkeypatch.setattr(torch, "_fused_adamw_", counter)
    optimizer = BatchedAdamW(configs, flat.clone(), fused=True)
    got = flat.clone()
    optimizer.step(got, grad)
    assert counter.calls == calls
    # Each member equals torch.optim.AdamW on its own row, to the last bit.
    monkeypatch.undo()
    for e, c in enumerate(configs):
        w = flat[e].clone().requires_grad_()
        reference = torch.optim.AdamW(
            [w],
            lr=c.lr_at(1),
            betas=(c.beta1, c.beta2),
            eps=c.eps,
            weight_decay=c.weight_decay,
            fused=True,
        )
        w.grad = grad[e].clone()
        reference.step()
        assert torch.equal(got[e], w.detach())


def test_a_checkpoint_with_a_gpu_noise_state_resumes_on_the_cpu(tmp_path):
    config = TINY.with_changes(optimizer=preset("adam-dropout"))
    pop = Population([config], "cpu")
    pop.step()
    state = pop.member_state(0)
    assert state["noise_device"] == "cpu"
    # What a CUDA generator saves: 16 bytes of Philox seed and offset, not Mersenne Twister's 5 KB.
    state = {**state, "noise_generator": torch.zeros(16, dtype=torch.uint8), "noise_device": "cuda"}
    with pytest.warns(GrokkitWarning, match="written on cuda"):
        resumed = Population.from_member_states([state])
    assert resumed.step_count == 1
    resumed.step()  # the new noise stream works
    assert torch.isfinite(resumed.flat).all()


def test_a_gpu_checkpoint_of_a_noise_free_run_resumes_without_a_word(recwarn):
    pop = Population([TINY], "cpu")
    state = {
        **pop.member_state(0),
        "noise_generator": torch.zeros(16, dtype=torch.uint8),
        "noise_device": "cuda",
    }
    Population.from_member_states([state]).step()
    assert not [w for w in recwarn if issubclass(w.category, GrokkitWarning)]


def test_checkpoints_load_onto_the_cpu(tmp_path, monkeypatch):
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    path = tmp_path / "t.pt"
    torch.save({"flat": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "load", spy)
    runs.load_tensors(path)
    assert seen["map_location"] == "cpu" and seen["weights_only"] is True


def test_one_worker_per_visible_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert executors.visible_gpus() == ["3", "5"]
    monkeypatch.setattr("grokkit.sweep.visible_gpus", lambda: ["3", "5"])
    assert default_jobs("cuda", n_groups=10, jobs=None) == 2
    assert default_jobs("cuda", n_groups=10, jobs=8) == 2  # never two workers on one GPU
    assert default_jobs("cuda", n_groups=1, jobs=None) == 1


def test_a_pool_worker_sees_only_its_own_gpu(monkeypatch):
    import queue

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus = queue.Queue()
    gpus.put("5")
    import signal

    # _init_worker sets a worker's SIGINT and SIGTERM handlers: this process keeps its own.
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        executors._init_worker(None, gpus)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")


def test_tf32_is_a_run_setting_that_keeps_old_run_names():
    from grokkit.sweep import run_name

    assert run_name(TINY) == run_name(TINY.with_changes(tf32=False))
    assert run_name(TINY) != run_name(TINY.with_changes(tf32=True))
    assert RunConfig.from_dict(TINY.with_changes(tf32=True).to_dict()).tf32 is True


_ZEN4_PROCESSOR = """processor\t: {}
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw
"""
ZEN4 = (
    _ZEN4_PROCESSOR.format(0) + "\n" + _ZEN4_PROCESSOR.format(1)
)  # /proc/cpuinfo: one block per processor


def test_two_processors_sold_under_one_name_are_told_apart():
    # Cloud machines report "AMD EPYC" for Zen 4 and Zen 5 alike; their timings (and the GEMM
    # path cached for them) must not be mixed up.
    zen5 = ZEN4.replace(": 25", ": 26").replace(": 17", ": 2")
    zen3 = ZEN4.replace(" avx512f avx512bw", "")
    assert describe_cpuinfo(ZEN4) == "AMD EPYC (family 25 model 17 stepping 1, Zen 4, AVX-512)"
    assert describe_cpuinfo(zen5) == "AMD EPYC (family 26 model 2 stepping 1, Zen 5, AVX-512)"
    assert describe_cpuinfo(zen3) == "AMD EPYC (family 25 model 17 stepping 1, Zen 3, AVX2)"
    intel = (
        "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
        "model name\t: Intel Xeon\nstepping\t: 8\nflags\t: avx2\n"
    )
    assert describe_cpuinfo(intel) == "Intel Xeon (family 6 model 143 stepping 8, AVX2)"
    assert (
        describe_cpuinfo("processor\t: 0\nflags\t: avx2\n") is None
    )  # no model name: platform's answer


def test_the_gemm_cache_is_kept_per_processor_not_per_name(monkeypatch):
    monkeypatch.setattr(backend_choice, "cpu_model", lambda: describe_cpuinfo(ZEN4))
    zen4_key = backend_choice.cache_key(2)
    monkeypatch.setattr(
        backend_choice, "cpu_model", lambda: describe_cpuinfo(ZEN4.replace(": 25", ": 26"))
    )
    assert backend_choice.cache_key(2) != zen4_key
