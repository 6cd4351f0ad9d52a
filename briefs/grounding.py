"""The deterministic grounding verifier: every number in a brief must come from a tool result
(or the request's numeric budget), a link or email address only when a tool returned it as a
field of its own (`...Url`, `...Link`, `...Email`), never from inside free text such as a
campaign name, recommended creators must be ones a tool returned, and no passage of the system
prompt may leak into the brief.

Two documented allowances: whole numbers up to `SMALL_INT` (weeks, ordinals, counts of
deliverables) and the brand's own name and product name when they are name-like (short, no
links, addresses or sentence punctuation), e.g. "iPhone 15".
"""

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from schemas.briefs import BriefContent, EvidenceItem

SMALL_INT = 12
_LEAK_SHINGLE = 6

_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")
_URL = re.compile(
    r"(?i)\b(?:https?://|www\.)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\."
    r"(?:com|net|org|io|co|ai|app|dev|xyz|info|biz|me|ly|gg|in|uk|de|ru|cn|tk|top|site|link)\b"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_WORD = re.compile(r"[a-z0-9]+")
# The fields whose whole value is a link or an address (a key, or a list of them under one key).
_LINK_KEY = re.compile(r"(?i)(?:url|link|href|email)s?$")
# The fields whose whole value is a hashtag.
_TAG_KEY = re.compile(r"^(?:tag|theme|hashtags)$")
_TRAILING = ".,;:!?)]}'\""


_NAME = re.compile(r"^[^\W_][^\W_&'\u2019.+\- ]*(?:[&'\u2019.+\- ]+[^\W_]+)*[.+]?$")


def is_name_like(text: str) -> bool:
    """A product or brand name, not a sentence: at most 40 characters and five words of letters
    and digits (with & ' . + - between), no underscore, no link or address."""
    return (
        len(text) <= 40
        and len(text.split()) <= 5
        and bool(_NAME.match(text))
        and not _URL.search(text)
        and not _EMAIL.search(text)
    )


@dataclass(frozen=True, slots=True)
class Source:
    call_id: str
    tool: str
    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Verdict:
    evidence: list[EvidenceItem]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, value


def _key(path: str) -> str:
    """The field name a leaf sits under: `results[0].landingUrl` → landingUrl, `hashtags[2]` →
    hashtags."""
    return re.sub(r"\[\d+\]$", "", path).rsplit(".", 1)[-1]


def _parse(text: str) -> float:
    return float(text.replace(",", ""))


def _matches(x: float, v: float) -> bool:
    if math.isclose(x, v, rel_tol=0, abs_tol=1e-9):
        return True
    return any(math.isclose(x, round(v, k), abs_tol=1e-9) for k in range(4))


class Evidence:
    """The numbers, creator ids, hashtags and links the tool results hold; links and hashtags only
    from fields that are one (what free text mentions is not evidence)."""

    def __init__(self, sources: list[Source], budget: float | None) -> None:
        self.numbers: list[tuple[float, Source, str]] = []
        self.creators: set[str] = set()
        self.links: set[str] = set()
        self.tags: set[str] = set()
        for source in sources:
            for path, value in _leaves(source.result):
                if isinstance(value, bool) or value is None:
                    continue
                if isinstance(value, int | float):
                    self.numbers.append((float(value), source, path))
                elif isinstance(value, str):
                    for m in _NUMBER.finditer(value):
                        self.numbers.append((_parse(m.group()), source, path))
                    key = _key(path)
                    if key == "influencerId":
                        self.creators.add(value)
                    elif _LINK_KEY.search(key):
                        self.links.add(value.strip().lower())
                    elif _TAG_KEY.match(key):
                        self.tags.add(value.lower())
        self.budget = budget

    def has_link(self, text: str) -> bool:
        """A link or address in the brief is evidence only as the whole value of a link field."""
        return text.lower().rstrip(_TRAILING) in self.links

    def find(self, x: float) -> tuple[Source, str] | None:
        for v, source, path in self.numbers:
            if _matches(x, v):
                return source, path
        return None


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + _LEAK_SHINGLE]) for i in range(len(words) - _LEAK_SHINGLE + 1)}


def verify(
    content: BriefContent,
    sources: list[Source],
    *,
    names: list[str],
    budget: float | None,
    secret_text: str,
) -> Verdict:
    """Check one brief against the tool results of its run. `names` are the request's brand and
    product (masked when name-like); `secret_text` is the system prompt, which must not leak."""
    evidence = Evidence(sources, budget)
    problems: list[str] = []
    items: dict[str, EvidenceItem] = {}
    masks = sorted((n for n in names if n and is_name_like(n)), key=len, reverse=True)
    secret = _shingles(secret_text)
    brief = content.model_dump(by_alias=True)

    def check_number(x: float, shown: str, where: str) -> None:
        if shown in items:
            return
        found = evidence.find(x)
        if found is not None:
            source, path = found
            items[shown] = EvidenceItem(
                value=shown, tool=source.tool, call_id=source.call_id, path=path
            )
        elif budget is not None and _matches(x, budget):
            items[shown] = EvidenceItem(value=shown, tool="request", call_id="-", path="budget")
        elif not (x.is_integer() and 0 <= x <= SMALL_INT):
            problems.append(f"{where}: the number {shown} is not in any tool result")

    for path, value in _leaves(brief):
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            check_number(float(value), repr(value), path)
            continue
        text = str(value)
        if path.endswith("influencerId"):
            if text not in evidence.creators:
                problems.append(f"{path}: creator {text!r} was not returned by topCreators")
            continue
        lowered = text.lower()
        addresses = [m.span() for m in _EMAIL.finditer(text)]
        for m in _URL.finditer(text):
            if any(start <= m.start() < end for start, end in addresses):
                continue  # an address's domain: the address is checked below
            if not evidence.has_link(m.group()):
                problems.append(
                    f"{path}: the link {m.group()!r} is not a link field of any tool result"
                )
        for m in _EMAIL.finditer(text):
            if not evidence.has_link(m.group()):
                problems.append(
                    f"{path}: the address {m.group()!r} is not an address field of any tool result"
                )
        if path.startswith("hashtags") and lowered in evidence.tags:
            continue
        masked = text
        for name in masks:
            masked = masked.replace(name, " ")
        for m in _NUMBER.finditer(masked):
            check_number(_parse(m.group()), m.group(), path)
        if _shingles(text) & secret:
            problems.append(f"{path}: repeats the system instructions")
    return Verdict(list(items.values()), problems)
