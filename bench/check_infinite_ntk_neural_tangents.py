"""kerneldistill's infinite-width NTK (:mod:`kerneldistill.infinite_ntk`) against neural-tangents' analytic kernels.

NOT a dependency of the toolkit: run it in a separate environment with neural-tangents 0.6.5, which needs
jax 0.4.23 and numpy below 2 (the toolkit's own environment is not changed)::

    python3 -m venv /work/nt-venv
    /work/nt-venv/bin/pip install "neural-tangents==0.6.5" "jax[cpu]==0.4.23" "jaxlib==0.4.23" "numpy<2" scipy scikit-learn
    /work/nt-venv/bin/python bench/check_infinite_ntk_neural_tangents.py          # from the repository root

Without neural-tangents it prints SKIPPED and exits 0 (``--strict``: exit 2), so the toolkit's smoke test of
``bench/`` passes in the toolkit's own environment.

For erf and ReLU, depth 1..3, several input, weight and bias scales, it builds the same network in
neural-tangents' ``stax`` (``Dense(W_std, b_std, parameterization="ntk")`` = ``NTKMLP``'s layers; ``stax.Erf()``
is ``erf``), computes both the NNGP kernel and the NTK of the output in float64 on random inputs (Gram and cross
kernel), and prints the maximum relative error ``max |ours - nt| / max |nt|`` per case and overall. It exits
with 1 when an error exceeds ``--tolerance`` (default 1e-12).

On the diagonal of a ReLU Gram matrix the angle between a point and itself is 0 and the kernel has an
exact closed form (``E[relu(u)^2] = s / 2``, ``E[relu'(u)^2] = 1/2``); ``arccos`` of a cosine rounded to
``1 - 1e-16`` gives an angle of 1e-8 instead, and neural-tangents 0.6.5's diagonal carries that round-off
(measured: up to 2.8e-10 relative at ``bias_std = 0``). So the ReLU Gram matrix is compared with
neural-tangents off the diagonal, and both diagonals are compared with the exact recursion (columns
``diag ours`` and ``diag nt``; only ours is held to the tolerance). tanh has no analytic kernel in neural-tangents
(its Monte Carlo estimate is not a reference at 1e-12), so tanh is checked against higher-order quadrature and
Monte Carlo over finite networks in ``tests/test_infinite_ntk.py`` instead.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository's kerneldistill


def _rel(a, ref) -> float:
    """``max |a - ref| / max |ref|``."""
    import numpy as np

    return float(np.max(np.abs(a - ref)) / np.max(np.abs(ref)))


def _relu_diagonal(x, depth, s0, sw, beta):
    """The exact ReLU NNGP and NTK at ``(x, x)``: the angle is 0, so ``E[relu^2] = q / 2`` and ``E[relu'^2] = 1 / 2``."""
    import numpy as np

    q = s0 ** 2 * np.sum(x * x, axis=1) / x.shape[1] + beta ** 2
    theta = q.copy()
    for _ in range(depth):
        q_next = sw ** 2 * q / 2.0 + beta ** 2
        theta = q_next + theta * sw ** 2 / 2.0
        q = q_next
    return q, theta


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, default=1e-12, help="max relative error allowed (default 1e-12)")
    parser.add_argument("--quick", action="store_true", help="depth 1 and 2 only (the smoke test's size)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with 2 when neural-tangents is not importable (default: print SKIPPED, exit 0)")
    args = parser.parse_args(argv)
    try:
        import jax
        import neural_tangents as nt
        from neural_tangents import stax
    except ImportError as err:
        # The toolkit's own environment has no neural-tangents (not a dependency): the check is skipped there,
        # as the tests skip it, and says so.
        print(f"SKIPPED: neural-tangents is not importable here ({err}); run this script in its own environment "
              f"(see the module docstring).")
        return 2 if args.strict else 0
    jax.config.update("jax_enable_x64", True)
    import numpy as np

    from kerneldistill.infinite_ntk import nngp_and_ntk

    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(12, 4)), rng.normal(size=(7, 4))
    x1[0] = 0.0                                          # a zero input: the ReLU's degenerate angle with bias
    stax_act = {"erf": stax.Erf, "relu": stax.Relu}
    worst = 0.0
    print(f"neural-tangents {nt.__version__}, jax {jax.__version__}, numpy {np.__version__}")
    print(f"{'activation':<10} {'depth':>5} {'input_std':>9} {'weight_std':>10} {'bias_std':>8}  "
          f"{'NNGP rel. err':>13} {'NTK rel. err':>13}  {'diag ours':>10} {'diag nt':>10}")
    for act, depth, (s0, sw, beta) in itertools.product(("erf", "relu"), (1, 2) if args.quick else (1, 2, 3),
                                                        ((1.0, 1.0, 1.0), (2.0, 1.5, 0.1), (0.5, 1.3, 0.0))):
        layers = [stax.Dense(512, W_std=s0, b_std=beta, parameterization="ntk"), stax_act[act]()]
        for _ in range(depth - 1):
            layers += [stax.Dense(512, W_std=sw, b_std=beta, parameterization="ntk"), stax_act[act]()]
        layers += [stax.Dense(1, W_std=sw, b_std=beta, parameterization="ntk")]
        _, _, kernel_fn = stax.serial(*layers)
        errs, diag = [], ["", ""]
        for a, b in ((x1, None), (x1, x2)):
            ref = kernel_fn(a, b, ("nngp", "ntk"))
            ours = nngp_and_ntk(a, b, depth=depth, activation=act, weight_std=sw, input_std=s0, bias_std=beta)
            off = np.ones(ours[0].shape, dtype=bool)
            if act == "relu" and b is None:
                np.fill_diagonal(off, False)
                exact = _relu_diagonal(a, depth, s0, sw, beta)
                d_ours = max(_rel(np.diag(o), e) for o, e in zip(ours, exact))
                d_nt = max(_rel(np.diag(np.asarray(r)), e) for r, e in zip((ref.nngp, ref.ntk), exact))
                diag = [f"{d_ours:.2e}", f"{d_nt:.2e}"]
                worst = max(worst, d_ours)
            errs.append([_rel(o[off], np.asarray(r)[off]) for o, r in zip(ours, (ref.nngp, ref.ntk))])
        nngp_err, ntk_err = max(e[0] for e in errs), max(e[1] for e in errs)
        worst = max(worst, nngp_err, ntk_err)
        print(f"{act:<10} {depth:>5} {s0:>9g} {sw:>10g} {beta:>8g}  {nngp_err:>13.2e} {ntk_err:>13.2e}"
              f"  {diag[0]:>10} {diag[1]:>10}")
    verdict = "PASS" if worst <= args.tolerance else "FAIL"
    print(f"max relative error over all cases: {worst:.2e} (tolerance {args.tolerance:g}): {verdict}")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
