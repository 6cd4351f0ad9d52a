"""Live spike, stall and engagement-rate-drop detection over per-minute series, one series pair
(views, engagements) per scope = (organisation, campaign or creator, id). Pure and in memory: a
stream processor feeds it minute rollups (`observe`) and closes minutes (`tick`, once a minute).

Each closed minute, for every scope at once (numpy over all scopes), the recent window (the last
15 minutes, its last 1 and 2 minutes, and each of the last two minutes alone, for a fast spike
onset) is compared with a robust baseline: the median and MAD of the same-length windows in the
2 hours before it, on values divided by the scope's hour-of-day profile once it has two days of
history, with a Theil-Sen trend over the baseline's 15-minute windows. The 2-minute window and
the persistence rule (each of the last two minutes at z 3.0 and 1.8x expected) expect a blend
of two levels: 0.3 of the baseline's, moved along its trend, and 0.7 of the recent window's own
(its 13 minutes before the last two), so a level that moved in the last hour is not read from a
baseline up to 2 hours old. Every alert reports the window's observed and expected counts and
its z. See docs/insights.md for the parameters and why.
"""

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from schemas.insights import InsightKind, InsightMetric, InsightStatus, ScopeKind

Floats = npt.NDArray[np.float64]
_MAD_TO_SD = 1.4826
MINUTES_PER_DAY = 1440

# Episode channels: one episode state per (scope, channel); a channel is a kind on a metric.
_CHANNELS: tuple[tuple[InsightKind, InsightMetric], ...] = (
    ("spike", "views"),
    ("spike", "engagements"),
    ("stall", "engagements"),
    ("rateDrop", "engagementRate"),
)
_VIEWS, _ENGAGEMENTS = 0, 1
# Which channels' episodes keep a metric's observed counts out of its baseline: a spike or stall
# of views, any episode of engagements (a rate drop leaves views alone).
_CLEANED_BY = {_VIEWS: [0, 2], _ENGAGEMENTS: [1, 2, 3]}


@dataclass(frozen=True, slots=True)
class Scope:
    """What a series belongs to: an organisation's campaign or creator."""

    org: str
    kind: ScopeKind
    id: str


@dataclass(frozen=True, slots=True)
class Insight:
    """A raised or cleared episode. Minutes are minutes since the Unix epoch (UTC); windows are
    [start, end), so `window_end` is the minute after the last one compared.

    `observed` and `expected` are counts over the window (spike, stall) or an engagement rate
    (rateDrop); `score` is the robust z of the observation against the baseline; `first_seen` is
    the minute the episode was first flagged (the same on its `cleared` event); `at` is the
    minute this event was decided on."""

    status: InsightStatus
    kind: InsightKind
    scope: Scope
    metric: InsightMetric
    observed: float
    expected: float
    score: float
    window_start: int
    window_end: int
    baseline_start: int
    baseline_end: int
    first_seen: int
    at: int


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Parameters; the defaults are the ones docs/insights.md measures and explains."""

    recent_minutes: int = 15
    baseline_windows: int = 8  # same-length windows before the recent one: 2 hours
    # Spike windows (minutes at the end of the recent window), each with its z and ratio gates.
    spike_windows: tuple[int, ...] = (1, 2, 15)
    spike_z: tuple[float, ...] = (6.5, 5.5, 6.0)
    spike_ratio: tuple[float, ...] = (2.1, 1.9, 1.7)
    # Persistence: the last two minutes each at this z and ratio or more (a spike lasts, a
    # noisy minute does not; reported as the 2-minute window). 0 turns it off.
    spike_pair_z: float = 3.0
    spike_pair_ratio: float = 1.8
    spike_min_excess: float = 20.0  # counts above expected, so tiny series do not alert
    # The level the 2-minute window and the persistence rule expect: this share of
    # it is the recent window's own level (its 13 minutes before the last two), the rest the
    # baseline's level moved along its trend. 0: the baseline's alone.
    recent_weight: float = 0.7
    stall_ratio: float = 0.4  # observed engagements at most this share of expected
    stall_z: float = 4.0
    rate_drop_ratio: float = 0.6  # engagement rate at most this share of its norm
    rate_drop_z: float = 4.0
    min_expected: float = 30.0  # expected engagements in the recent window (stall, rateDrop)
    clear_z: float = 2.0  # back to normal when |z| is below this ...
    clear_after: int = 5  # ... for this many minutes in a row
    dispersion: float = 0.15  # relative noise a count has at least, beside Poisson's
    relative_floor: float = 0.1  # an engagement rate's scale is at least this share of it
    trend: bool = True  # extrapolate the baseline's Theil-Sen trend to the recent window
    baseline_every: int = 5  # minutes between baseline refreshes (the recent window: every one)
    profile_alpha: float = 0.25  # weight of the newest day in the hour-of-day profile
    absorb_minutes: int = 60  # an episode longer than this enters the baseline
    idle_minutes: int = MINUTES_PER_DAY  # a scope silent this long is forgotten
    late_minutes: int = 15  # a bucket this far behind the clock is still added
    lead_minutes: int = 5  # ... and this far ahead of it

    def __post_init__(self) -> None:
        base = self.baseline_minutes
        if not len(self.spike_windows) == len(self.spike_z) == len(self.spike_ratio):
            raise ValueError("spike_windows, spike_z and spike_ratio need the same length")
        for w in (*self.spike_windows, self.recent_minutes):
            if w < 1 or w > self.recent_minutes or base % w:
                raise ValueError(f"window {w} must divide the baseline and fit the recent window")
        if self.spike_pair_z and 2 not in self.spike_windows:
            raise ValueError("the two-minute persistence rule needs a 2-minute spike window")
        if self.late_minutes > base:
            raise ValueError("late_minutes must not exceed the baseline")

    @property
    def baseline_minutes(self) -> int:
        return self.recent_minutes * self.baseline_windows

    @property
    def ring_minutes(self) -> int:
        return self.baseline_minutes + self.recent_minutes + self.lead_minutes


@dataclass(slots=True)
class _Baseline:
    """Robust statistics of one metric's baseline, in deseasonalised units."""

    level: Floats  # per minute, at `center`
    slope: Floats  # per minute per minute
    scale: dict[int, Floats]  # 1.4826 MAD of the w-minute sums, per window length w


_G = TypeVar("_G", bound=np.generic)


def _enlarged(array: npt.NDArray[_G], axis: int, size: int) -> npt.NDArray[_G]:
    """`array` with its `axis` grown to `size`, zero-filled."""
    shape = list(array.shape)
    shape[axis] = size
    out = np.zeros(shape, dtype=array.dtype)
    index = [slice(None)] * array.ndim
    index[axis] = slice(0, array.shape[axis])
    out[tuple(index)] = array
    return out


def _median(x: npt.NDArray[np.float32]) -> Floats:
    return np.median(x, axis=1).astype(np.float64)


def _mad(x: npt.NDArray[np.float32], median: Floats) -> Floats:
    return _MAD_TO_SD * _median(np.abs(x - median[:, None].astype(np.float32)))


def _theil_sen(windows: npt.NDArray[np.float32]) -> Floats:
    """Median pairwise slope across the columns (per column step)."""
    k = windows.shape[1]
    i, j = np.triu_indices(k, 1)
    steps = (j - i).astype(np.float32)
    slopes: npt.NDArray[np.float32] = (windows[:, j] - windows[:, i]) / steps
    return _median(slopes)


class Detector:
    """Spike, stall and rateDrop episodes over per-minute views and engagements.

    `observe(scope, minute, views, engagements)` adds a minute rollup (buckets of one minute may
    come in several parts; a bucket more than `late_minutes` behind or `lead_minutes` ahead of
    the clock is refused and counted in `refused`). `tick(now)` closes every minute before `now`
    (in order, once each) and returns the insights decided on them. The clock starts at the first
    observed minute. A scope is evaluated once its baseline (2 h) has passed since its first
    bucket; a campaign scope with no buckets is evaluated as zeros (that is what a stall is). The
    caller drops stalls of campaigns that are not live.

    Memory per scope is fixed (ring buffers of `ring_minutes` per metric, a 24-hour profile);
    a scope with no bucket for `idle_minutes` is forgotten, its open episode without an event.
    """

    def __init__(self, config: DetectorConfig | None = None, capacity: int = 1024) -> None:
        self.config = cfg = config or DetectorConfig()
        self.refused = 0
        self._ring = cfg.ring_minutes
        self._next: int | None = None
        self._slots: dict[Scope, int] = {}
        self._scopes: list[Scope | None] = []
        self._free: list[int] = []
        self._pending: tuple[list[int], list[int], list[float], list[float]] = ([], [], [], [])
        self._baseline: tuple[_Baseline, _Baseline] | None = None
        self._rate_norm: Floats = np.zeros(0)
        self._rate_scale: Floats = np.zeros(0)
        self._baseline_at = -(10**9)
        self._baseline_span = (0, 0)
        self._center = 0.0
        self._capacity = 0
        self._high = 0  # slots at or above this were never used
        self._grow(max(capacity, 1))

    # ----------------------------------------------------------------- state
    def _grow(self, capacity: int) -> None:
        """Allocate (first call) or enlarge every per-scope array to `capacity` slots."""
        n, old, channels = capacity, self._capacity, len(_CHANNELS)
        if not old:
            self._counts = np.zeros((2, n, self._ring), np.float32)
            self._hours = np.zeros((n, 24), np.float32)
            self._profile = np.zeros((n, 24), np.float32)
            self._profile_n = np.zeros((n, 24), np.uint8)
            self._hours_seen = np.zeros(n, np.int32)
            self._first = np.zeros(n, np.int64)
            self._last = np.zeros(n, np.int64)
            self._in_use = np.zeros(n, np.bool_)
            self._campaign = np.zeros(n, np.bool_)
            self._disturbed = np.zeros((n, 24), np.bool_)  # an episode in that hour of the day
            self._active = np.zeros((n, channels), np.bool_)
            self._calm = np.zeros((n, channels), np.int32)
            self._since = np.zeros((n, channels), np.int64)
        else:
            self._counts = _enlarged(self._counts, 1, n)
            self._hours = _enlarged(self._hours, 0, n)
            self._profile = _enlarged(self._profile, 0, n)
            self._profile_n = _enlarged(self._profile_n, 0, n)
            self._hours_seen = _enlarged(self._hours_seen, 0, n)
            self._first = _enlarged(self._first, 0, n)
            self._last = _enlarged(self._last, 0, n)
            self._in_use = _enlarged(self._in_use, 0, n)
            self._campaign = _enlarged(self._campaign, 0, n)
            self._disturbed = _enlarged(self._disturbed, 0, n)
            self._active = _enlarged(self._active, 0, n)
            self._calm = _enlarged(self._calm, 0, n)
            self._since = _enlarged(self._since, 0, n)
        self._scopes.extend([None] * (n - old))
        self._free.extend(range(n - 1, old - 1, -1))
        self._capacity = n

    def _slot(self, scope: Scope, minute: int) -> int:
        slot = self._slots.get(scope)
        if slot is not None:
            return slot
        if not self._free:
            self._grow(self._capacity * 2)
        slot = self._free.pop()
        self._slots[scope] = slot
        self._scopes[slot] = scope
        self._in_use[slot] = True
        if slot >= self._high:
            self._high = slot + 1
        self._campaign[slot] = scope.kind == "campaign"
        self._first[slot] = minute
        self._last[slot] = minute
        return slot

    def _forget(self, slots: npt.NDArray[np.intp]) -> None:
        for slot in slots.tolist():
            scope = self._scopes[slot]
            if scope is not None:
                del self._slots[scope]
            self._scopes[slot] = None
            self._free.append(slot)
        self._counts[:, slots] = 0
        arrays: tuple[npt.NDArray[np.generic], ...] = (self._hours, self._profile, self._profile_n)
        arrays += (self._hours_seen, self._in_use, self._disturbed)
        arrays += (self._active, self._calm, self._since)
        for array in arrays:
            array[slots] = 0

    def __len__(self) -> int:
        """Scopes held."""
        return len(self._slots)

    @property
    def capacity(self) -> int:
        """Scope slots allocated (doubled when full; freed slots are reused first)."""
        return self._capacity

    @property
    def bytes_per_scope(self) -> int:
        """Array memory held per scope slot (the dictionaries' entries aside)."""
        arrays: tuple[npt.NDArray[np.generic], ...] = (self._counts, self._hours, self._profile)
        arrays += (
            self._profile_n,
            self._hours_seen,
            self._first,
            self._last,
            self._in_use,
            self._campaign,
            self._disturbed,
        )
        arrays += (self._active, self._calm, self._since)
        return sum(a.nbytes for a in arrays) // self._capacity

    # ----------------------------------------------------------------- input
    def observe(self, scope: Scope, minute: int, views: float, engagements: float) -> None:
        """Add a minute rollup of `scope` (counts of that minute; several calls add up)."""
        if self._next is None:
            self._next = minute
        if (
            not self._next - self.config.late_minutes
            <= minute
            < self._next + (self.config.lead_minutes)
        ):
            self.refused += 1
            return
        slots, minutes, views_in, engagements_in = self._pending
        slots.append(self._slot(scope, minute))
        minutes.append(minute)
        views_in.append(views)
        engagements_in.append(engagements)

    def _apply_pending(self) -> None:
        slots_in, minutes_in, views_in, engagements_in = self._pending
        if not slots_in:
            return
        slots = np.asarray(slots_in, dtype=np.intp)
        minutes = np.asarray(minutes_in, dtype=np.int64)
        columns = minutes % self._ring
        np.add.at(self._counts[_VIEWS], (slots, columns), np.asarray(views_in, np.float32))
        np.add.at(
            self._counts[_ENGAGEMENTS], (slots, columns), np.asarray(engagements_in, np.float32)
        )
        np.maximum.at(self._last, slots, minutes)
        self._pending = ([], [], [], [])

    def tick(self, now: int) -> list[Insight]:
        """Close every minute before `now` not closed yet; the insights decided on them."""
        self._apply_pending()
        if self._next is None:
            return []
        insights: list[Insight] = []
        while self._next < now:
            minute = self._next
            insights.extend(self._close(minute))
            self._counts[:, :, (minute + self.config.lead_minutes) % self._ring] = 0
            self._next = minute + 1
        return insights

    # ------------------------------------------------------------ evaluation
    def _columns(self, start: int, length: int) -> npt.NDArray[np.int64]:
        return (start + np.arange(length, dtype=np.int64)) % self._ring

    def _factors(self, n: int, minutes: npt.NDArray[np.int64]) -> npt.NDArray[np.float32] | None:
        """Hour-of-day factors (mean 1) of `minutes` per scope, interpolated between hour
        centres; 1 for scopes with less than two days of history. None when no scope has one.

        Both metrics use the views' profile: engagements are too sparse in a small campaign
        for an hourly profile of their own, and the rate varies little over the day."""
        ready = self._profile_n[:n].min(axis=1) > 0
        if not ready.any():
            return None
        p = self._profile[:n]
        smooth = (np.roll(p, 1, axis=1) + 2 * p + np.roll(p, -1, axis=1)) / 4
        smooth = smooth / np.maximum(smooth.mean(axis=1, keepdims=True), 1e-9)
        smooth = np.maximum(smooth, 0.05)
        u = (minutes % MINUTES_PER_DAY) / 60.0 - 0.5
        h0 = np.floor(u).astype(np.int64)
        frac = (u - h0).astype(np.float32)
        f = smooth[:, h0 % 24] * (1 - frac) + smooth[:, (h0 + 1) % 24] * frac
        f[~ready] = 1.0
        factors: npt.NDArray[np.float32] = f.astype(np.float32)
        return factors

    def _refresh_baseline(self, minute: int, n: int) -> None:
        cfg = self.config
        base = cfg.baseline_minutes
        start = minute - cfg.recent_minutes - base + 1
        minutes = start + np.arange(base, dtype=np.int64)
        columns = minutes % self._ring
        stats: list[_Baseline] = []
        raw: list[npt.NDArray[np.float32]] = []
        for metric in (_VIEWS, _ENGAGEMENTS):
            x = self._counts[metric, :n][:, columns]
            raw.append(x)
            f = self._factors(n, minutes)
            d = x if f is None else x / f
            recent = cfg.recent_minutes
            windows = d.reshape(n, base // recent, recent).sum(axis=2)
            # Window sums per window step -> per-minute level per minute.
            slope = _theil_sen(windows) / (recent * recent) if cfg.trend else np.zeros(n)
            # Spread and level around the trend line, so a falling or rising baseline does not
            # pass for a noisy one.
            offsets = (np.arange(base) - (base - 1) / 2).astype(np.float32)
            flat = d - slope.astype(np.float32)[:, None] * offsets
            scale: dict[int, Floats] = {}
            level = np.zeros(n)
            for w in sorted({*cfg.spike_windows, recent}):
                sums = flat.reshape(n, base // w, w).sum(axis=2) if w > 1 else flat
                median = _median(sums)
                scale[w] = _mad(sums, median)
                if w == recent:
                    level = median / w
            stats.append(_Baseline(level, slope, scale))
        self._baseline = (stats[0], stats[1])
        self._baseline_at = minute
        self._baseline_span = (start, start + base)
        self._center = start + (base - 1) / 2
        # The engagement rate's norm: ratio of sums; its spread: MAD of the windows' rates.
        w = cfg.recent_minutes
        views = raw[_VIEWS].reshape(n, base // w, w).sum(axis=2)
        engagements = raw[_ENGAGEMENTS].reshape(n, base // w, w).sum(axis=2)
        norm = engagements.sum(axis=1) / np.maximum(views.sum(axis=1), 1.0)
        rates = np.where(views > 0, engagements / np.maximum(views, 1.0), norm[:, None])
        self._rate_norm = norm.astype(np.float64)
        self._rate_scale = _mad(rates.astype(np.float32), self._rate_norm)

    def _pad_baseline(self, n: int) -> None:
        """Zero statistics for the slots first used since the last refresh, up to `n`. Such a
        scope began after the baseline's span, so it is not evaluated before the next refresh
        (see `ready`); refreshing for it at once cost a pass over every scope (0.5 s at 60,000
        scopes) each minute a new scope appeared, instead of every `baseline_every` minutes."""
        assert self._baseline is not None
        for base in self._baseline:
            base.level = _enlarged(base.level, 0, n)
            base.slope = _enlarged(base.slope, 0, n)
            base.scale = {w: _enlarged(v, 0, n) for w, v in base.scale.items()}
        self._rate_norm = _enlarged(self._rate_norm, 0, n)
        self._rate_scale = _enlarged(self._rate_scale, 0, n)

    def _close(self, minute: int) -> list[Insight]:
        cfg = self.config
        n = self._high
        self._clean(minute - cfg.recent_minutes, n)
        if (minute + 1) % 60 == 0:
            self._close_hour(minute, n)
        idle = np.flatnonzero(self._in_use[:n] & (minute - self._last[:n] >= cfg.idle_minutes))
        if idle.size:
            self._forget(idle)
        # No scope has a baseline's worth of history yet (a fresh start, or the first two hours
        # replayed at a restore): nothing to judge, and no baseline to compute for it.
        start = minute - cfg.recent_minutes - cfg.baseline_minutes + 1
        if not (self._in_use[:n] & (self._first[:n] <= start)).any():
            return []
        if self._baseline is None or minute - self._baseline_at >= cfg.baseline_every:
            self._refresh_baseline(minute, n)
        elif len(self._rate_norm) < n:
            self._pad_baseline(n)
        assert self._baseline is not None
        ready = self._in_use[:n] & (self._first[:n] <= self._baseline_span[0])
        campaign = self._campaign[:n]
        if not ready.any():
            return []
        recent = cfg.recent_minutes
        minutes = minute - recent + 1 + np.arange(recent, dtype=np.int64)
        columns = minutes % self._ring
        # Per metric and window: observed, expected and robust z over the last w minutes.
        observed: dict[tuple[int, int], Floats] = {}
        expected: dict[tuple[int, int], Floats] = {}
        score: dict[tuple[int, int], Floats] = {}
        # Each of the last two minutes on its own: the lower z and ratio of the two, per metric.
        minutes_z: dict[int, tuple[Floats, Floats]] = {}
        for metric in (_VIEWS, _ENGAGEMENTS):
            base = self._baseline[metric]
            x = self._counts[metric, :n][:, columns].astype(np.float64)
            f = self._factors(n, minutes)
            f64 = np.ones_like(x) if f is None else f.astype(np.float64)
            before = x[:, :-2].sum(axis=1) / np.maximum(f64[:, :-2].sum(axis=1), 1e-9)
            a = cfg.recent_weight
            for w in sorted({*cfg.spike_windows, recent}):
                center = minute - (w - 1) / 2
                trend = np.clip(base.slope * (center - self._center), -base.level / 2, base.level)
                level = np.maximum(base.level + trend, 0.0)
                if a and w == 2:
                    level = (1 - a) * level + a * before
                fsum = f64[:, -w:].sum(axis=1)
                exp = level * fsum
                obs = x[:, -w:].sum(axis=1)
                # Counts vary at least as Poisson counts with a multiplicative noise would.
                floor = np.sqrt(exp + 1.0 + (cfg.dispersion * exp) ** 2)
                spread = np.maximum(base.scale[w] * fsum / w, floor)
                observed[metric, w] = obs
                expected[metric, w] = exp
                score[metric, w] = (obs - exp) / spread
            if cfg.spike_pair_z:
                level = np.maximum(
                    base.level
                    + np.clip(
                        base.slope * (minute - 1 - self._center), -base.level / 2, base.level
                    ),
                    0.0,
                )
                if a:
                    level = (1 - a) * level + a * before
                exp_pair = level[:, None] * f64[:, -2:]
                obs_pair = x[:, -2:]
                floor_pair = np.sqrt(exp_pair + 1.0 + (cfg.dispersion * exp_pair) ** 2)
                spread_pair = np.maximum(base.scale[1][:, None] * f64[:, -2:], floor_pair)
                z_pair = ((obs_pair - exp_pair) / spread_pair).min(axis=1)
                ratio_pair = (obs_pair / np.maximum(exp_pair, 1e-9)).min(axis=1)
                minutes_z[metric] = (z_pair, ratio_pair)
        views = observed[_VIEWS, recent]
        engaged = observed[_ENGAGEMENTS, recent]
        norm = self._rate_norm
        rate = engaged / np.maximum(views, 1.0)
        binomial = norm * (1 - norm) / np.maximum(views, 1.0)
        rate_floor = np.sqrt(binomial + (cfg.relative_floor * norm) ** 2)
        rate_spread = np.maximum(self._rate_scale, rate_floor)
        rate_z = (rate - norm) / np.maximum(rate_spread, 1e-12)
        rate_trigger = (
            campaign
            & (rate <= cfg.rate_drop_ratio * norm)
            & (rate_z <= -cfg.rate_drop_z)
            & (norm * views >= cfg.min_expected)
        )
        stall_z = score[_ENGAGEMENTS, recent]
        stall_trigger = (
            campaign
            & (engaged <= cfg.stall_ratio * expected[_ENGAGEMENTS, recent])
            & (stall_z <= -cfg.stall_z)
            & (expected[_ENGAGEMENTS, recent] >= cfg.min_expected)
            # Engagements lost with their views (a campaign gone silent included); lost at a
            # normal views level it is a rateDrop.
            & (
                (rate > cfg.rate_drop_ratio * norm)
                | (views <= cfg.stall_ratio * expected[_VIEWS, recent])
            )
        )
        triggers: list[npt.NDArray[np.bool_]] = []
        normals: list[npt.NDArray[np.bool_]] = []
        picked: list[npt.NDArray[np.intp]] = []
        for metric in (_VIEWS, _ENGAGEMENTS):
            hits = np.stack(
                [
                    (
                        (score[metric, w] >= z)
                        & (observed[metric, w] >= ratio * expected[metric, w])
                        | self._persistent(w, minutes_z.get(metric) if metric == _VIEWS else None)
                    )
                    & (observed[metric, w] - expected[metric, w] >= cfg.spike_min_excess)
                    for w, z, ratio in zip(
                        cfg.spike_windows, cfg.spike_z, cfg.spike_ratio, strict=True
                    )
                ]
            )
            zs = np.stack([score[metric, w] for w in cfg.spike_windows])
            picked.append(np.argmax(np.where(hits, zs, -np.inf), axis=0))
            triggers.append(np.any(hits, axis=0))
            normals.append(np.all(zs < cfg.clear_z, axis=0))
        triggers += [stall_trigger, rate_trigger]
        normals += [stall_z > -cfg.clear_z, rate_z > -cfg.clear_z]
        trigger = np.stack(triggers, axis=1) & ready[:, None]
        normal = np.stack(normals, axis=1) | ~ready[:, None]

        active, calm, since = self._active[:n], self._calm[:n], self._since[:n]
        raised = trigger & ~active
        calm[:] = np.where(active & normal, calm + 1, 0)
        cleared = active & (calm >= cfg.clear_after)
        active[:] = (active | raised) & ~cleared
        since[raised] = minute
        self._disturbed[:n, (minute // 60) % 24] |= active.any(axis=1)
        if not (raised.any() or cleared.any()):
            return []

        def event(slot: int, channel: int, status: InsightStatus) -> Insight:
            kind, metric_name = _CHANNELS[channel]
            scope = self._scopes[slot]
            assert scope is not None
            if kind == "rateDrop":
                w, obs, exp, z = recent, rate[slot], norm[slot], rate_z[slot]
            else:
                metric = _VIEWS if metric_name == "views" else _ENGAGEMENTS
                w = cfg.spike_windows[picked[metric][slot]] if kind == "spike" else recent
                key = (metric, w)
                obs, exp, z = observed[key][slot], expected[key][slot], score[key][slot]
            return Insight(
                status=status,
                kind=kind,
                scope=scope,
                metric=metric_name,
                observed=float(obs),
                expected=float(exp),
                score=float(z) if math.isfinite(z) else 0.0,
                window_start=minute - w + 1,
                window_end=minute + 1,
                baseline_start=self._baseline_span[0],
                baseline_end=self._baseline_span[1],
                first_seen=int(self._since[slot, channel]),
                at=minute,
            )

        out = [event(int(s), int(c), "raised") for s, c in zip(*np.nonzero(raised), strict=True)]
        out += [event(int(s), int(c), "cleared") for s, c in zip(*np.nonzero(cleared), strict=True)]
        calm[cleared] = 0
        return out

    def _persistent(self, w: int, pair: tuple[Floats, Floats] | None) -> npt.NDArray[np.bool_]:
        """The persistence rule's hits, on the 2-minute window (False elsewhere)."""
        if w != 2 or pair is None:
            return np.bool_(False)  # type: ignore[return-value]
        z, ratio = pair
        hits: npt.NDArray[np.bool_] = (z >= self.config.spike_pair_z) & (
            ratio >= self.config.spike_pair_ratio
        )
        return hits

    def _clean(self, minute: int, n: int) -> None:
        """As `minute` leaves the recent window for the baseline, a scope in an episode (for
        less than `absorb_minutes`) keeps its expected counts there instead of the observed
        ones: the baseline does not learn a spike or a stall, so no false stall follows a long
        spike; an anomaly that lasts longer becomes the new normal."""
        if self._baseline is None or minute < self._baseline_span[1]:
            return
        fresh = self._active[:n] & (minute - self._since[:n] < self.config.absorb_minutes)
        column = minute % self._ring
        factors = self._factors(n, np.array([minute], dtype=np.int64))
        for metric, channels in _CLEANED_BY.items():
            slots = np.flatnonzero(fresh[:, channels].any(axis=1))
            if not slots.size:
                continue
            f = np.ones(slots.size) if factors is None else factors[slots, 0].astype(np.float64)
            base = self._baseline[metric]
            level = base.level[slots] + base.slope[slots] * (minute - self._center)
            self._counts[metric, slots, column] = np.maximum(level, 0.0) * f

    def _close_hour(self, minute: int, n: int) -> None:
        """At the end of an hour, fold the hour 12 hours before it into each scope's
        hour-of-day profile of views: that hour's views relative to the mean hour of the 24
        hours centred on it, so a campaign's growth or decay (a launch ramp above all) does not
        bend the profile as a trailing mean would. A scope that was in an episode during that
        hour learns nothing from it, and once a profile has a value, a new day moves it by a
        factor of 1.5 at most."""
        hour = (minute // 60) % 24
        columns = self._columns(minute - 59, 60)
        whole = self._in_use[:n] & (self._first[:n] <= minute - 59)
        seen = self._hours_seen[:n]
        seen[whole] += 1
        # The baseline is deseasonalised with the profile: recompute it with the new one.
        self._baseline = None
        self._hours[:n, hour] = np.where(
            whole, self._counts[_VIEWS, :n][:, columns].sum(axis=1), 0.0
        )
        learned = (hour - 12) % 24
        total = self._hours[:n, learned]
        calm = ~self._disturbed[:n, learned]
        self._disturbed[:n, (hour + 1) % 24] = False  # the next hour starts afresh
        trailing = self._hours[:n].sum(axis=1)
        update = whole & calm & (seen >= 24) & (trailing > 0)
        if not update.any():
            return
        value = total / np.maximum(trailing / 24, 1e-9)
        count = self._profile_n[:n, learned]
        current = self._profile[:n, learned]
        value = np.where(count > 0, np.clip(value, current / 1.5, current * 1.5), value)
        count = np.where(update, np.minimum(count.astype(np.int32) + 1, 255), count)
        weight = np.maximum(1.0 / np.maximum(count, 1), self.config.profile_alpha)
        self._profile[:n, learned] = np.where(update, current + weight * (value - current), current)
        self._profile_n[:n, learned] = count
