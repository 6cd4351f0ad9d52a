"""The read-only tools the model may call, their strict JSON schemas, and their implementation
over our store. A bad call (unknown tool, malformed arguments) becomes an error result the model
reads, never an exception."""

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from briefs import personas
from briefs.embeddings import Embedder, lexical_similarity
from core.clickhouse import Store
from core.repositories import briefs as brief_store
from core.repositories import engagement as engagement_store
from schemas.events import PLATFORMS, Platform
from schemas.insights import CampaignForecast
from scoring.queries import Candidate, scored_creators

GoalType = Literal["awareness", "engagement", "conversion", "launch"]

_GOAL_WORDS: dict[GoalType, tuple[str, ...]] = {
    "conversion": ("sale", "sell", "buy", "conversion", "purchase", "order", "signup", "sign up"),
    "launch": ("launch", "new", "introduce", "release", "debut"),
    "engagement": ("engage", "community", "comment", "conversation", "loyal", "ugc"),
    "awareness": ("awareness", "reach", "visib", "known", "discover", "brand"),
}
_GOAL_METRIC = {
    "awareness": "shareRate",
    "engagement": "commentRate",
    "conversion": "saveRate",
    "launch": "engagementRate",
}
_ANGLES: dict[GoalType, tuple[str, ...]] = {
    "awareness": ("Shareable {theme} moment", "Creator POV on {theme}", "{theme} myth vs fact"),
    "engagement": (
        "Ask-the-audience {theme} poll",
        "{theme} duet or stitch challenge",
        "Comment-to-choose {theme} series",
    ),
    "conversion": (
        "Save-worthy {theme} how-to",
        "{theme} before and after",
        "Honest {theme} review with the offer",
    ),
    "launch": ("First look: {theme} reveal", "{theme} unboxing", "Countdown to the {theme} drop"),
}


_METRIC_OF: dict[str, Callable[[engagement_store.ThemeStats], float]] = {
    "shareRate": lambda t: t.share_rate,
    "commentRate": lambda t: t.comment_rate,
    "saveRate": lambda t: t.save_rate,
    "engagementRate": lambda t: t.engagement_rate,
}


def classify_goal(goal: str) -> GoalType:
    text = goal.lower()
    best: GoalType = "awareness"
    best_hits = 0
    for kind, words in _GOAL_WORDS.items():
        hits = sum(text.count(w) for w in words)
        if hits > best_hits:
            best, best_hits = kind, hits
    return best


MIN_CREATOR_VIEWS = 500
"""A creator needs this many views in the window to be ranked (small samples rank by luck)."""


async def top_creators(
    store: Store, org: str, platform: str, tags: Sequence[str] | None, limit: int
) -> list[Candidate]:
    """Creators on a platform from the top-performer engine (the organisation's scope, as
    `GET /top-performers` ranks it), by engagementScore, then id; at least `MIN_CREATOR_VIEWS`
    views; with `tags`, only creators who posted one of them on that platform."""
    creators = await scored_creators(
        store, org=org, campaign_id=None, platform=platform, category=None
    )
    if tags:
        tagged = await engagement_store.tagged_creators(store, org, platform, tags)
        creators = [c for c in creators if c.influencer_id in tagged]
    eligible = [c for c in creators if c.views >= MIN_CREATOR_VIEWS]
    eligible.sort(key=lambda c: (-c.engagement_score, c.influencer_id))
    return eligible[:limit]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TrendArgs(_Args):
    platform: Platform
    category: str | None = Field(default=None, max_length=60)


class PersonaArgs(_Args):
    brand: str = Field(max_length=200)
    product: str = Field(max_length=1000)
    goal: str = Field(max_length=1000)
    audience: str | None = Field(default=None, max_length=1000)


class AngleArgs(_Args):
    goal: str = Field(max_length=1000)
    persona: str = Field(max_length=100)
    platform: Platform


class CreatorsArgs(_Args):
    platform: Platform
    category: str | None = Field(default=None, max_length=60)
    limit: int = Field(default=5)


class ForecastArgs(_Args):
    campaign_id: str = Field(alias="campaignId", min_length=1, max_length=100)


class RisingArgs(_Args):
    campaign_id: str = Field(alias="campaignId", min_length=1, max_length=100)
    limit: int = Field(default=5)


class SimilarArgs(_Args):
    query: str = Field(min_length=1, max_length=2000)
    limit: int = Field(default=3)


def _fn(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            },
        },
    }


_PLATFORM = {"type": "string", "enum": list(PLATFORMS)}
_CATEGORY = {
    "type": ["string", "null"],
    "description": f"One of {', '.join(personas.CATEGORIES)}, a hashtag, or null for all.",
}

TOOL_SPECS: list[dict[str, Any]] = [
    _fn(
        "trendFetcher",
        "Top hashtags on a platform in the last 24 hours with growth against the previous 24 "
        "hours; falls back to all-time counts (and says so) when the window is empty.",
        {"platform": _PLATFORM, "category": _CATEGORY},
    ),
    _fn(
        "personaClassifier",
        "Classify the target persona from the request (taxonomy in docs/briefs.md) and return "
        "the engagement profile of creators who reach that audience.",
        {
            "brand": {"type": "string"},
            "product": {"type": "string"},
            "goal": {"type": "string"},
            "audience": {"type": ["string", "null"]},
        },
    ),
    _fn(
        "creativeAngle",
        "Creative angles for a goal and persona, grounded in which content themes perform on the "
        "platform in our data.",
        {"goal": {"type": "string"}, "persona": {"type": "string"}, "platform": _PLATFORM},
    ),
    _fn(
        "topCreators",
        "Creators ranked by engagement rate on a platform (optionally within a category), with "
        "their numbers.",
        {
            "platform": _PLATFORM,
            "category": _CATEGORY,
            "limit": {"type": "integer", "description": "1 to 10."},
        },
    ),
    _fn(
        "similarBriefs",
        "The organisation's past briefs and campaigns most similar to a query text.",
        {"query": {"type": "string"}, "limit": {"type": "integer", "description": "1 to 5."}},
    ),
    _fn(
        "campaignForecast",
        "Where one of the organisation's campaigns is heading: projected total views, "
        "engagements and engagement rate (percent) at its end date (or 7 days ahead) with 80 % "
        "intervals, the model and the history used.",
        {"campaignId": {"type": "string", "description": "The campaign's id."}},
    ),
    _fn(
        "risingCreators",
        "The creators in one of the organisation's campaigns whose engagements grew most in the "
        "last 24 hours against the 24 hours before, with their numbers.",
        {
            "campaignId": {"type": "string", "description": "The campaign's id."},
            "limit": {"type": "integer", "description": "1 to 10."},
        },
    ),
]
TOOL_NAMES = tuple(spec["function"]["name"] for spec in TOOL_SPECS)


@dataclass(frozen=True, slots=True)
class ToolResult:
    ok: bool
    content: dict[str, Any]

    def to_message(self) -> str:
        return orjson.dumps(self.content).decode()


class ToolRefused(Exception):
    """A well-formed call the tool cannot answer: an error result the model reads."""


def _error(message: str) -> ToolResult:
    return ToolResult(False, {"error": message})


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:4]:
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{where}: {err['msg']}")
    return "invalid arguments: " + "; ".join(parts)


Forecaster = Callable[[str, str], Awaitable[CampaignForecast | None]]
"""(organisation, campaign id) → the campaign's forecast as `GET /campaigns/{id}/forecast`
answers it, `None` before it has a complete hour of events; raises `LookupError` for an id the
organisation never created."""


class ToolBox:
    """The tools of one brief request, bound to the caller's organisation and a fixed `now`.
    Without a `forecaster` (no API in the process) `campaignForecast` answers an error."""

    def __init__(
        self,
        store: Store,
        org: str,
        embedder: Embedder | None,
        now: datetime,
        forecaster: Forecaster | None = None,
    ) -> None:
        self.store, self.org, self.embedder, self.now = store, org, embedder, now
        self.forecaster = forecaster
        self._handlers: dict[str, tuple[type[_Args], Callable[[Any], Awaitable[dict[str, Any]]]]]
        self._handlers = {
            "trendFetcher": (TrendArgs, self.trend_fetcher),
            "personaClassifier": (PersonaArgs, self.persona_classifier),
            "creativeAngle": (AngleArgs, self.creative_angle),
            "topCreators": (CreatorsArgs, self.top_creators),
            "similarBriefs": (SimilarArgs, self.similar_briefs),
            "campaignForecast": (ForecastArgs, self.campaign_forecast),
            "risingCreators": (RisingArgs, self.rising_creators),
        }

    async def call(self, name: str, raw_arguments: str) -> ToolResult:
        handler = self._handlers.get(name)
        if handler is None:
            return _error(f"unknown tool {name[:60]!r}; available: {', '.join(TOOL_NAMES)}")
        model, fn = handler
        try:
            args = model.model_validate_json(raw_arguments or "{}")
        except ValidationError as exc:
            kinds = {e["type"] for e in exc.errors(include_url=False)}
            if "json_invalid" in kinds:
                return _error("arguments are not valid JSON")
            if "model_type" in kinds:
                return _error("arguments must be a JSON object")
            return _error(_validation_message(exc))
        try:
            return ToolResult(True, await fn(args))
        except ToolRefused as exc:
            return _error(str(exc))

    async def trend_fetcher(self, args: TrendArgs) -> dict[str, Any]:
        tags = personas.category_tags(args.category) if args.category else None
        rows = await brief_store.trending_tags(
            self.store, self.org, args.platform.value, tags, self.now, 10
        )
        window, note = "last24h", "Events of the last 24 hours against the 24 hours before."
        if not rows:
            rows = await brief_store.all_time_tags(
                self.store, self.org, args.platform.value, tags, 10
            )
            window = "allTime"
            note = "No tagged events in the last 24 hours: these are all-time counts."
        return {
            "platform": args.platform.value,
            "category": args.category,
            "window": window,
            "fallback": window == "allTime",
            "note": note,
            "hashtags": [
                {
                    "tag": r.tag,
                    "mentions": r.recent,
                    "previousMentions": r.previous if window == "last24h" else None,
                    "growthPct": _growth(r.recent, r.previous) if window == "last24h" else None,
                    "engagementRate": r.engagement_rate,
                }
                for r in rows
            ],
        }

    async def persona_classifier(self, args: PersonaArgs) -> dict[str, Any]:
        persona, _scores = personas.classify(args.brand, args.product, args.goal, args.audience)
        profile = await engagement_store.audience_profile(
            self.store, self.org, persona.hashtags, self.now
        )
        return {
            "persona": {
                "id": persona.id,
                "label": persona.label,
                "description": persona.description,
            },
            "hashtags": persona.hashtags,
            "profile": [
                {
                    "platform": p.platform,
                    "creators": p.creators,
                    "views": p.views,
                    "engagementRate": p.engagement_rate,
                    "medianFollowers": p.median_followers,
                }
                for p in profile
            ],
        }

    async def creative_angle(self, args: AngleArgs) -> dict[str, Any]:
        goal_type = classify_goal(args.goal)
        metric = _GOAL_METRIC[goal_type]
        persona = personas.by_id(args.persona) or personas.classify(args.persona)[0]
        themes = await engagement_store.theme_stats(
            self.store, self.org, args.platform.value, self.now, 30
        )
        preferred = set(persona.hashtags)
        key = _METRIC_OF[metric]
        ranked = sorted(themes, key=lambda t: (t.tag not in preferred, -key(t), t.tag))[:3]
        templates = _ANGLES[goal_type]
        return {
            "platform": args.platform.value,
            "goalType": goal_type,
            "persona": persona.id,
            "metric": metric,
            "note": "Our events record hashtags, not formats: themes are hashtags; rates are per "
            "100 views over 90 days.",
            "angles": [
                {
                    "angle": templates[i % len(templates)].format(theme=t.tag),
                    "theme": t.tag,
                    "metric": metric,
                    "value": key(t),
                    "engagementRate": t.engagement_rate,
                    "events": t.events,
                }
                for i, t in enumerate(ranked)
            ],
        }

    async def top_creators(self, args: CreatorsArgs) -> dict[str, Any]:
        tags = personas.category_tags(args.category) if args.category else None
        limit = min(max(args.limit, 1), 10)
        rows = await top_creators(self.store, self.org, args.platform.value, tags, limit)
        creators = []
        for i, c in enumerate(rows):
            model = c.to_model()
            components = model.score_components
            creators.append(
                {
                    "rank": i + 1,
                    "influencerId": c.influencer_id,
                    "engagementScore": model.engagement_score,
                    "engagementRate": round(c.engagement_rate, 2),
                    "views": c.views,
                    "engagements": c.engagements,
                    "events": c.posts,
                    "followers": c.followers,
                    "scoreComponents": {
                        "cohort": components.cohort,
                        "cohortSize": components.cohort_size,
                        "typicalPostRate": components.typical_post_rate,
                        "cohortPostRate": components.cohort_post_rate,
                        "robustZ": components.robust_z,
                        "shrinkage": components.shrinkage,
                    },
                }
            )
        return {
            "platform": args.platform.value,
            "category": args.category,
            "metric": "engagementScore",
            "minViews": MIN_CREATOR_VIEWS,
            "creators": creators,
        }

    async def similar_briefs(self, args: SimilarArgs) -> dict[str, Any]:
        limit = min(max(args.limit, 1), 5)
        if self.embedder is not None:
            await self._index_campaigns()
            vector = self.embedder.embed([args.query])[0]
            docs = await brief_store.nearest_documents(
                self.store, self.org, self.embedder.name, vector, limit
            )
            found = [(d, round(1 - (d.distance or 0.0), 3)) for d in docs]
            method = f"cosineDistance over {self.embedder.name} embeddings"
        else:
            recent = await brief_store.recent_documents(self.store, self.org, 500)
            scored = [(d, round(lexical_similarity(args.query, d.text), 3)) for d in recent]
            found = sorted((x for x in scored if x[1] > 0), key=lambda x: (-x[1], x[0].id))[:limit]
            method = "lexical overlap (no embedding model installed)"
        return {
            "method": method,
            "results": [
                {"kind": d.kind, "id": d.id, "summary": _summary(d.text), "similarity": s}
                for d, s in found
            ],
        }

    async def campaign_forecast(self, args: ForecastArgs) -> dict[str, Any]:
        if self.forecaster is None:
            raise ToolRefused("campaign forecasts are not available here")
        try:
            forecast = await self.forecaster(self.org, args.campaign_id)
        except LookupError:
            raise ToolRefused(
                f"no campaign {args.campaign_id[:100]!r} in this organisation"
            ) from None
        if forecast is None:
            return {
                "campaignId": args.campaign_id,
                "forecast": None,
                "note": "The campaign has no complete hour of events yet: no forecast.",
            }
        return {
            "campaignId": args.campaign_id,
            "forecast": forecast.model_dump(
                mode="json", by_alias=True, exclude={"campaign_id", "model_description", "as_of"}
            ),
            "note": "Totals at the horizon's end, history included; engagementRate in percent; "
            "lower and upper bound an 80 % interval.",
        }

    async def rising_creators(self, args: RisingArgs) -> dict[str, Any]:
        limit = min(max(args.limit, 1), 10)
        rows = await engagement_store.rising_creators(
            self.store, self.org, args.campaign_id, self.now, limit
        )
        creators = [
            {
                "rank": i + 1,
                "influencerId": c.influencer_id,
                "engagements": c.engagements,
                "previousEngagements": c.previous_engagements,
                "growth": _growth(c.engagements, c.previous_engagements),
                "views": c.views,
                "previousViews": c.previous_views,
                "engagementRate": round(c.engagements / c.views * 100, 2),
            }
            for i, c in enumerate(rows)
        ]
        return {
            "campaignId": args.campaign_id,
            "window": "last24h",
            "minViews": engagement_store.MIN_RISING_VIEWS,
            "creators": creators,
            "note": "Engagements (likes + comments + shares) of the campaign's events in the last "
            "24 hours against the 24 hours before, by the increase; growth in percent, null "
            "when the creator had none before; engagementRate in percent."
            + ("" if creators else " No creator of this campaign is rising."),
        }

    async def _index_campaigns(self) -> None:
        assert self.embedder is not None
        pending = await brief_store.unindexed_campaigns(
            self.store, self.org, self.embedder.name, 200
        )
        if not pending:
            return
        vectors = self.embedder.embed([text for _, _, text in pending])
        await brief_store.insert_embeddings(
            self.store,
            self.org,
            self.embedder.name,
            [
                ("campaign", i, v, text, vec)
                for (i, v, text), vec in zip(pending, vectors, strict=True)
            ],
            self.now,
        )


def _growth(recent: int, previous: int) -> float | None:
    return None if previous == 0 else round((recent - previous) / previous * 100, 1)


_SPACES = re.compile(r"\s+")


def _summary(text: str) -> str:
    return _SPACES.sub(" ", text).strip()[:300]
