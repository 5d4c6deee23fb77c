"""The CPU's GEMM path is measured once per machine and thread count, cached, and can be forced;
the measurement is handed over by whoever asks for the choice (Population), never registered."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_run

from grokkit import torch_private, tuning


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setattr(tuning, "oversubscribed", lambda: False)
    monkeypatch.setenv("GROKKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("GROKKIT_ONEDNN", raising=False)
    monkeypatch.setattr(tuning, "_chosen", {})
    monkeypatch.setattr(torch_private, "HAS_ONEDNN_LINEAR", True)
    return tmp_path


def timed(onednn: float, pytorch: float):
    """A measurement (threads -> ms per step of each path) that returns these numbers."""
    return lambda threads: {"onednn": onednn, "pytorch": pytorch}


def never_measured(threads):
    raise AssertionError("measured")


def test_the_faster_path_is_kept_and_cached(fresh):
    choice = tuning.choose(2, timed(5.0, 3.0))
    timings = {"onednn": 5.0, "pytorch": 3.0}
    assert (choice.path, choice.source, choice.ms_per_step) == ("pytorch", "measured", timings)
    cached = json.loads((fresh / tuning.CACHE_FILE).read_text())
    assert cached[tuning.cache_key(2)]["gemm"] == "pytorch"
    assert "threads=2" in tuning.cache_key(2) and torch.__version__ in tuning.cache_key(2)

    def no_measurement(threads):
        raise AssertionError("a cached choice must not be measured again")

    again = tuning.choose(2, no_measurement)
    assert (again.path, again.source) == ("pytorch", "cache")
    # Another thread count is another measurement.
    assert tuning.choose(1, timed(1.0, 3.0)).path == "onednn"
    cached = json.loads((fresh / tuning.CACHE_FILE).read_text())
    assert set(cached) == {tuning.cache_key(1), tuning.cache_key(2)}


def test_a_damaged_cache_is_measured_again_and_rewritten(fresh):
    (fresh / tuning.CACHE_FILE).write_text("{not json")
    assert tuning.choose(1, timed(1.0, 2.0)).source == "measured"
    cached = json.loads((fresh / tuning.CACHE_FILE).read_text())
    assert cached[tuning.cache_key(1)]["gemm"] == "onednn"


@pytest.mark.parametrize("value,path", [("0", "pytorch"), ("1", "onednn")])
def test_the_environment_forces_a_path_without_measuring(fresh, monkeypatch, value, path):
    monkeypatch.setenv("GROKKIT_ONEDNN", value)
    choice = tuning.choose(1, never_measured)
    assert (choice.path, choice.source) == (path, "env")


def test_without_onednn_the_path_is_pytorchs(fresh, monkeypatch):
    monkeypatch.setattr(torch_private, "HAS_ONEDNN_LINEAR", False)
    choice = tuning.choose(1, never_measured)
    assert (choice.path, choice.source) == ("pytorch", "unavailable")


def test_forced_sets_the_path_inside_the_block_only(fresh):
    tuning.choose_gemm(timed(1.0, 2.0))
    assert tuning.use_onednn()
    with tuning.forced("pytorch"):
        assert not tuning.use_onednn() and tuning.current().source == "forced"
        assert tuning.choose_gemm(never_measured).source == "forced"  # the measurement's own runs
    assert tuning.use_onednn()
    with pytest.raises(ValueError):
        with tuning.forced("blas"):
            pass


@pytest.mark.skipif(
    not torch_private.HAS_ONEDNN_LINEAR, reason="this PyTorch build has no oneDNN linear"
)
def test_the_real_measurement_times_both_paths(monkeypatch):
    from grokkit.population import time_gemm_paths

    timings = time_gemm_paths(1)
    assert set(timings) == set(tuning.PATHS) and all(t > 0 for t in timings.values())


def test_measure_in_the_environment_replaces_the_cached_choice(fresh, monkeypatch):
    assert tuning.choose(1, timed(1.0, 2.0)).path == "onednn"
    monkeypatch.setenv("GROKKIT_ONEDNN", "measure")
    choice = tuning.choose(1, timed(3.0, 2.0))
    assert (choice.path, choice.source) == ("pytorch", "measured")
    monkeypatch.delenv("GROKKIT_ONEDNN")
    choice = tuning.choose(1, never_measured)
    assert (choice.path, choice.source) == ("pytorch", "cache")


def test_a_choice_measured_on_an_overloaded_machine_is_not_kept(fresh, monkeypatch):
    monkeypatch.setattr(tuning, "oversubscribed", lambda: True)
    assert tuning.choose(1, timed(1.0, 2.0)).source == "measured"
    assert not (fresh / tuning.CACHE_FILE).exists()


def test_before_anything_can_time_a_step_the_default_is_onednn(fresh):
    choice = tuning.choose(1)  # no measurement handed over
    assert (choice.path, choice.source) == ("onednn", "default")
    assert not (fresh / tuning.CACHE_FILE).exists()


def test_without_a_measurement_a_cached_choice_is_used(fresh):
    tuning.choose(1, timed(3.0, 2.0))
    choice = tuning.choose(1)
    assert (choice.path, choice.source) == ("pytorch", "cache")


def test_an_unknown_environment_value_is_said_and_ignored(fresh, monkeypatch):
    from grokkit.errors import GrokkitWarning

    monkeypatch.setenv("GROKKIT_ONEDNN", "off")
    with pytest.warns(GrokkitWarning, match="GROKKIT_ONEDNN='off' is not 0, 1 or measure"):
        assert tuning.choose(1, timed(1.0, 2.0)).source == "measured"


def test_a_choice_made_before_any_measurement_existed_is_made_again(fresh):
    """The fast path may run before any population asked for the choice (nothing can time a step
    yet): it then uses oneDNN as a stand-in, and the real, measured choice replaces it as soon as
    a population hands over its measurement."""
    assert tuning.use_onednn() and tuning.current().source == "default"
    tuning.choose_gemm(timed(4.0, 2.0))
    assert not tuning.use_onednn()
    assert (tuning.current().path, tuning.current().source) == ("pytorch", "measured")


def test_a_population_on_the_cpu_tunes_the_machine_before_its_first_step(fresh, monkeypatch):
    from grokkit.population import Population, time_gemm_paths

    asked = []
    monkeypatch.setattr(tuning, "tune_cpu", asked.append)
    Population([tiny_run()], "cpu")
    Population([tiny_run()], "meta")
    assert asked == [time_gemm_paths]


@pytest.mark.parametrize("load, busy", [(3.0, True), (2.0, False), (0.4, False), (None, False)])
def test_a_machine_is_overloaded_when_its_load_exceeds_the_cores_it_lends_us(
    monkeypatch, load, busy
):
    monkeypatch.setattr(tuning, "cpu_count", lambda: 2)
    monkeypatch.setattr(tuning, "load_average", lambda: load)  # None: the OS does not say
    assert tuning.oversubscribed() is busy
