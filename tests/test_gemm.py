"""The CPU's GEMM path is measured once per machine and thread count, cached, and can be forced."""

from __future__ import annotations

import json

import pytest
import torch

from grokkit import gemm


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setattr(gemm, "oversubscribed", lambda: False)
    # A measurement is registered (grokkit.population does it on import); tests replace measure().
    monkeypatch.setattr(gemm, "_measurement", lambda threads: pytest.fail("the real measurement ran"))
    monkeypatch.setenv("GROKKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("GROKKIT_ONEDNN", raising=False)
    monkeypatch.setattr(gemm, "_chosen", {})
    monkeypatch.setattr(gemm, "ONEDNN_AVAILABLE", True)
    return tmp_path


def test_the_faster_path_is_kept_and_cached(fresh, monkeypatch):
    monkeypatch.setattr(gemm, "measure", lambda threads: {"onednn": 5.0, "pytorch": 3.0})
    choice = gemm.choose(2)
    assert (choice.path, choice.source, choice.ms_per_step) == ("pytorch", "measured", {"onednn": 5.0, "pytorch": 3.0})
    cached = json.loads((fresh / gemm.CACHE_FILE).read_text())
    assert cached[gemm.cache_key(2)]["gemm"] == "pytorch"
    assert "threads=2" in gemm.cache_key(2) and torch.__version__ in gemm.cache_key(2)

    def no_measurement(threads):
        raise AssertionError("a cached choice must not be measured again")

    monkeypatch.setattr(gemm, "measure", no_measurement)
    again = gemm.choose(2)
    assert (again.path, again.source) == ("pytorch", "cache")
    # Another thread count is another measurement.
    monkeypatch.setattr(gemm, "measure", lambda threads: {"onednn": 1.0, "pytorch": 3.0})
    assert gemm.choose(1).path == "onednn"
    assert set(json.loads((fresh / gemm.CACHE_FILE).read_text())) == {gemm.cache_key(1), gemm.cache_key(2)}


def test_a_damaged_cache_is_measured_again_and_rewritten(fresh, monkeypatch):
    (fresh / gemm.CACHE_FILE).write_text("{not json")
    monkeypatch.setattr(gemm, "measure", lambda threads: {"onednn": 1.0, "pytorch": 2.0})
    assert gemm.choose(1).source == "measured"
    assert json.loads((fresh / gemm.CACHE_FILE).read_text())[gemm.cache_key(1)]["gemm"] == "onednn"


@pytest.mark.parametrize("value,path", [("0", "pytorch"), ("1", "onednn")])
def test_the_environment_forces_a_path_without_measuring(fresh, monkeypatch, value, path):
    monkeypatch.setenv("GROKKIT_ONEDNN", value)
    monkeypatch.setattr(gemm, "measure", lambda threads: pytest.fail("measured"))
    assert (gemm.choose(1).path, gemm.choose(1).source) == (path, "env")


def test_without_onednn_the_path_is_pytorchs(fresh, monkeypatch):
    monkeypatch.setattr(gemm, "ONEDNN_AVAILABLE", False)
    assert (gemm.choose(1).path, gemm.choose(1).source) == ("pytorch", "unavailable")


def test_forced_sets_the_path_inside_the_block_only(fresh, monkeypatch):
    monkeypatch.setattr(gemm, "measure", lambda threads: {"onednn": 1.0, "pytorch": 2.0})
    assert gemm.use_onednn()
    with gemm.forced("pytorch"):
        assert not gemm.use_onednn() and gemm.current().source == "forced"
    assert gemm.use_onednn()
    with pytest.raises(ValueError):
        with gemm.forced("blas"):
            pass


@pytest.mark.skipif(not gemm.ONEDNN_AVAILABLE, reason="this PyTorch build has no oneDNN linear")
def test_the_real_measurement_times_both_paths(monkeypatch):
    import grokkit.population  # noqa: F401  (it registers the measurement)

    timings = gemm.measure(1)
    assert set(timings) == set(gemm.PATHS) and all(t > 0 for t in timings.values())


def test_measure_in_the_environment_replaces_the_cached_choice(fresh, monkeypatch):
    monkeypatch.setattr(gemm, "measure", lambda threads: {"onednn": 1.0, "pytorch": 2.0})
    assert gemm.choose(1).path == "onednn"
    monkeypatch.setenv("GROKKIT_ONEDNN", "measure")
    monkeypatch.setattr(gemm, "measure", lambda threads: {"onednn": 3.0, "pytorch": 2.0})
    assert (gemm.choose(1).path, gemm.choose(1).source) == ("pytorch", "measured")
    monkeypatch.delenv("GROKKIT_ONEDNN")
    assert (gemm.choose(1).path, gemm.choose(1).source) == ("pytorch", "cache")


def test_a_choice_measured_on_an_overloaded_machine_is_not_kept(fresh, monkeypatch):
    monkeypatch.setattr(gemm, "oversubscribed", lambda: True)
    monkeypatch.setattr(gemm, "measure", lambda threads: {"onednn": 1.0, "pytorch": 2.0})
    assert gemm.choose(1).source == "measured"
    assert not (fresh / gemm.CACHE_FILE).exists()


def test_before_anything_can_time_a_step_the_default_is_onednn(fresh, monkeypatch):
    monkeypatch.setattr(gemm, "_measurement", None)
    assert (gemm.choose(1).path, gemm.choose(1).source) == ("onednn", "default")
    assert not (fresh / gemm.CACHE_FILE).exists()


def test_an_unknown_environment_value_is_said_and_ignored(fresh, monkeypatch):
    from grokkit.errors import GrokkitWarning

    monkeypatch.setenv("GROKKIT_ONEDNN", "off")
    monkeypatch.setattr(gemm, "measure", lambda threads: {"onednn": 1.0, "pytorch": 2.0})
    with pytest.warns(GrokkitWarning, match="GROKKIT_ONEDNN='off' is not 0, 1 or measure"):
        assert gemm.choose(1).source == "measured"


def test_a_choice_made_before_any_measurement_existed_is_made_again(fresh, monkeypatch):
    """The fast path may run before grokkit.population is imported (nothing can time a step yet):
    it then uses oneDNN as a stand-in, and the real, measured choice replaces it as soon as a
    measurement is registered."""
    monkeypatch.setattr(gemm, "_measurement", None)
    assert gemm.use_onednn() and gemm.current().source == "default"
    gemm.register_measurement(lambda threads: {"onednn": 4.0, "pytorch": 2.0})
    assert not gemm.use_onednn()
    assert (gemm.current().path, gemm.current().source) == ("pytorch", "measured")


@pytest.mark.parametrize("load, busy", [(3.0, True), (2.0, False), (0.4, False), (None, False)])
def test_a_machine_is_overloaded_when_its_load_exceeds_the_cores_it_lends_us(monkeypatch, load, busy):
    monkeypatch.setattr(gemm, "cpu_count", lambda: 2)
    monkeypatch.setattr(gemm, "load_average", lambda: load)  # None: the OS does not say
    assert gemm.oversubscribed() is busy
