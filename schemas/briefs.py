"""The brief generator's wire models: the request, the brief the model writes, and what we add
(evidence, meta). Pure pydantic; the JSON names are camelCase."""

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, Strict, StringConstraints
from pydantic.config import JsonDict, JsonValue

from schemas.base import UtcDatetime, WireModel
from schemas.events import Platform

_REQUEST_EXAMPLE: JsonDict = {
    "brand": "Acme Outdoor",
    "product": "Trailrunner 2 waterproof hiking shoe",
    "goal": "Drive pre-orders among weekend hikers",
    "platform": "instagram",
    "audience": "Hikers aged 25-40 in Germany and Austria",
    "budget": 25000.0,
    "campaignId": "spring-launch",
    "tone": "upbeat, practical",
    "language": "en",
}
_CREATOR_EXAMPLE: JsonDict = {
    "influencerId": "inf_000046",
    "reason": "Top engagement score among mid-size outdoor creators on Instagram, 86120 views "
    "over 233 posts",
    "numbers": {"engagementScore": 92.26, "engagementRate": 11.06, "views": 86120.0},
}
_DOS_EXAMPLE: JsonDict = {
    "dos": ["Show the shoe on a wet trail in the first seconds", "Disclose the partnership (#ad)"],
    "donts": ["Promise results the brand has not approved"],
}
_TIMELINE_EXAMPLE: list[JsonValue] = [
    {"phase": "Creator outreach and briefing", "timing": "3 weeks before launch"},
    {"phase": "Posting and community replies", "timing": "Launch week"},
    {"phase": "Results review against the KPIs", "timing": "2 weeks after launch"},
]
_EVIDENCE_EXAMPLE: JsonDict = {
    "value": "11.06",
    "tool": "topCreators",
    "callId": "call_7QmZ2",
    "path": "creators[0].engagementRate",
}
_TOOL_CALL_EXAMPLE: JsonDict = {
    "callId": "call_7QmZ2",
    "tool": "topCreators",
    "arguments": {"platform": "instagram", "category": "outdoor", "limit": 5},
    "ok": True,
}
_META_EXAMPLE: JsonDict = {
    "model": "gpt-4o-mini",
    "promptVersion": "v2",
    "toolCalls": 2,
    "tools": [
        {
            "callId": "call_3kP9x",
            "tool": "trendFetcher",
            "arguments": {"platform": "instagram", "category": "outdoor"},
            "ok": True,
        },
        _TOOL_CALL_EXAMPLE,
    ],
    "turns": 3,
    "tokens": {"prompt": 4180, "completion": 912},
    "latencyMs": 6240.5,
    "cacheHit": False,
    "embedder": "tokenlearn-static-64d",
}

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=600)]

HASHTAG_MAX_LENGTH = 60


def is_hashtag(text: str) -> bool:
    """`#` and 1 to 60 word characters: letters, decimal digits and `_`, each letter or digit
    possibly followed by combining marks (so "#दिवाली" and "#café" are hashtags). Nothing else:
    no space, punctuation, symbol, zero-width joiner or other invisible format character."""
    if not text.startswith("#") or not 1 < len(text) <= HASHTAG_MAX_LENGTH + 1:
        return False
    previous = "#"
    for char in text[1:]:
        kind = unicodedata.category(char)
        if kind[0] == "M":
            if previous == "#" or previous == "_":
                return False
        elif not (kind[0] == "L" or kind == "Nd" or char == "_"):
            return False
        if kind[0] != "M":
            previous = char
    return True


def _hashtag(text: str) -> str:
    if not is_hashtag(text):
        raise ValueError("a hashtag is # followed by letters, digits or underscores only")
    return text


Hashtag = Annotated[str, StringConstraints(pattern=r"^#\w{1,60}$"), AfterValidator(_hashtag)]


class BriefRequest(WireModel):
    """What a brand asks for. Free text is untrusted: it reaches the model only as data."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                _REQUEST_EXAMPLE,
                {
                    "brand": "Acme Outdoor",
                    "product": "Trailrunner 2",
                    "goal": "Launch awareness",
                    "platform": "tiktok",
                },
            ]
        },
    )

    brand: ShortText = Field(description="The brand's name.")
    product: LongText = Field(description="The product or offer to promote.")
    goal: LongText = Field(description="What the campaign should achieve.")
    platform: Platform = Field(description="Where the content will be posted.")
    audience: LongText | None = Field(default=None, description="Who the brand wants to reach.")
    # Strict: a boolean is no budget (lax parsing would read false as 0).
    budget: Annotated[float, Strict()] | None = Field(
        default=None, ge=0, le=1e12, description="Campaign budget."
    )
    campaign_id: ShortText | None = Field(default=None, description="An existing campaign's id.")
    tone: ShortText | None = Field(default=None, description="Preferred tone of voice.")
    language: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$")] = (
        Field(default="en", description="BCP 47 language tag of the brief.")
    )


class RecommendedCreator(WireModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_CREATOR_EXAMPLE]})

    influencer_id: ShortText = Field(description="A creator returned by a tool.")
    reason: Line = Field(description="Why this creator, in words.")
    numbers: dict[str, float] = Field(
        default_factory=dict, description="The figures behind the reason, each from a tool."
    )


class DosAndDonts(WireModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_DOS_EXAMPLE]})

    dos: list[Line] = Field(default_factory=list, max_length=8)
    donts: list[Line] = Field(default_factory=list, max_length=8)


class TimelineStep(WireModel):
    model_config = ConfigDict(json_schema_extra={"examples": _TIMELINE_EXAMPLE[:1]})

    phase: ShortText = Field(description="What happens.")
    timing: ShortText = Field(description="When, relative to the launch.")


class BriefContent(WireModel):
    """The part of a brief the model (or the offline composer) writes."""

    model_config = ConfigDict(extra="forbid")

    caption: Line
    hook_ideas: list[Line] = Field(min_length=3, max_length=5)
    hashtags: list[Hashtag] = Field(min_length=1, max_length=15)
    cta: ShortText
    tone: ShortText
    objective: Line
    kpis: list[Line] = Field(min_length=1, max_length=8)
    target_persona: Line
    key_messages: list[Line] = Field(min_length=1, max_length=6)
    deliverables: list[Line] = Field(min_length=1, max_length=8)
    dos_and_donts: DosAndDonts
    timeline: list[TimelineStep] = Field(min_length=1, max_length=8)
    recommended_creators: list[RecommendedCreator] = Field(default_factory=list, max_length=10)


class EvidenceItem(WireModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EVIDENCE_EXAMPLE]})

    value: str = Field(description="A number as it appears in the brief.")
    tool: str = Field(description="The tool whose result holds it.")
    call_id: str = Field(description="Which call of that tool (see meta.tools).")
    path: str = Field(description="Where in that result, e.g. creators[0].engagementRate.")


class ToolCallRecord(WireModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_TOOL_CALL_EXAMPLE]})

    call_id: str
    tool: str
    arguments: dict[str, object]
    ok: bool


class TokenUsage(WireModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"prompt": 4180, "completion": 912}]})

    prompt: int = 0
    completion: int = 0


class BriefMeta(WireModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_META_EXAMPLE]})

    model: str
    prompt_version: str
    tool_calls: int = Field(description="How many tool calls the model made.")
    tools: list[ToolCallRecord] = Field(default_factory=list)
    turns: int = Field(description="Model requests, repairs included.")
    tokens: TokenUsage
    latency_ms: float = Field(description="Time to generate (or, on a cache hit, to answer).")
    cache_hit: bool
    embedder: str = Field(description="What found similar past briefs (a model or lexical).")


class Brief(BriefContent):
    """A generated, grounded brief."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "caption": "Rain on the trail, dry feet at the summit: meet the Trailrunner 2 "
                    "from Acme Outdoor. #trailrunning #hikinggear #outdoors",
                    "hookIdeas": [
                        "Puddle test: a stream crossing, then the sock check",
                        "Pack with me for a wet weekend in the Alps",
                        "My old shoes vs. these after a season of muddy trails",
                    ],
                    "hashtags": ["#trailrunning", "#hikinggear", "#outdoors"],
                    "cta": "Pre-order through the link in bio",
                    "tone": "upbeat, practical",
                    "objective": "Pre-orders of the Trailrunner 2 among weekend hikers in Germany "
                    "and Austria",
                    "kpis": [
                        "Engagement rate at or above 11.06%, the top recommended creator's",
                        "Link clicks and pre-orders per creator",
                    ],
                    "targetPersona": "Weekend hiker who plans trips around the weather and "
                    "reads reviews before buying gear",
                    "keyMessages": [
                        "Waterproof without the weight",
                        "Grip that holds on wet rock",
                    ],
                    "deliverables": ["A Reel per creator", "Stories on launch day"],
                    "dosAndDonts": _DOS_EXAMPLE,
                    "timeline": _TIMELINE_EXAMPLE,
                    "recommendedCreators": [_CREATOR_EXAMPLE],
                    "id": "brf_9410ebd1eff14ea4bc5325cee9f184f5",
                    "createdAt": "2026-12-05T09:12:38.718718Z",
                    "request": _REQUEST_EXAMPLE,
                    "evidence": [
                        _EVIDENCE_EXAMPLE,
                        {
                            "value": "86120",
                            "tool": "topCreators",
                            "callId": "call_7QmZ2",
                            "path": "creators[0].views",
                        },
                        {
                            "value": "233",
                            "tool": "topCreators",
                            "callId": "call_7QmZ2",
                            "path": "creators[0].events",
                        },
                    ],
                    "meta": _META_EXAMPLE,
                }
            ]
        },
    )

    id: str
    created_at: UtcDatetime
    request: BriefRequest
    evidence: list[EvidenceItem] = Field(
        description="Each number in the brief and the tool result it came from."
    )
    meta: BriefMeta
