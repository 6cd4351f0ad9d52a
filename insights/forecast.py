"""Forecasts of a campaign's hourly views, engagements and engagement rate to a horizon, with an
80 % interval, from the campaign's own hourly series. Pure numpy; see docs/insights.md.

Model (two days of history or more), on log(1 + count) (the log of the rate for the engagement
rate), "dampedTrendDaily": today's level (the last 24 hours' mean, moved half a day along the
slope), a slope fitted to the last three days' means, shrunk and bounded (a decay is carried
ahead, a launch's growth is not), an hour-of-day profile (the median shape of up to 7 days, each
with its own trend taken out, smoothed) blended with a little of the last day itself, and the
last hour's deviation decaying by its lag-1 autocorrelation. Intervals: the 10th/90th
percentiles of the same model's errors per horizon in a backtest over the history (origins every
6 hours). Fallback (less than two days): "runRate", the mean of the last (up to) 24 hours, flat.
"""

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from schemas.insights import ForecastModel

Floats = npt.NDArray[np.float64]

PERIOD = 24
MIN_SEASONAL_HOURS = 2 * PERIOD
DEFAULT_HORIZON_HOURS = 7 * PERIOD
MAX_HORIZON_HOURS = 90 * PERIOD
COVERAGE = 0.8
PROFILE_DAYS = 7  # days whose median shape is the hour-of-day profile
PROFILE_SMOOTHING = 2  # passes of a [1, 2, 1] kernel over the profile
SLOPE_DAYS = 3  # daily means the slope is fitted to (least squares)
SLOPE_SHRINK = 0.75  # share of the fitted slope carried ahead (it is a noisy estimate)
NAIVE_BLEND = 0.15  # weight of the last day (moved along the slope) in the daily curve
MAX_DECAY = 0.01  # per hour on the log scale: a decay of at most 21 % a day is carried
MAX_GROWTH = 0.0  # growth is not carried: a launch levels off
BACKTEST_STEP = 6  # hours between backtest origins
BACKTEST_HORIZONS = (1, 2, 3, 6, 12, 24, 48, 72)
_MIN_ERRORS = 8  # backtest errors a horizon needs before its percentiles are used
_Z80 = 1.2816  # the standard normal's 90th percentile
_RATE_FLOOR = 1e-4  # an engagement rate under this is taken as this before the log


@dataclass(frozen=True, slots=True)
class MetricForecast:
    """Hourly forecasts after the last hour of history (`point`, `lower`, `upper`, one per hour
    of the horizon), and the value at the horizon's end: for views and engagements the campaign's
    total (history included), for the engagement rate the campaign's rate over all its hours.
    Intervals are 80 %; the totals' bounds add the hourly bounds (errors taken as moving
    together, so they are, if anything, wide)."""

    point: Floats
    lower: Floats
    upper: Floats
    total: float
    total_lower: float
    total_upper: float
    parameters: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CampaignForecast:
    """A campaign's forecast and what it was made from. Hours are hours since the Unix epoch
    (UTC); the history is [history_from, history_to), the horizon the hours after it."""

    model: ForecastModel
    history_hours: int
    history_from: int
    history_to: int
    horizon_hours: int
    views: MetricForecast
    engagements: MetricForecast
    engagement_rate: MetricForecast


@dataclass(frozen=True, slots=True)
class _Curve:
    slope: float  # per hour, at the last hour
    season: Floats  # by hour of day, the level included (the value at the last hour's hour)
    rho: float  # lag-1 autocorrelation of the residuals
    last_residual: float
    residual_sd: float


def horizon_hours(last_hour: int, end_hour: int | None) -> int:
    """Hours from the hour after `last_hour` to the campaign's end (`end_hour`, exclusive), or
    `DEFAULT_HORIZON_HOURS` without an end; at least 1, at most `MAX_HORIZON_HOURS`."""
    hours = DEFAULT_HORIZON_HOURS if end_hour is None else end_hour - last_hour - 1
    return max(1, min(hours, MAX_HORIZON_HOURS))


def _fit(y: Floats, first_hour: int) -> _Curve:
    """Level, slope, profile and residual correlation of a transformed hourly series (at least
    two days): the history is cut into 24-hour blocks ending at its last hour."""
    n = len(y)
    days = min(PROFILE_DAYS, n // PERIOD)
    blocks = y[n - days * PERIOD :].reshape(days, PERIOD)  # oldest first
    means = blocks.mean(axis=1)
    # Least squares over the last few days' means (two days alone: one noisy difference).
    recent = means[-min(SLOPE_DAYS, days) :]
    steps = np.arange(len(recent)) - (len(recent) - 1) / 2
    raw = float(steps @ (recent - recent.mean()) / (steps @ steps)) / PERIOD
    bounded = float(np.clip(raw, -MAX_DECAY, MAX_GROWTH))
    within = np.arange(PERIOD) - (PERIOD - 1) / 2
    # Each day's own trend (central differences of the daily means) comes out of its shape, so a
    # launch's growth is not taken for a daily cycle.
    slopes = np.gradient(means) / PERIOD
    deviations = blocks - means[:, None] - slopes[:, None] * within
    profile = np.median(deviations, axis=0)
    # Audiences change smoothly over the day: smoothing halves the profile's noise.
    for _ in range(PROFILE_SMOOTHING):
        profile = (np.roll(profile, 1) + 2 * profile + np.roll(profile, -1)) / 4
    profile -= profile.mean()
    hours = (first_hour + n - days * PERIOD + np.arange(PERIOD)) % PERIOD
    season = np.empty(PERIOD)
    season[hours] = means[-1] + bounded * (PERIOD - 1) / 2 + profile
    # A little of the last day itself (what the smooth profile misses of this campaign's day),
    # a day along the slope once `_path` adds its steps.
    slope = SLOPE_SHRINK * bounded
    last_day = blocks[-1] + slope * (PERIOD - 1 - np.arange(PERIOD))
    season[hours] = (1 - NAIVE_BLEND) * season[hours] + NAIVE_BLEND * last_day
    residuals = (blocks - (means[:, None] + slopes[:, None] * within + profile)).ravel()
    previous, current = residuals[:-1], residuals[1:]
    rho = float(np.clip((previous @ current) / max(float(previous @ previous), 1e-12), 0, 0.95))
    return _Curve(slope, season, rho, float(residuals[-1]), float(residuals.std()))


def _path(curve: _Curve, first_hour: int, n: int, horizon: int) -> Floats:
    """The point forecast (transformed) for the `horizon` hours after `n` hours of history."""
    steps = np.arange(1, horizon + 1)
    hours = (first_hour + n - 1 + steps) % PERIOD
    path: Floats = curve.season[hours] + curve.slope * steps
    return path + curve.last_residual * curve.rho**steps


def _backtest(y: Floats, first_hour: int) -> dict[int, tuple[float, float]]:
    """10th/90th percentiles of the model's errors per horizon, from origins in the history."""
    n = len(y)
    errors: dict[int, list[float]] = {k: [] for k in BACKTEST_HORIZONS}
    longest = BACKTEST_HORIZONS[-1]
    for origin in range(n - 1, MIN_SEASONAL_HOURS - 1, -BACKTEST_STEP):
        ahead = min(longest, n - origin)
        path = _path(_fit(y[:origin], first_hour), first_hour, origin, ahead)
        for k in BACKTEST_HORIZONS:
            if k <= ahead:
                errors[k].append(float(y[origin + k - 1] - path[k - 1]))
    tail = (1 - COVERAGE) / 2
    return {
        k: (float(np.quantile(e, tail)), float(np.quantile(e, 1 - tail)))
        for k, e in errors.items()
        if len(e) >= _MIN_ERRORS
    }


def _forecast(y: Floats, first_hour: int, horizon: int) -> tuple[Floats, Floats, Floats, _Curve]:
    """Point and 80 % bounds on the transformed scale. A horizon takes the backtest spread of
    the nearest measured horizon at or below it, grown as the square root of the ratio; without
    backtest errors, the residuals' spread as a normal one."""
    curve = _fit(y, first_hour)
    point = _path(curve, first_hour, len(y), horizon)
    spreads = _backtest(y, first_hour)
    measured = sorted(spreads)
    lower = np.empty(horizon)
    upper = np.empty(horizon)
    for i in range(horizon):
        h = i + 1
        k = max((m for m in measured if m <= h), default=1)
        lo, hi = spreads.get(k, (-_Z80 * curve.residual_sd, _Z80 * curve.residual_sd))
        grow = float(np.sqrt(h / k))
        lower[i] = point[i] + min(lo, 0.0) * grow
        upper[i] = point[i] + max(hi, 0.0) * grow
    return point, lower, upper, curve


def _parameters(curve: _Curve) -> dict[str, float]:
    return {
        "profileDays": float(PROFILE_DAYS),
        "slopeShrink": SLOPE_SHRINK,
        "slopeDays": float(SLOPE_DAYS),
        "lastDayWeight": NAIVE_BLEND,
        "slopePerHour": curve.slope,
        "rho": curve.rho,
        "residualSd": curve.residual_sd,
    }


def _counts(history: Floats, first_hour: int, horizon: int) -> tuple[MetricForecast, Floats]:
    *bounds, curve = _forecast(np.log1p(history), first_hour, horizon)
    point, lower, upper = (np.maximum(np.expm1(v), 0.0) for v in bounds)
    past = float(history.sum())
    parameters = _parameters(curve)
    forecast = MetricForecast(
        point,
        lower,
        upper,
        past + float(point.sum()),
        past + float(lower.sum()),
        past + float(upper.sum()),
        parameters,
    )
    return forecast, point


def _rate(
    views: Floats,
    engagements: Floats,
    first_hour: int,
    horizon: int,
    views_ahead: Floats,
    engagements_ahead: Floats,
) -> MetricForecast:
    rate = np.where(views > 0, engagements / np.maximum(views, 1.0), np.nan)
    # Hours without views take the campaign's overall rate.
    overall = engagements.sum() / max(views.sum(), 1.0)
    rate = np.where(np.isnan(rate), overall, rate)
    *bounds, curve = _forecast(np.log(np.maximum(rate, _RATE_FLOOR)), first_hour, horizon)
    point, lower, upper = (np.exp(v) for v in bounds)
    weights = np.maximum(views_ahead, 0.0)
    total_views = views.sum() + weights.sum()
    past = engagements.sum()

    def overall_rate(hourly: Floats) -> float:
        return float((past + (weights * hourly).sum()) / max(total_views, 1.0))

    # The point is projected engagements over projected views; the rate model gives the
    # interval's width around it, relative to its own point (its point can differ a little).
    total = float((past + engagements_ahead.sum()) / max(total_views, 1.0))
    reference = overall_rate(point)
    if reference > 0:
        total_lower = total * overall_rate(lower) / reference
        total_upper = total * overall_rate(upper) / reference
    else:
        total_lower, total_upper = overall_rate(lower), overall_rate(upper)
    parameters = _parameters(curve)
    return MetricForecast(
        point,
        lower,
        upper,
        total,
        min(total_lower, total),
        max(total_upper, total),
        parameters,
    )


def _run_rate(history: Floats, horizon: int) -> MetricForecast:
    """Flat at the mean of the last (up to) 24 hours; bounds from the spread of those hours
    around it, widened as the horizon grows past the history it rests on."""
    recent = history[-PERIOD:]
    level = float(recent.mean())
    if level > 0 and len(recent) > 1:
        ratios = recent / level
        lo, hi = np.quantile(ratios, [(1 - COVERAGE) / 2, (1 + COVERAGE) / 2])
    else:
        lo, hi = 0.0, 2.0
    steps = np.arange(1, horizon + 1)
    widen = np.sqrt(1 + steps / max(len(history), 1))
    point = np.full(horizon, level)
    lower = level * np.maximum(1 - (1 - lo) * widen, 0.0)
    upper = level * (1 + (hi - 1) * widen)
    base = float(history.sum())
    return MetricForecast(
        point,
        lower,
        upper,
        base + float(point.sum()),
        base + float(lower.sum()),
        base + float(upper.sum()),
        {"hours": float(len(recent))},
    )


def _run_rate_of_rate(
    views: Floats, engagements: Floats, views_fc: MetricForecast, engagements_fc: MetricForecast
) -> MetricForecast:
    """The fallback's engagement rate: the recent hours' rate, flat; the rate at the horizon is
    the projected engagements over the projected views, its bounds as wide, relatively, as the
    hourly rate's at the horizon."""
    hourly = _run_rate(engagements / np.maximum(views, 1.0), len(views_fc.point))
    total = engagements_fc.total / max(views_fc.total, 1.0)
    level = max(float(hourly.point[-1]), 1e-12)
    return MetricForecast(
        hourly.point,
        hourly.lower,
        hourly.upper,
        total,
        total * min(1.0, float(hourly.lower[-1]) / level),
        total * max(1.0, float(hourly.upper[-1]) / level),
        hourly.parameters,
    )


def forecast_campaign(
    views: npt.ArrayLike, engagements: npt.ArrayLike, first_hour: int, horizon: int
) -> CampaignForecast:
    """Forecast `horizon` hours after the hourly history that starts at `first_hour` (hours
    since the epoch, UTC; views[i] and engagements[i] are the counts of hour first_hour + i).

    With `MIN_SEASONAL_HOURS` (48) hours or more, "dampedTrendDaily"; with fewer, "runRate"
    (`model` says which). Raises ValueError without any history or with a non-positive horizon.
    """
    v = np.asarray(views, dtype=np.float64)
    e = np.asarray(engagements, dtype=np.float64)
    if len(v) == 0 or len(v) != len(e):
        raise ValueError("views and engagements need the same, non-zero number of hours")
    if horizon < 1:
        raise ValueError("the horizon must be at least one hour")
    n = len(v)
    model: ForecastModel
    if n >= MIN_SEASONAL_HOURS:
        model = "dampedTrendDaily"
        views_fc, views_ahead = _counts(v, first_hour, horizon)
        engagements_fc, engagements_ahead = _counts(e, first_hour, horizon)
        rate_fc = _rate(v, e, first_hour, horizon, views_ahead, engagements_ahead)
    else:
        model = "runRate"
        views_fc = _run_rate(v, horizon)
        engagements_fc = _run_rate(e, horizon)
        rate_fc = _run_rate_of_rate(v, e, views_fc, engagements_fc)
    return CampaignForecast(
        model, n, first_hour, first_hour + n, horizon, views_fc, engagements_fc, rate_fc
    )


def last_day_repeated(history: npt.ArrayLike, horizon: int) -> Floats:
    """The naive baseline: each future hour takes the same hour of the last observed day (the
    history needs at least 24 hours)."""
    y = np.asarray(history, dtype=np.float64)
    steps = np.arange(1, horizon + 1)
    back = PERIOD * np.ceil(steps / PERIOD).astype(np.int64)
    repeated: Floats = y[len(y) - 1 + steps - back]
    return repeated
