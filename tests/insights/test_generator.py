"""The series generator: the same seed gives the same series, and injected events are where
they are said to be."""

import numpy as np
import pytest

from insights.generator import CampaignProfile, Injection, campaign_series, slow_views

PROFILE = CampaignProfile(views_per_minute=200.0, engagement_rate=0.05)


def test_the_same_seed_gives_the_same_series_and_another_seed_another() -> None:
    a = campaign_series(1, 600, PROFILE)
    b = campaign_series(1, 600, PROFILE)
    c = campaign_series(2, 600, PROFILE)
    assert np.array_equal(a.views, b.views)
    assert np.array_equal(a.engagements, b.engagements)
    assert not np.array_equal(a.views, c.views)


def test_injected_events_move_the_series_by_their_factor() -> None:
    events = (
        Injection("spike", 100, 60, 3.0),
        Injection("stall", 300, 60, 0.1),
        Injection("rateDrop", 500, 60, 0.3),
    )
    s = campaign_series(3, 700, PROFILE, events)
    views, engagements = s.views.astype(float), s.engagements.astype(float)

    def ratio(values: np.ndarray, event: Injection) -> float:
        before = values[event.start - 60 : event.start].mean()
        return float(values[event.start : event.end].mean() / before)

    assert ratio(views, events[0]) == pytest.approx(3.0, rel=0.2)
    assert ratio(views, events[1]) == pytest.approx(0.1, rel=0.3)
    assert ratio(views, events[2]) == pytest.approx(1.0, rel=0.2)
    assert ratio(engagements / np.maximum(views, 1), events[2]) == pytest.approx(0.3, rel=0.25)


def test_hourly_sums_need_a_whole_hour_start() -> None:
    s = campaign_series(4, 180, PROFILE, start_minute=60)
    views, _ = s.hourly()
    assert list(views) == [int(s.views[i * 60 : (i + 1) * 60].sum()) for i in range(3)]
    with pytest.raises(ValueError, match="whole hour"):
        campaign_series(4, 120, PROFILE, start_minute=30).hourly()


def test_slow_views_are_what_the_counts_are_drawn_around_before_a_minutes_own_noise() -> None:
    profile = CampaignProfile(
        views_per_minute=50.0, noise=0.2, drift=0.2, ramp_hours=3.0, half_life_days=2
    )
    spike = Injection("spike", 2000, 60, 3.0)
    s = campaign_series(5, 3 * 1440, profile, (spike,))
    slow = slow_views(5, 3 * 1440, profile)
    quiet = np.r_[0 : spike.start, spike.end : 3 * 1440]

    # A minute's lognormal noise has mean exp(sigma^2 / 2) around the slow mean.
    ratio = s.views[quiet].sum() / slow[quiet].sum()
    assert ratio == pytest.approx(np.exp(profile.noise**2 / 2), rel=0.01)
    # The drift (sigma 0.2) is in it: hour by hour the counts stay within a few percent of it,
    # where a minute's noise and Poisson counts alone leave them (after the ramp, spike aside).
    hours = [h for h in range(12, 72) if not spike.start // 60 <= h <= spike.end // 60]
    counts = s.views[: 72 * 60].reshape(72, 60).sum(axis=1)[hours]
    expected = slow[: 72 * 60].reshape(72, 60).sum(axis=1)[hours] * np.exp(profile.noise**2 / 2)
    assert np.std(np.log(counts / expected)) < 0.05
    # Injected events are not in it.
    assert slow[spike.start : spike.end].mean() < 1.5 * slow[spike.start - 60 : spike.start].mean()
