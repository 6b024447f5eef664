from kerneldistill import symbolic
from kerneldistill.symbolic import SYMBOLIC_CHECKS, run_symbolic_checks


def test_every_identity_holds():
    records = run_symbolic_checks()
    assert len(records) == len(SYMBOLIC_CHECKS) >= 8
    assert all(isinstance(r.passed, bool) and isinstance(r.detail, str) for r in records)
    failed = [f"{r.name}: {r.detail}" for r in records if not r.passed]
    assert not failed, failed


# Negative controls: the checks must reject a wrong formula, or they prove nothing.

def test_wrong_limit_is_rejected(monkeypatch):
    # lam * alpha instead of lam / alpha: the "amplified" ridge the other way round
    monkeypatch.setattr(symbolic, "b_inf", symbolic.d / (symbolic.d + symbolic.lam * symbolic.alpha))
    assert not symbolic.check_limit().passed
    assert not symbolic.check_closed_form_equals_recursion().passed


def test_wrong_rate_is_rejected(monkeypatch):
    monkeypatch.setattr(symbolic, "rate", symbolic.alpha * symbolic.a)  # alpha instead of 1 - alpha
    assert not symbolic.check_explicit_sum_equals_recursion().passed


def test_helpers_detect_nonzero_and_negative():
    d, lam = symbolic.d, symbolic.lam
    assert symbolic._is_zero(d / (d + lam) - 1 + lam / (d + lam))
    assert not symbolic._is_zero(d / (d + lam) - 1)
    assert symbolic._nonnegative(d * lam / (d + lam) ** 2)
    assert not symbolic._nonnegative(-d / (d + lam))
    assert not symbolic._nonnegative(d - lam)  # sign unknown: not proven
