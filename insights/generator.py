"""Seeded per-minute engagement series for tests and the benchmark: a daily cycle, multiplicative
noise (per minute and a slow drift), Poisson counts, a campaign's ramp-up and decay, and injected
events (spikes, stalls, engagement-rate drops) whose positions are returned with the series."""

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from schemas.insights import InsightKind

MINUTES_PER_DAY = 1440


@dataclass(frozen=True, slots=True)
class Injection:
    """An event placed on a series: minutes [start, start + duration) of the series.

    `spike` multiplies views (and so engagements) by `factor`; `stall` multiplies views by
    `factor` (0.1: nine tenths of the audience gone); `rateDrop` multiplies the engagement rate
    by `factor` while views stay as they were."""

    kind: InsightKind
    start: int
    duration: int
    factor: float

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class CampaignProfile:
    """How a campaign's audience behaves. Rates are per minute at the daily mean."""

    views_per_minute: float = 120.0
    engagement_rate: float = 0.06
    daily_amplitude: float = 0.5  # first harmonic, relative to the daily mean
    peak_hour: float = 19.0  # UTC hour of the daily peak
    noise: float = 0.15  # lognormal sigma of each minute's rate
    drift: float = 0.10  # stationary lognormal sigma of a slow level drift
    drift_minutes: float = 90.0  # correlation time of the drift
    rate_noise: float = 0.10  # lognormal sigma of each minute's engagement rate
    ramp_hours: float = 0.0  # logistic ramp-up time scale (0: none)
    half_life_days: float = 0.0  # decay of the audience after the ramp (0: stationary)


@dataclass(frozen=True, slots=True)
class Series:
    """Per-minute counts from `start_minute` (minutes since the Unix epoch, UTC)."""

    start_minute: int
    views: npt.NDArray[np.int64]
    engagements: npt.NDArray[np.int64]
    injections: tuple[Injection, ...] = field(default=())

    def hourly(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Views and engagements summed per whole hour (the series must start on an hour)."""
        if self.start_minute % 60:
            raise ValueError("hourly sums need a series that starts on a whole hour")
        hours = len(self.views) // 60
        shape = (hours, 60)
        return (
            self.views[: hours * 60].reshape(shape).sum(axis=1),
            self.engagements[: hours * 60].reshape(shape).sum(axis=1),
        )


def daily_cycle(
    minutes: npt.NDArray[np.int64], amplitude: float, peak_hour: float
) -> npt.NDArray[np.float64]:
    """Relative audience by time of day (mean about 1): a first harmonic peaking at `peak_hour`
    and a smaller second one, so mornings and evenings are not mirror images."""
    hour = (minutes % MINUTES_PER_DAY) / 60.0
    phase = 2 * math.pi * (hour - peak_hour) / 24.0
    cycle = 1.0 + amplitude * np.cos(phase) + 0.25 * amplitude * np.cos(2 * phase + 1.0)
    return np.maximum(cycle, 0.05)


def random_profile(rng: np.random.Generator, *, stationary: bool = False) -> CampaignProfile:
    """A campaign drawn from a plausible population: small to large audiences, 2-10 % rates,
    mild to strong daily cycles; unless `stationary`, a ramp-up and a decay."""
    return CampaignProfile(
        views_per_minute=float(np.exp(rng.uniform(math.log(30), math.log(800)))),
        engagement_rate=float(rng.uniform(0.02, 0.10)),
        daily_amplitude=float(rng.uniform(0.2, 0.6)),
        peak_hour=float(rng.uniform(0, 24)),
        noise=float(rng.uniform(0.08, 0.2)),
        drift=float(rng.uniform(0.05, 0.12)),
        drift_minutes=float(rng.uniform(45, 180)),
        rate_noise=float(rng.uniform(0.05, 0.15)),
        ramp_hours=0.0 if stationary else float(rng.uniform(2, 24)),
        half_life_days=0.0 if stationary else float(rng.uniform(3, 20)),
    )


def _drift(rng: np.random.Generator, n: int, sigma: float, tau: float) -> npt.NDArray[np.float64]:
    """A stationary AR(1) log-level with standard deviation `sigma`, correlation time `tau`."""
    if sigma <= 0 or n == 0:
        return np.zeros(n)
    phi = math.exp(-1.0 / tau)
    shocks = rng.normal(0.0, sigma * math.sqrt(1 - phi * phi), n)
    shocks[0] = rng.normal(0.0, sigma)
    # AR(1) as a linear filter: x_t = phi x_{t-1} + e_t, evaluated blockwise to stay vectorised.
    out = np.empty(n)
    x = 0.0
    # Blocks short enough that phi**-block stays far from overflow.
    block = max(1, min(512, int(20 * tau)))
    powers = phi ** np.arange(block)
    for lo in range(0, n, block):
        e = shocks[lo : lo + block]
        k = len(e)
        # x_{lo+i} = phi^(i+1) x + sum_j phi^(i-j) e_j, via a scaled cumulative sum.
        scaled = np.cumsum(e / powers[:k]) * powers[:k]
        out[lo : lo + k] = scaled + x * powers[:k] * phi
        x = float(out[lo + k - 1])
    return out


def _audience(
    rng: np.random.Generator, minutes: int, p: CampaignProfile, start_minute: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Views a minute from the daily cycle, ramp and decay; each minute's own noise; the slow
    drift (both log scale), drawn from `rng` in this order."""
    t = np.arange(minutes, dtype=np.int64)
    mean = p.views_per_minute * daily_cycle(t + start_minute, p.daily_amplitude, p.peak_hour)
    if p.ramp_hours > 0:
        mean = mean / (1.0 + np.exp(-(t / 60.0 - 2 * p.ramp_hours) / (p.ramp_hours / 2)))
    if p.half_life_days > 0:
        mean = mean * np.exp(-math.log(2) * t / (p.half_life_days * MINUTES_PER_DAY))
    minute_noise = rng.normal(0.0, p.noise, minutes)
    return mean, minute_noise, _drift(rng, minutes, p.drift, p.drift_minutes)


def slow_views(
    seed: int, minutes: int, profile: CampaignProfile | None = None, start_minute: int = 0
) -> npt.NDArray[np.float64]:
    """The views a minute `campaign_series` with the same arguments draws its counts around
    before each minute's own noise (lognormal, sigma `profile.noise`) and the Poisson count:
    daily cycle, ramp, decay and drift, without injected events. What an oracle that knows
    everything but a minute's own randomness expects (the benchmark's bound on spike delay)."""
    p = profile or CampaignProfile()
    mean, _, drift = _audience(np.random.default_rng(seed), minutes, p, start_minute)
    variance = p.noise**2 + p.drift**2
    slow: npt.NDArray[np.float64] = mean * np.exp(drift - variance / 2)
    return slow


def campaign_series(
    seed: int,
    minutes: int,
    profile: CampaignProfile | None = None,
    injections: tuple[Injection, ...] = (),
    start_minute: int = 0,
) -> Series:
    """`minutes` of a campaign's views and engagements, the same for the same arguments.

    Views per minute are Poisson around rate x daily cycle x ramp x decay x noise x drift;
    engagements are binomial on the views with the (noisy) engagement rate."""
    rng = np.random.default_rng(seed)
    p = profile or CampaignProfile()
    mean, minute_noise, drift = _audience(rng, minutes, p, start_minute)
    # exp(x - sigma^2/2) keeps the noise's mean at 1.
    variance = p.noise**2 + p.drift**2
    mean = mean * np.exp(minute_noise + drift - variance / 2)
    rate = np.full(minutes, p.engagement_rate)
    for event in injections:
        window = slice(max(event.start, 0), max(min(event.end, minutes), 0))
        if event.kind in ("spike", "stall"):
            mean[window] *= event.factor
        else:
            rate[window] *= event.factor
    rate = np.clip(rate * np.exp(rng.normal(0.0, p.rate_noise, minutes)), 0.0, 1.0)
    views = rng.poisson(mean)
    engagements = rng.binomial(views, rate)
    return Series(start_minute, views.astype(np.int64), engagements.astype(np.int64), injections)


def spaced_injections(
    rng: np.random.Generator,
    kind: InsightKind,
    count: int,
    first: int,
    last: int,
    duration: tuple[int, int],
    factor: float,
    gap: int = 360,
) -> tuple[Injection, ...]:
    """`count` events of one kind starting in [first, last), each `gap` minutes or more after the
    previous one ended (so each is its own episode), durations drawn from `duration`."""
    events: list[Injection] = []
    span = (last - first) // count
    for i in range(count):
        lo = first + i * span
        length = int(rng.integers(duration[0], duration[1] + 1))
        room = max(span - length - gap, 1)
        events.append(Injection(kind, lo + int(rng.integers(0, room)), length, factor))
    return tuple(events)
