"""The claims frame: the contract, ``python -m kerneldistill claims``, the four exact reproductions, the summary figure.

Each exact claim must PASS at its fast size with its published setting, and FAIL when one parameter
is deliberately wrong (a wrong weight, a wrong ridge conversion, a wrong factor, too few steps): a
claim that cannot fail checks nothing. Test-local claims are registered under keys starting with
``_test_`` and removed from the registry afterwards.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import kerneldistill.claims as claims_pkg
from kerneldistill.__main__ import main
from kerneldistill.claims import REGISTRY, ClaimResult, claim, format_claims_table, run_claims

EXACT = ("ba21_toy", "mfb20_fixed_budget", "dpr26_weights", "pareek_factor_d")


def _result(key, passed, **extra):
    return ClaimResult(claim=key, paper="Nobody 2099", setting="a test", published="x = 1", measured="x = 2",
                       criterion="x == 1", passed=passed, table="own table of " + key, **extra)


@pytest.fixture
def local_claims():
    """Registers three test-local claims (passing, failing, raising); removes them afterwards."""
    added = []

    def register(key, fn):
        claim(key, paper="Nobody 2099", summary=f"test-local {key}")(fn)
        added.append(key)

    register("_test_passes", lambda fast=False: _result("_test_passes", True))
    register("_test_fails", lambda fast=False: _result("_test_fails", False, measured_value=2.0, published_value=1.0,
                                                       accept=(0.9, 1.1)))

    def raises(fast=False):
        raise RuntimeError("the data set is missing\nsecond line")

    register("_test_raises", raises)
    yield
    for key in added:
        REGISTRY.pop(key, None)


@pytest.fixture(scope="module")
def fast_results():
    return {r.claim: r for r in run_claims(EXACT, fast=True)}


# ------------------------------------------------------------------------------------------------
# The contract


def test_registry_holds_the_exact_claims_in_table_order():
    assert list(REGISTRY)[:4] == list(EXACT)
    assert all(REGISTRY[k].run.__wrapped__.__module__ == "kerneldistill.claims.exact" for k in EXACT)


def test_a_claim_must_return_a_claim_result():
    run = claim("_test_wrong_type", paper="p", summary="s")(lambda fast=False: {"passed": True})
    try:
        with pytest.raises(TypeError, match="must return a ClaimResult; got dict"):
            run()
    finally:
        REGISTRY.pop("_test_wrong_type")


def test_a_key_cannot_be_registered_twice():
    before = dict(REGISTRY)
    with pytest.raises(ValueError, match="'ba21_toy' is registered twice"):
        claim("ba21_toy", paper="p", summary="s")(lambda fast=False: None)
    assert REGISTRY == before                           # the first registration is untouched


def test_the_decorator_stamps_key_and_time(local_claims):
    result = REGISTRY["_test_passes"].run()
    assert result.claim == "_test_passes" and result.seconds >= 0.0 and result.verdict == "PASS"


def test_run_claims_names_unknown_claims_and_turns_an_exception_into_a_fail(local_claims):
    with pytest.raises(ValueError, match=r"unknown claim\(s\) \['nope'\]; valid claims: ba21_toy, "):
        run_claims(["nope"])
    [raised] = run_claims(["_test_raises"])
    assert not raised.passed
    assert raised.measured == "raised RuntimeError: the data set is missing"  # the one line, not the traceback
    assert "RuntimeError" in raised.table


def test_format_claims_table_has_a_row_per_claim_then_each_own_table(local_claims):
    text = format_claims_table(run_claims(["_test_passes", "_test_fails", "_test_raises"]))
    lines = text.splitlines()
    assert lines[0].split() == ["claim", "paper", "published", "measured", "criterion", "result", "s"]
    rows = {line.split()[0]: line for line in lines[2:5]}
    assert rows["_test_passes"].rstrip().split()[-2] == "PASS"
    assert rows["_test_fails"].rstrip().split()[-2] == "FAIL"
    assert "1/3 claims passed" in text
    assert text.index("== _test_passes: PASS ==") < text.index("own table of _test_passes") \
        < text.index("== _test_fails: FAIL ==")


# ------------------------------------------------------------------------------------------------
# The command line


def test_cli_exits_0_when_every_claim_passes(local_claims, capsys):
    assert main(["claims", "_test_passes"]) == 0
    assert "1/1 claims passed" in capsys.readouterr().out


def test_cli_exits_1_when_a_claim_fails_or_raises(local_claims, capsys):
    assert main(["claims", "_test_passes", "_test_fails"]) == 1
    captured = capsys.readouterr()
    assert "1/2 claims passed" in captured.out and "FAILED: _test_fails" in captured.err
    assert main(["claims", "_test_raises"]) == 1


def test_cli_refuses_an_unknown_name_with_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["claims", "ba21_toy", "nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown claim(s) nope; valid claims: " + ", ".join(REGISTRY) in err


def test_cli_lists_key_paper_and_summary(capsys):
    assert main(["claims", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == list(REGISTRY)
    spec = REGISTRY["pareek_factor_d"]
    assert f"pareek_factor_d  [{spec.paper}]  {spec.summary}" in out


def test_cli_runs_an_exact_claim(capsys):
    assert main(["claims", "--fast", "ba21_toy"]) == 0
    out = capsys.readouterr().out
    assert "== ba21_toy: PASS ==" in out and "loss against sin(2 pi x)" in out


# ------------------------------------------------------------------------------------------------
# The four exact reproductions: PASS as published, FAIL when broken


def test_exact_claims_pass_at_their_fast_size(fast_results):
    assert {k: r.verdict for k, r in fast_results.items()} == {k: "PASS" for k in EXACT}


def test_ba21_toy_numbers(fast_results):
    v = fast_results["ba21_toy"].values
    assert v["err_steps"] < 1e-12 and v["err_limit"] < 1e-12
    loss = np.array(v["loss"])                        # gt_weight (0, 0.25) x steps (1..6, limit)
    assert loss[0, 0] == pytest.approx(loss[1, 0], rel=1e-14)   # step 1 ignores the weight
    assert np.argmin(loss[0, :-1]) == 2                          # gt_weight 0: best at step 3, then worse
    assert loss[0, -1] > loss[0, 0]                              # the zero function at the limit


def test_mfb20_collapse_within_bounds(fast_results):
    v = fast_results["mfb20_fixed_budget"].values
    lo, hi = v["collapse_bounds"]
    assert lo <= v["collapse_round"] <= hi and v["budget_error"] < 1e-12


def test_dpr26_numbers(fast_results):
    v = fast_results["dpr26_weights"].values
    assert abs(v["closed_form"] - v["grid_argmin"]) <= 1.01 * v["grid_spacing"]
    assert v["signs_agree"] == v["signs_checked"] == 25
    assert v["gap_slope"] < -0.25 and np.all(np.array(v["oracle"]) > 1.0)   # over-regularised: gt_weight* > 1


def test_pareek_ratio_is_d(fast_results):
    v = fast_results["pareek_factor_d"].values[4]
    assert v["ratio"] == pytest.approx(4.0, rel=0.05) and v["k_step"] == pytest.approx(v["lower_bound"], rel=1e-6)


@pytest.mark.parametrize("key, params", [
    ("ba21_toy", {"limit_ridge": 0.2}),                 # the limit without the amplified ridge
    ("ba21_toy", {"refit_gt_weight": 0.3}),             # refits at another weight than the closed form's
    ("mfb20_fixed_budget", {"ridge_per_multiplier": 1.0}),  # c_t as a sum-of-squares ridge without the n
    ("dpr26_weights", {"gt_weight": 1.0}),              # the teacher's weight instead of the optimum
    ("dpr26_weights", {"gt_weight": -0.4}),             # a weight near the optimum, but not it
    ("pareek_factor_d", {"factor": 5}),                 # a wrong factor
    ("pareek_factor_d", {"steps": 2}),                  # too few steps for d = 4
])
def test_exact_claim_fails_with_a_wrong_parameter(key, params):
    result = REGISTRY[key].run(fast=True, **params)
    assert isinstance(result, ClaimResult) and result.verdict == "FAIL", result.measured


# ------------------------------------------------------------------------------------------------
# The summary figure and the report section


def test_summary_figure_data_and_plot(tmp_path, local_claims, monkeypatch):
    from analysis.figures import FIGURES
    from analysis.figures.claims import SUMMARY_COLUMNS, _row_positions
    from analysis.figures.spec import read_csv
    from analysis.report import claims_section

    # Only the fast exact claims and the test-local ones, so that the test stays seconds long.
    keys = ["ba21_toy", "mfb20_fixed_budget", "_test_passes", "_test_fails", "_test_raises"]
    monkeypatch.setattr(claims_pkg, "REGISTRY", {k: REGISTRY[k] for k in keys})
    spec = FIGURES["claims_summary"]
    data = spec.data(tmp_path, True)
    cols = read_csv(data)
    assert tuple(cols) == SUMMARY_COLUMNS
    assert cols["claim"].tolist() == keys
    assert cols["result"].tolist() == ["PASS", "PASS", "PASS", "FAIL", "FAIL"]
    assert cols["accept_low"][3] == 0.9 and math.isnan(cols["measured_value"][2])
    assert cols["accept_high"][2] == math.inf                     # no interval given: unbounded
    assert [p.suffix for p in spec.plot(data, tmp_path)] == [".pdf", ".png"]
    section = claims_section(tmp_path, fast=True)
    assert "**3/5 passed**" in section and "| `_test_fails` |" in section and "**FAIL**" in section

    # Row scales: an error far below its tolerance on a log scale, a one-sided interval to the edge.
    xv, xp, xl, xh, log = _row_positions(1e-15, math.nan, 0.0, 1e-8)
    assert log and xl == 0.0 and xv == pytest.approx(0.1) and xh == pytest.approx(0.9) and math.isnan(xp)
    xv, xp, xl, xh, log = _row_positions(-0.5, math.nan, -math.inf, -0.25)
    assert not log and xl == 0.0 and xv < xh


def test_claims_on_two_worker_processes_equal_them_in_one():
    # The same computations in spawned workers (one BLAS thread each): every field but the clock is equal,
    # in table order.
    names = ["ba21_toy", "mfb20_fixed_budget", "das_sanghavi_regression"]
    here = run_claims(names, fast=True)
    there = run_claims(names, fast=True, jobs=2)
    assert [r.claim for r in there] == names
    for a, b in zip(here, there):       # as JSON text: NaN (no published value) equals NaN
        assert json.dumps(dataclasses.asdict(dataclasses.replace(a, seconds=0.0)), default=str) == \
            json.dumps(dataclasses.asdict(dataclasses.replace(b, seconds=0.0)), default=str)
    with pytest.raises(ValueError, match=r"`jobs` must be an integer >= 1.*got 0"):
        run_claims(names, jobs=0)
