"""Campaign forecasts on generated hourly series: intervals that hold about 80 % of what
follows, better than repeating the last day, the short-history fallback named, and the shape of
an answer."""

import numpy as np
import pytest

from insights.forecast import (
    DEFAULT_HORIZON_HOURS,
    MAX_HORIZON_HOURS,
    forecast_campaign,
    horizon_hours,
    last_day_repeated,
)
from insights.generator import campaign_series, random_profile

FIRST_HOUR = 472_224  # a UTC midnight, in hours since the epoch
SEEDS = range(4000, 4010)  # not among the seeds the model was tuned on (0-19)


def hourly(seed: int, days: int) -> tuple[np.ndarray, np.ndarray]:
    profile = random_profile(np.random.default_rng(seed))
    views, engagements = campaign_series(seed, days * 1440, profile, (), FIRST_HOUR * 60).hourly()
    return views.astype(np.float64), engagements.astype(np.float64)


def test_the_80_percent_interval_holds_about_80_percent_of_the_next_three_days() -> None:
    inside: list[float] = []
    for seed in SEEDS:
        views, engagements = hourly(seed, 12)
        for origin in range(120, 12 * 24 - 72 + 1, 24):
            forecast = forecast_campaign(views[:origin], engagements[:origin], FIRST_HOUR, 72)
            for metric, actual in (
                (forecast.views, views[origin : origin + 72]),
                (forecast.engagements, engagements[origin : origin + 72]),
            ):
                assert np.all(metric.lower <= metric.point)
                assert np.all(metric.point <= metric.upper)
                inside.append(float(np.mean((metric.lower <= actual) & (actual <= metric.upper))))
    assert 0.7 <= float(np.mean(inside)) <= 0.92


def test_the_forecast_beats_the_last_day_repeated() -> None:
    horizons = (1, 6, 24, 72)
    model: dict[int, list[float]] = {h: [] for h in horizons}
    naive: dict[int, list[float]] = {h: [] for h in horizons}
    for seed in SEEDS:
        views, engagements = hourly(seed, 12)
        for origin in range(72, 12 * 24 - 72 + 1, 24):
            forecast = forecast_campaign(views[:origin], engagements[:origin], FIRST_HOUR, 72)
            repeated = last_day_repeated(views[:origin], 72)
            for h in horizons:
                actual = views[origin + h - 1]
                model[h].append(abs(forecast.views.point[h - 1] - actual) / actual)
                naive[h].append(abs(repeated[h - 1] - actual) / actual)
    for h in horizons:
        assert np.mean(model[h]) < np.mean(naive[h]), h
    overall = np.mean([np.mean(model[h]) for h in horizons])
    assert overall <= 0.75 * np.mean([np.mean(naive[h]) for h in horizons])


def test_a_short_history_falls_back_to_the_run_rate_and_says_so() -> None:
    views, engagements = hourly(4100, 2)
    forecast = forecast_campaign(views[:30], engagements[:30], FIRST_HOUR, 24)

    assert forecast.model == "runRate"
    assert (forecast.history_hours, forecast.history_from) == (30, FIRST_HOUR)
    assert forecast.history_to == FIRST_HOUR + 30
    assert np.allclose(forecast.views.point, views[6:30].mean())
    assert forecast.views.total == pytest.approx(views[:30].sum() + 24 * views[6:30].mean())
    assert forecast.views.total_lower < forecast.views.total < forecast.views.total_upper
    rate = forecast.engagement_rate
    assert rate.total_lower <= rate.total <= rate.total_upper
    assert 0 < rate.total < 1


def test_two_days_of_history_use_the_seasonal_model_and_name_it() -> None:
    views, engagements = hourly(4101, 9)
    forecast = forecast_campaign(views[:200], engagements[:200], FIRST_HOUR, 100)

    assert forecast.model == "dampedTrendDaily"
    assert forecast.history_hours == 200
    assert forecast.horizon_hours == 100
    for metric in (forecast.views, forecast.engagements, forecast.engagement_rate):
        assert metric.point.shape == metric.lower.shape == metric.upper.shape == (100,)
        assert metric.total_lower <= metric.total <= metric.total_upper
        assert {"slopePerHour", "rho", "residualSd"} <= set(metric.parameters)
    # Totals count the history; the campaign's rate is its engagements over its views.
    assert forecast.views.total == pytest.approx(views[:200].sum() + forecast.views.point.sum())
    expected_rate = (engagements[:200].sum() + forecast.engagements.point.sum()) / (
        views[:200].sum() + forecast.views.point.sum()
    )
    assert forecast.engagement_rate.total == pytest.approx(expected_rate)


def test_the_horizon_runs_to_the_end_date_or_a_week() -> None:
    assert horizon_hours(100, None) == DEFAULT_HORIZON_HOURS
    assert horizon_hours(100, 150) == 49
    assert horizon_hours(100, 90) == 1
    assert horizon_hours(100, 100 + 10 * MAX_HORIZON_HOURS) == MAX_HORIZON_HOURS


def test_without_history_or_horizon_there_is_no_forecast() -> None:
    with pytest.raises(ValueError, match="hours"):
        forecast_campaign([], [], FIRST_HOUR, 24)
    with pytest.raises(ValueError, match="horizon"):
        forecast_campaign([1.0] * 48, [1.0] * 48, FIRST_HOUR, 0)


def test_the_naive_baseline_repeats_the_last_day() -> None:
    history = np.arange(48, dtype=np.float64)
    assert list(last_day_repeated(history, 26)) == [*range(24, 48), 24, 25]


@pytest.mark.parametrize("horizon", [1, 24, 73, 168])
def test_every_interval_holds_its_own_forecast_whatever_hour_the_history_starts(
    horizon: int,
) -> None:
    # A clean daily cycle: the engagement rate's point (projected engagements over projected
    # views) once fell just outside the rate model's own bounds.
    for first in range(FIRST_HOUR, FIRST_HOUR + 48):
        hours = np.arange(first, first + 96)
        level = 1000 * (1 + 0.5 * np.sin(2 * np.pi * (hours % 24) / 24))
        views = np.floor(level)
        engagements = np.floor(level * 0.08) + 5
        forecast = forecast_campaign(views, engagements, first, horizon)
        for metric in (forecast.views, forecast.engagements, forecast.engagement_rate):
            assert metric.total_lower <= metric.total <= metric.total_upper, (first, metric)
