"""Jeong & Chung (ICLR 2025): multi-round self-distillation in linear probing averages the labels along the
eigenvectors of the feature Gram matrix; one round on partial labels (the teacher's top two at 1/2) matches
or beats it at high label noise.

Run: `python examples/claim_label_averaging.py [--fast]`.

Setting (the paper's synthetic defaults): 4 classes x 500 instances, Gram matrix 1 on the diagonal, 0.4
within a class, 0.1 across, lam = 1e-5 (ridge = K N lam = 0.08 in this toolkit's sum-of-squares
convention), corruption 0.5, up to 10 rounds; then scikit-learn's digits (linear probe on the pixels).

First the closed form by hand: the block Gram matrix has three eigenvalues, so round t keeps the class
means with weight r2^t and an instance's own (possibly corrupted) label with r3^t; the round from which
every instance is predicted as its true class follows. Then the two registered claims
(`python -m kerneldistill claims jeong_chung_averaging jeong_chung_partial_labels` runs the same).
Exits with 1 if a claim fails.
"""
import argparse
import sys

import numpy as np

from kerneldistill.claims.jeong_chung import DEFAULTS, averaging, partial_labels_claim
from kerneldistill.linear_probe import block_ratios, corrupt_labels, paper_ridge, rounds_to_full_accuracy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer seeds and a smaller averaging check (seconds)")
    args = parser.parse_args(argv)
    K, n, lam = DEFAULTS["n_classes"], DEFAULTS["n_per_class"], DEFAULTS["lam"]
    intra, inter = DEFAULTS["intra"], DEFAULTS["inter"]
    ridge = paper_ridge(lam, K, K * n)
    r1, r2, r3 = block_ratios(n, K, intra, inter, ridge)
    print(f"block Gram matrix, N = {K * n}, ridge = K N lam = {ridge:g}: per-round shrinkage of the constant "
          f"vector {r1:.5f}, of the class contrasts {r2:.5f}, of the within-class residuals {r3:.5f}")
    # Expected-fraction estimate: a corrupted instance (label j != class k) is right once
    # r2^t (m_kk - m_kj) > r3^t (1 - m_kj + m_kk); at corruption eta, m_kk = 1 - eta, m_kj = eta / (K - 1).
    y = np.repeat(np.arange(K), n)
    print(f"{'corruption':>10} | {'estimate from expected fractions':>33} | {'plurality holds (this draw)':>27} | "
          f"{'exact round count (this draw)':>29}")
    for eta in (0.2, 0.4, 0.5, 0.6, 0.7, 0.8):
        m_kk, m_kj = 1 - eta, eta / (K - 1)
        estimate = (np.log((1 - m_kj + m_kk) / (m_kk - m_kj)) / np.log(r2 / r3)) if m_kk > m_kj else float("inf")
        labels = corrupt_labels(y, K, eta, seed=2)
        fractions = np.stack([np.bincount(labels[y == k], minlength=K) / n for k in range(K)])
        plurality = all(fractions[k, k] > np.delete(fractions[k], k).max() for k in range(K))
        exact = rounds_to_full_accuracy(y, labels, K, intra, inter, ridge, max_rounds=500)
        print(f"{eta:>10.1f} | {estimate:>33.1f} | {str(plurality):>27} | {'never' if exact is None else exact:>29}")
    failed = 0
    for run in (averaging, partial_labels_claim):
        result = run(fast=args.fast)
        print(f"\n{result.claim}: {result.verdict} ({result.seconds:.1f} s)\n  published: {result.published}\n"
              f"  measured:  {result.measured}\n  criterion: {result.criterion}\n{result.table}")
        failed += not result.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
