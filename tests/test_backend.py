"""The backend: a frozen value chosen once (grokkit.backend_choice, measured on the machine and
cached), passed in; nothing that computes chooses, and every backend trains a member as its solo
run does."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_run

from grokkit import backend_choice, kernels, torch_private
from grokkit.backend import Backend
from grokkit.config import RunConfig
from grokkit.errors import ConfigError, GrokkitWarning
from grokkit.model import _linear
from grokkit.population import Population


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty cache, a quiet machine, oneDNN available, and measurements that must be asked
    for (each test hands over its own numbers)."""
    monkeypatch.setattr(backend_choice, "oversubscribed", lambda: False)
    monkeypatch.setenv("GROKKIT_CACHE_DIR", str(tmp_path))
    for name in ("GROKKIT_ONEDNN", "GROKKIT_NS_DTYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch_private, "HAS_ONEDNN_LINEAR", True)
    backend_choice._this_process.cache_clear()
    monkeypatch.setattr(backend_choice, "time_gemm_paths", never("the GEMM"))
    monkeypatch.setattr(backend_choice, "time_compile", never("compile"))
    monkeypatch.setattr(backend_choice, "time_newton_schulz", never("Newton-Schulz"))
    return tmp_path


def never(what):
    def measure(*args):
        raise AssertionError(f"{what} was measured")

    return measure


def gemm_timed(monkeypatch, onednn: float, pytorch: float, calls: list | None = None):
    def measure(threads):
        if calls is not None:
            calls.append(threads)
        return {"onednn": onednn, "pytorch": pytorch}

    monkeypatch.setattr(backend_choice, "time_gemm_paths", measure)


def choose(request="eager", steps=100, threads=1, **changes):
    return backend_choice.choose_backend(
        request, "cpu", [RunConfig(steps=steps).with_changes(**changes)], threads
    )


def cached(folder) -> dict:
    return json.loads((folder / backend_choice.CACHE_FILE).read_text())


def test_the_faster_gemm_is_kept_and_cached_per_thread_count(fresh, monkeypatch):
    calls = []
    gemm_timed(monkeypatch, 5.0, 3.0, calls)
    assert choose(threads=2).gemm == "pytorch"
    assert choose(threads=2).gemm == "pytorch" and calls == [2]  # the cache answered
    key = backend_choice.cache_key(2)
    assert cached(fresh)[key] == {"onednn": 5.0, "pytorch": 3.0}
    assert "threads=2" in key and torch.__version__ in key
    gemm_timed(monkeypatch, 1.0, 3.0, calls)
    assert choose(threads=1).gemm == "onednn" and calls == [2, 1]


@pytest.mark.parametrize("content", ["{not json", '{"%s": {"gemm": "onednn"}}'])
def test_a_damaged_or_old_cache_is_measured_again_and_rewritten(fresh, monkeypatch, content):
    path = fresh / backend_choice.CACHE_FILE
    path.write_text(content.replace("%s", backend_choice.cache_key(1)))
    gemm_timed(monkeypatch, 1.0, 2.0)
    assert choose().gemm == "onednn"
    assert cached(fresh)[backend_choice.cache_key(1)] == {"onednn": 1.0, "pytorch": 2.0}


@pytest.mark.parametrize("value,path", [("0", "pytorch"), ("1", "onednn")])
def test_the_environment_forces_a_gemm_without_measuring(fresh, monkeypatch, value, path):
    monkeypatch.setenv("GROKKIT_ONEDNN", value)
    backend = choose()
    assert backend.gemm == path and "GROKKIT_ONEDNN" in backend.why


def test_measure_in_the_environment_replaces_the_cached_choice(fresh, monkeypatch):
    gemm_timed(monkeypatch, 1.0, 2.0)
    assert choose().gemm == "onednn"
    monkeypatch.setenv("GROKKIT_ONEDNN", "measure")
    gemm_timed(monkeypatch, 3.0, 2.0)
    assert choose().gemm == "pytorch"
    monkeypatch.delenv("GROKKIT_ONEDNN")
    monkeypatch.setattr(backend_choice, "time_gemm_paths", never("the GEMM"))
    assert choose().gemm == "pytorch"


def test_an_unknown_environment_value_is_said_and_ignored(fresh, monkeypatch):
    monkeypatch.setenv("GROKKIT_ONEDNN", "off")
    gemm_timed(monkeypatch, 1.0, 2.0)
    with pytest.warns(GrokkitWarning, match="GROKKIT_ONEDNN='off' is not 0, 1 or measure"):
        assert choose().gemm == "onednn"


def test_without_onednn_the_gemm_is_pytorchs(fresh, monkeypatch):
    monkeypatch.setattr(torch_private, "HAS_ONEDNN_LINEAR", False)
    assert choose().gemm == "pytorch"


def test_a_measurement_on_an_overloaded_machine_serves_the_process_but_is_not_kept(
    fresh, monkeypatch
):
    monkeypatch.setattr(backend_choice, "oversubscribed", lambda: True)
    calls = []
    gemm_timed(monkeypatch, 1.0, 2.0, calls)
    assert choose().gemm == "onednn" and choose().gemm == "onednn"
    assert calls == [1]  # once in this process
    assert not (fresh / backend_choice.CACHE_FILE).exists()


def compile_timed(monkeypatch, eager: float, compiled: float, compile_s: float, calls: list):
    def measure(threads):
        calls.append(threads)
        return {"eager": eager, "compiled": compiled, "compile_s": compile_s}

    monkeypatch.setattr(backend_choice, "time_compile", measure)


def test_auto_compiles_only_when_the_measured_saving_repays_the_compile(fresh, monkeypatch):
    gemm_timed(monkeypatch, 20.0, 20.0)
    calls = []
    compile_timed(monkeypatch, eager=20.0, compiled=15.0, compile_s=30.0, calls=calls)
    # 1,000 steps of 20 ms: too short to look (no compile measured, nothing compiled).
    short = choose("auto", steps=1_000)
    assert not short.compiled and calls == [] and "too short" in short.why
    # 5,000 steps: measured (and said); saves 5,000 x 5 ms = 25 s < 30 s of compile.
    with pytest.warns(GrokkitWarning, match="measuring once whether torch.compile pays"):
        assert not choose("auto", steps=5_000).compiled and calls == [1]
    # 10,000 steps save 50 s > 30 s: compiled, from the cached measurement.
    long = choose("auto", steps=10_000)
    assert long.compiled and calls == [1] and "50 s" in long.why
    assert cached(fresh)[backend_choice.cache_key(1) + "|compile"]["compile_s"] == 30.0


def test_forced_requests_and_their_refusals(fresh, monkeypatch):
    gemm_timed(monkeypatch, 1.0, 2.0)
    assert choose("compiled").compiled and not choose("eager", steps=10**6).compiled
    with pytest.raises(ConfigError, match="unknown backend 'fast'"):
        choose("fast")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ConfigError, match="C\\+\\+ compiler"):
        choose("compiled")
    assert "C++ compiler" in choose("auto", steps=10**6).why


def test_the_emulated_bf16_path_stays_eager(fresh, monkeypatch):
    from grokkit import backend_choice as bc

    monkeypatch.setattr(bc, "choose_bf16_path", lambda enabled, device: "emulated")
    gemm_timed(monkeypatch, 1.0, 2.0)
    backend = choose("auto", steps=10**6, bf16=True)
    assert (backend.compiled, backend.bf16) == (False, "emulated")
    with pytest.raises(ValueError, match="eagerly"):
        Backend(compiled=True, bf16="emulated")


def test_newton_schulz_precision_is_measured_for_muon_runs_only(fresh, monkeypatch):
    gemm_timed(monkeypatch, 1.0, 2.0)
    assert choose().newton_schulz == "float32"  # no Muon: nothing measured
    monkeypatch.setattr(
        backend_choice, "time_newton_schulz", lambda: {"bfloat16": 9.0, "float32": 1.0}
    )
    assert choose(muon=True).newton_schulz == "float32"
    monkeypatch.setattr(backend_choice, "time_newton_schulz", never("Newton-Schulz again"))
    assert choose(muon=True).newton_schulz == "float32"  # cached
    monkeypatch.setenv("GROKKIT_NS_DTYPE", "bfloat16")
    assert choose(muon=True).newton_schulz == "bfloat16"
    meta = backend_choice.choose_backend("eager", "meta", [RunConfig()], 1)
    assert meta.newton_schulz == "bfloat16"  # torch.optim.Muon's precision off the CPU


def test_a_backend_names_the_projection_it_computes_with():
    assert Backend().linear is _linear
    assert Backend(gemm="onednn").linear is kernels.onednn_linear
    assert Backend(gemm="onednn", compiled=True).linear is _linear  # inductor plans products
    with pytest.raises(ValueError, match="GEMM"):
        Backend(gemm="blas")
    with pytest.raises(ValueError, match="Newton-Schulz"):
        Backend(newton_schulz="float16")


def test_nothing_below_the_choice_measures(fresh):
    """A population (and training) given a Backend never times, caches or asks the chooser."""
    from grokkit.train import train_runs

    pop = Population([tiny_run()], "cpu", Backend(gemm="onednn"))
    pop.step()
    pop.evaluate()
    assert not (fresh / backend_choice.CACHE_FILE).exists()
    train_runs([tiny_run(steps=5)], [fresh / "run"], progress=False, backend=Backend())
    assert not (fresh / backend_choice.CACHE_FILE).exists()


@pytest.mark.skipif(not torch_private.HAS_ONEDNN_LINEAR, reason="no oneDNN linear in this build")
def test_the_real_measurement_times_both_gemms():
    timings = backend_choice.time_gemm_paths(1)
    assert set(timings) == {"onednn", "pytorch"} and all(t > 0 for t in timings.values())


def _losses_and_weights(configs, backend, steps=6):
    pop = Population(configs, "cpu", backend)
    losses = torch.stack([pop.step() for _ in range(steps)])
    return losses, pop.flat.detach().clone()


@pytest.mark.parametrize("gemm", ["pytorch", "onednn"])
def test_a_member_equals_its_solo_run_bit_for_bit_on_each_eager_backend(gemm):
    if gemm == "onednn" and not torch_private.HAS_ONEDNN_LINEAR:
        pytest.skip("no oneDNN linear in this build")
    backend = Backend(gemm=gemm)
    configs = [tiny_run(seed=s, lr=1e-3 * (s + 1)) for s in range(3)]
    together, weights = _losses_and_weights(configs, backend)
    for i, c in enumerate(configs):
        alone, alone_weights = _losses_and_weights([c], backend)
        assert torch.equal(together[:, i], alone[:, 0])
        assert torch.equal(weights[i], alone_weights[0])


@pytest.mark.slow
def test_a_member_equals_its_solo_run_to_float_tolerance_when_compiled():
    """Compiled, a population of three shares one graph (the member axis is dynamic) and a
    single member gets its own: another rounding, the same function."""
    backend = Backend(compiled=True)
    configs = [tiny_run(seed=s) for s in range(3)]
    together, _ = _losses_and_weights(configs, backend)
    for i, c in enumerate(configs):
        alone, _ = _losses_and_weights([c], backend)
        torch.testing.assert_close(together[:, i], alone[:, 0], rtol=1e-4, atol=1e-5)
    eager, _ = _losses_and_weights(configs, Backend())
    torch.testing.assert_close(together, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("load, busy", [(3.0, True), (2.0, False), (0.4, False), (None, False)])
def test_a_machine_is_overloaded_when_its_load_exceeds_the_cores_it_lends_us(
    monkeypatch, load, busy
):
    monkeypatch.setattr(backend_choice, "cpu_count", lambda: 2)
    monkeypatch.setattr(backend_choice, "load_average", lambda: load)  # None: the OS does not say
    assert backend_choice.oversubscribed() is busy


def test_a_sweep_compiles_each_kind_once_before_its_workers_start(monkeypatch):
    """Two workers starting together would compile the same graph cold twice: the parent steps
    one throwaway population per compiled kind (E >= 2 and E = 1 are two graphs) first."""
    import grokkit.sweep as sweep

    built = []

    class Recording:
        def __init__(self, configs, device, backend):
            built.append((len(configs), backend.compiled))

        def step(self):
            pass

    monkeypatch.setattr(sweep, "Population", Recording)
    compiled, eager = Backend(compiled=True), Backend()
    pair = [tiny_run(seed=0).to_dict(), tiny_run(seed=1).to_dict()]
    triple = pair + [tiny_run(seed=2).to_dict()]
    tasks = [
        (pair, ["a", "b"], False, compiled),
        (triple, ["c", "d", "e"], False, compiled),  # the same graph as the pair's
        ([tiny_run(seed=3).to_dict()], ["f"], False, compiled),  # one member: its own graph
        (pair, ["g", "h"], False, eager),
    ]
    sweep._compile_once(tasks, "cpu", 1)
    assert built == [(2, True), (1, True)]


@pytest.mark.slow
def test_a_compiled_two_worker_sweep_trains_its_runs(tmp_path):
    from grokkit.sweep import run_sweep

    configs = [tiny_run(seed=s, steps=30) for s in range(4)]
    results = run_sweep(
        configs, tmp_path / "sweep", jobs=2, max_population=2, progress=False, backend="compiled"
    )
    assert all(r.summary["status"] == "completed" for r in results)


def test_compiled_with_emulated_bf16_is_refused_in_one_line_before_writing(
    monkeypatch, capsys, tmp_path
):
    from cli_harness import assert_one_line, run_cli

    from grokkit import backend_choice as bc

    monkeypatch.setattr(
        bc, "choose_bf16_path", lambda enabled, device: "emulated" if enabled else None
    )
    code, _, err = run_cli(
        capsys, "train", "--bf16", "--backend", "compiled", "--steps", "5", "--out", tmp_path / "r"
    )
    assert code == 2
    assert_one_line(err, "torch.compile does not trace")
    assert not (tmp_path / "r").exists()
