"""The vectorised helpers behind the analyses, against plain (slow) reference answers."""

from __future__ import annotations

import numpy as np

from reasonperf.analysis import stats_util as su
from reasonperf.grading.stats import avg_at_n
from tests.test_analysis_data import request, requests_table


def _direct_bootstrap_quantile(x: np.ndarray, q: float, n_boot: int, seed: int) -> np.ndarray:
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    return np.quantile(x[idx], q, axis=1)


def test_bootstrap_quantile_matches_direct_resampling():
    x = np.random.default_rng(5).exponential(size=9)
    for q in (0.5, 0.9, 0.25):
        fast = su.bootstrap_quantile(x, q, 40_000, np.random.default_rng(1))
        slow = _direct_bootstrap_quantile(x, q, 40_000, 2)
        # same distribution: quantiles of the replicates and their spread agree
        for p in (0.1, 0.5, 0.9):
            assert abs(np.quantile(fast, p) - np.quantile(slow, p)) < 0.05 * x.max()
        assert abs(fast.std() - slow.std()) < 0.05 * slow.std()
        # every replicate lies in the data's range
        assert fast.min() >= x.min() and fast.max() <= x.max()


def test_bootstrap_quantile_edge_cases():
    rng = np.random.default_rng(0)
    assert np.all(su.bootstrap_quantile(np.array([3.0]), 0.5, 10, rng) == 3.0)
    assert np.all(np.isnan(su.bootstrap_quantile(np.array([np.nan]), 0.5, 4, rng)))
    const = su.bootstrap_quantile(np.full(50, 2.0), 0.5, 100, rng)
    assert np.all(const == 2.0)


def test_bootstrap_mean_exact_and_normal_limit_agree():
    x = np.random.default_rng(3).normal(10, 2, size=20_000)
    direct = su.bootstrap_mean(x, 500, np.random.default_rng(1))  # 1e7 cells: exact path
    normal = su.bootstrap_mean(x, 2000, np.random.default_rng(1))  # 4e7 cells: normal limit
    expected_sd = x.std() / np.sqrt(len(x))
    assert abs(direct.std() - expected_sd) < 0.15 * expected_sd
    assert abs(normal.std() - expected_sd) < 0.1 * expected_sd
    assert abs(direct.mean() - x.mean()) < expected_sd and abs(normal.mean() - x.mean()) < expected_sd


def test_group_quantile_matches_per_group_numpy():
    rng = np.random.default_rng(7)
    values = rng.random(500)
    values[::17] = np.nan
    groups = rng.integers(0, 6, size=500)
    got = su.group_quantile(values, groups, 7, 0.5)  # group 6 is empty
    for g in range(6):
        assert np.isclose(got[g], np.nanmedian(values[groups == g]))
    assert np.isnan(got[6])


def test_fit_line_and_correlation():
    fit = su.fit_line([1, 2, 3, 4], [3.0, 5.0, 7.0, 9.0])
    assert fit is not None
    assert np.isclose(fit["slope"], 2.0) and np.isclose(fit["intercept"], 1.0)
    assert np.isclose(fit["r"], 1.0)
    assert su.fit_line([1, 2], [1.0, 2.0]) is None
    assert su.correlation(np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0, 5.0])) is None


def test_sort_levels_numeric_first():
    assert su.sort_levels(["10", "2", "aime", "1", "gsm8k"]) == ["1", "2", "10", "aime", "gsm8k"]


def test_decimate_keeps_extremes():
    t = np.arange(100_000, dtype=float)
    y = np.zeros(100_000)
    y[12_345] = 5.0
    y[77_777] = -3.0
    xs, ys = su.decimate(t, y, max_points=200)
    assert len(xs) <= 200
    assert ys.max() == 5.0 and ys.min() == -3.0
    assert np.all(np.diff(xs) > 0)
    assert 12_345.0 in xs


def test_per_problem_accuracy_is_avg_at_n():
    rows = [request(i, problem_id=f"p{i % 3}", sample_index=i // 3, correct=(i % 4 == 0))
            for i in range(12)]
    rows.append(request(99, problem_id="p9", correct=None))  # ungraded: left out
    table = requests_table(rows)
    keys, acc = su.per_problem_accuracy(table)
    assert len(keys) == 3
    assert np.isclose(acc.mean(), avg_at_n(rows)["avg"])


def test_truncated_flags_fall_back_to_finish_reason():
    table = requests_table([
        request(0, truncated=True, finish_reason="stop"),
        request(1, truncated=None, finish_reason="length"),
        request(2, truncated=None, finish_reason="stop"),
        request(3, truncated=None, finish_reason=None),
    ])
    flags = su.truncated_flags(table)
    assert flags[:3].tolist() == [1.0, 1.0, 0.0]
    assert np.isnan(flags[3])
