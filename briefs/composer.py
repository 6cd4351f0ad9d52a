"""The offline provider's writer: a brief composed deterministically from tool results.

Every number it writes is copied from a tool result, and brand-supplied text is echoed only when
it is name-like (short, no links, no addresses), so its briefs pass the grounding verifier by
construction.
"""

import re
from collections.abc import Sequence
from typing import Any

import orjson

from briefs import personas
from briefs.framing import read_tool_block
from briefs.grounding import is_name_like
from briefs.tools import classify_goal
from schemas.briefs import is_hashtag

_BLOCK = re.compile(r"<request_data>\s*(.*?)\s*</request_data>", re.S)

_CTA = {
    "awareness": "Share this with a friend who would love it",
    "engagement": "Tell us in the comments which one you would pick",
    "conversion": "Tap the link in bio to get yours",
    "launch": "Follow to be first when it drops",
}
_DELIVERABLES = {
    "instagram": ["A Reel per creator", "A carousel post per creator", "Stories on launch day"],
    "tiktok": ["A short vertical video per creator", "A stitch or duet prompt for the audience"],
    "youtube": ["A dedicated review or integration per creator", "A Short cut from each video"],
    "x": ["A thread per creator", "A reply-led follow-up post"],
    "facebook": ["A video post per creator", "A story on launch day"],
}


def request_from_messages(messages: Sequence[dict[str, Any]]) -> dict[str, Any]:
    for message in messages:
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            found = _BLOCK.search(message["content"])
            if found:
                data = orjson.loads(found.group(1))
                return data if isinstance(data, dict) else {}
    return {}


def tool_results_from_messages(messages: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest successful result of each tool, by tool name."""
    names: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            names[call["id"]] = call["function"]["name"]
        if message.get("role") == "tool":
            name = names.get(message.get("tool_call_id", ""))
            try:
                content = read_tool_block(message["content"])
            except ValueError:
                continue
            if name and isinstance(content, dict) and "error" not in content:
                results[name] = content
    return results


def persona_category(persona_id: str) -> str | None:
    persona = personas.by_id(persona_id)
    if persona is None or persona is personas.GENERAL:
        return None
    return persona.categories[0]


def search_text(request: dict[str, Any]) -> str:
    parts = (request.get(k) for k in ("brand", "product", "goal", "audience"))
    return " ".join(str(p) for p in parts if p)[:2000]


def _name(value: Any, fallback: str) -> str:
    return str(value) if isinstance(value, str) and is_name_like(value) else fallback


def compose(request: dict[str, Any], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    brand = _name(request.get("brand"), "the brand")
    product = _name(request.get("product"), "the product")
    platform = str(request.get("platform", "instagram"))
    goal_type = classify_goal(str(request.get("goal", "")))

    persona_result = results.get("personaClassifier", {})
    persona = persona_result.get("persona", {})
    label = str(persona.get("label", personas.GENERAL.label))
    profile = next(
        (p for p in persona_result.get("profile", []) if p.get("platform") == platform), None
    )
    trends = [
        t for t in results.get("trendFetcher", {}).get("hashtags", []) if is_hashtag(t["tag"])
    ]
    creators = results.get("topCreators", {}).get("creators", [])
    angles = [
        a
        for a in results.get("creativeAngle", {}).get("angles", [])
        if is_hashtag(str(a.get("theme", "")))
    ]
    past = results.get("similarBriefs", {}).get("results", [])

    hashtags: list[str] = []
    for tag in [t["tag"] for t in trends] + list(persona_result.get("hashtags", [])):
        if tag not in hashtags and is_hashtag(tag):
            hashtags.append(tag)
    hashtags = hashtags[:8] or ["#ad"]

    hooks = [str(a["angle"]) for a in angles][:5]
    for extra in (
        f"POV: you just found {product}",
        f"What {label.lower()}s wish they knew sooner",
        f"Trying {product} for the first time, honestly",
    ):
        if len(hooks) >= 3:
            break
        hooks.append(extra)

    objective = f"{goal_type.capitalize()} for {product} among {label.lower()}s on {platform}"
    if profile:
        objective += (
            f", where creators reaching this audience average an engagement rate of "
            f"{profile['engagementRate']}%"
        )
    kpis = [
        {
            "awareness": "Views and shares per post",
            "engagement": "Comments and engagement rate per post",
            "conversion": "Saves, link clicks and conversions",
            "launch": "Reach and engagement rate in launch week",
        }[goal_type]
    ]
    if creators:
        kpis.append(
            f"Engagement rate at or above {creators[:3][-1]['engagementRate']}%, the lowest of the "
            f"recommended creators on {platform}"
        )
    if angles:
        top = angles[0]
        kpis.append(f"{top['metric']} of {top['value']} per 100 views, as {top['theme']} earns")

    key_messages = [f"{product} from {brand}, made for {label.lower()}s"]
    if trends:
        trend = trends[0]
        growth = trend.get("growthPct")
        if growth is not None:
            key_messages.append(
                f"Ride {trend['tag']}: {trend['mentions']} tagged posts in 24 hours, "
                f"{growth}% against the day before"
            )
        else:
            key_messages.append(f"Join the conversation around {trend['tag']}")
    if past:
        key_messages.append("Build on what worked in your earlier briefs and campaigns")

    recommended = [
        {
            "influencerId": c["influencerId"],
            "reason": (
                f"Rank {c['rank']} by engagement score on {platform} among peers of the same "
                f"platform and size, with {c['views']} views over {c['events']} posts"
            ),
            "numbers": {
                "engagementScore": c["engagementScore"],
                "engagementRate": c["engagementRate"],
                "views": c["views"],
                "engagements": c["engagements"],
            },
        }
        for c in creators[:3]
    ]
    tone = _name(request.get("tone"), "Warm, credible and creator-led")
    return {
        "caption": f"{product} by {brand}, picked for {label.lower()}s. {' '.join(hashtags[:3])}",
        "hookIdeas": hooks,
        "hashtags": hashtags,
        "cta": _CTA[goal_type],
        "tone": tone if not any(ch.isdigit() for ch in tone) else "Warm and credible",
        "objective": objective,
        "kpis": kpis,
        "targetPersona": f"{label}: {persona.get('description', personas.GENERAL.description)}",
        "keyMessages": key_messages,
        "deliverables": _DELIVERABLES.get(platform, _DELIVERABLES["instagram"]),
        "dosAndDonts": {
            "dos": [
                "Show the product in use in the first seconds",
                "Disclose the partnership clearly (#ad)",
                f"Use {hashtags[0]} where it fits the content",
            ],
            "donts": [
                "Make claims about results that the brand has not approved",
                "Add links, prices or discount codes that are not in this brief",
            ],
        },
        "timeline": [
            {"phase": "Creator outreach and briefing", "timing": "Before launch"},
            {"phase": "Content drafts and brand review", "timing": "Before launch"},
            {"phase": "Posting and community replies", "timing": "Launch week"},
            {"phase": "Results review against the KPIs", "timing": "After launch"},
        ],
        "recommendedCreators": recommended,
    }
