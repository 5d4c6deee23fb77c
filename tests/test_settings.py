"""What the settings' declarations decide: run names, identities and who may share a population.

Every list these facts once lived in is now derived from ``setting(...)``; the names and hashes
below are those grokkit gave the same runs before, so a user's run folders keep being found.
"""

import pytest

from grokkit.config import LATER_FIELDS, METHOD_FIELDS, SETTINGS, RunConfig
from grokkit.population import population_key
from grokkit.sweep.grid import run_name


def test_run_names_and_hashes_stay_what_they_were():
    assert run_name(RunConfig()) == "x_div_y-p97-f0.500-adamw-k0-s0-10fe3bcc"
    tagged = RunConfig().with_changes(
        init="nanda", grad_filter="ema", l2=0.005, muon=True, fixed_norm=True
    )
    # The tags' order is their declared place, not the fields' order.
    assert run_name(tagged) == (
        "x_div_y-p97-f0.500-adamw-k0-s0-grokfast_ema-l2_0.005-init_nanda-muon-fixed_norm-491728a7"
    )


def test_a_later_setting_at_its_default_is_not_part_of_a_runs_identity():
    identity = RunConfig().identity_dict()
    for s in SETTINGS:
        where = identity if s.owner is RunConfig else identity["optimizer"]
        assert (s.name in where) == (s.later is None), s.name
    assert LATER_FIELDS[:4] == ("snapshot_every", "init", "init_scale", "grad_filter")


def test_every_tagged_setting_is_a_method_field_in_its_place():
    assert METHOD_FIELDS[:5] == (
        "grad_filter",
        "grad_filter_alpha",
        "grad_filter_lambda",
        "grad_filter_window",
        "l2",
    )
    assert {s.name for s in SETTINGS if s.tag} == set(METHOD_FIELDS)


@pytest.mark.parametrize(
    "change, together",
    [
        ({"seed": 3, "lr": 3e-3, "init_scale": 0.5, "grad_filter_alpha": 0.9}, True),
        ({"grad_filter_window": 7}, True),  # no filter: the window has no effect
        ({"muon": True}, False),
        ({"d_model": 64, "d_mlp": 256}, False),
        ({"eval_every": 10}, False),
        ({"dropout": 0.1}, False),  # computed: needs the reference forward pass
        ({"batch_size": 64}, False),  # computed: the resolved batch size
    ],
)
def test_who_shares_a_population(change, together):
    base = RunConfig()
    assert (population_key(base) == population_key(base.with_changes(**change))) is together


def test_a_setting_acting_only_with_another_parts_runs_only_where_it_acts():
    ma, ema = (
        RunConfig().with_changes(grad_filter="ma"),
        RunConfig().with_changes(grad_filter="ema"),
    )
    assert population_key(ma) != population_key(ma.with_changes(grad_filter_window=7))
    assert population_key(ema) == population_key(ema.with_changes(grad_filter_window=7))


def test_a_titles_words_keep_their_order():
    every = RunConfig().with_changes(
        grad_filter="ma",
        l2=0.005,
        loss="stablemax",
        orthogonal_grad=True,
        init="nanda",
        init_scale=2.0,
        tf32=True,
        bf16=True,
        muon=True,
        fixed_norm=True,
    )
    assert every.method_description() == (
        "Grokfast-MA (window 100, λ 5), L2 0.005, StableMax loss, ⊥Grad, Nanda init, init × 2, "
        "TF32, bfloat16 products, Muon (hidden matrices), weight norm fixed at init"
    )
