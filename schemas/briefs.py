"""The brief generator's wire models: the request, the brief the model writes, and what we add
(evidence, meta). Pure pydantic; the JSON names are camelCase."""

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, Strict, StringConstraints

from schemas.base import UtcDatetime, WireModel
from schemas.events import Platform

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

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    influencer_id: ShortText = Field(description="A creator returned by a tool.")
    reason: Line = Field(description="Why this creator, in words.")
    numbers: dict[str, float] = Field(
        default_factory=dict, description="The figures behind the reason, each from a tool."
    )


class DosAndDonts(WireModel):
    dos: list[Line] = Field(default_factory=list, max_length=8)
    donts: list[Line] = Field(default_factory=list, max_length=8)


class TimelineStep(WireModel):
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
    value: str = Field(description="A number as it appears in the brief.")
    tool: str = Field(description="The tool whose result holds it.")
    call_id: str = Field(description="Which call of that tool (see meta.tools).")
    path: str = Field(description="Where in that result, e.g. creators[0].engagementRate.")


class ToolCallRecord(WireModel):
    call_id: str
    tool: str
    arguments: dict[str, object]
    ok: bool


class TokenUsage(WireModel):
    prompt: int = 0
    completion: int = 0


class BriefMeta(WireModel):
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

    model_config = ConfigDict(extra="ignore")

    id: str
    created_at: UtcDatetime
    request: BriefRequest
    evidence: list[EvidenceItem] = Field(
        description="Each number in the brief and the tool result it came from."
    )
    meta: BriefMeta
