"""analysis.resample: the resampling behind compare's intervals, against exact answers."""

from __future__ import annotations

import numpy as np
import pytest

from reasonperf.analysis import resample


def test_cluster_bootstrap_median_is_the_median_of_the_pooled_clusters():
    rng = np.random.default_rng(0)
    values = rng.normal(size=30)
    clusters = np.arange(30) // 5  # six clusters of five
    got = resample.cluster_bootstrap(values, clusters, "p50", 200, np.random.default_rng(1))
    # replay the same draws by hand: pool the drawn clusters, take numpy's median
    draws = np.random.default_rng(1).multinomial(6, np.full(6, 1 / 6), size=200)
    want = [np.median(np.concatenate([np.repeat(values[clusters == g], k)
                                      for g, k in enumerate(row)])) for row in draws]
    assert np.allclose(got, want)


def test_cluster_bootstrap_mean_weights_values_by_their_cluster_draws():
    values = np.array([1.0, 1.0, 5.0, np.nan])
    got = resample.cluster_bootstrap(values, np.array([0, 0, 1, 1]), "mean", 500,
                                     np.random.default_rng(2))
    assert set(np.round(got, 9)) <= {1.0, 5.0, round(7 / 3, 9)}  # both, or one cluster twice
    assert len(set(np.round(got, 9))) == 3


def test_t_quantiles_match_the_tables():
    for df, want in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (1000, 1.9623)):
        assert resample.t_quantile(0.975, df) == pytest.approx(want, abs=2e-4)


def test_pooled_t_interval_by_hand():
    base, cand = np.array([10.0, 12.0]), np.array([14.0, 16.0, 15.0])
    lo, hi = resample.pooled_t_interval(base, cand, 0.95)
    ss = 2.0 + 2.0  # squared deviations: base (1 + 1), cand (1 + 1 + 0)
    se = np.sqrt(ss / 3) * np.sqrt(1 / 2 + 1 / 3)
    assert (lo + hi) / 2 == pytest.approx(4.0)
    assert (hi - lo) / 2 == pytest.approx(3.1824 * se, rel=1e-3)  # t(0.975, 3) = 3.1824
    assert resample.pooled_t_interval(np.array([1.0]), np.array([2.0]), 0.95) == (None, None)


def test_spread_counts_keeps_every_token_and_splits_by_overlap():
    edges = np.array([0.0, 1.0, 2.0, 4.0])
    got = resample.spread_counts(np.array([0.5, 3.0, 0.0]), np.array([1.5, 3.0, 4.0]),
                                 np.array([10.0, 7.0, 8.0]), edges)
    assert got == pytest.approx([5 + 2, 5 + 2, 7 + 4])


def test_block_bootstrap_of_a_constant_rate_is_that_rate():
    reps = resample.block_bootstrap_rate(np.full(40, 6.0), 0.5, 4, 100,
                                         np.random.default_rng(0))
    assert np.allclose(reps, 12.0)


def test_block_bootstrap_spread_grows_with_dependence():
    """A slow wave (dependent windows): blocks keep its runs together, so the spread of
    the replicates is wider than with blocks of one window (the iid bootstrap)."""
    counts = 10 + 5 * np.sin(np.arange(200) / 8)
    rng = np.random.default_rng(3)
    iid = resample.block_bootstrap_rate(counts, 1.0, 1, 2000, rng).std()
    blocks = resample.block_bootstrap_rate(counts, 1.0, 20, 2000, rng).std()
    assert blocks > 2 * iid
