"""The performance-CSV header: canonical column names, their accepted spellings, and how a
file's header maps onto them. Pure; no I/O."""

import re
from dataclasses import dataclass

REQUIRED = ("campaignId", "influencerId", "platform", "views", "likes", "comments", "shares")
OPTIONAL = ("postId", "postedAt", "saves", "followers", "handle", "category", "country")
CANONICAL = REQUIRED + OPTIONAL

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_name(name: str) -> str:
    """`campaign_id`, `campaignId`, `Campaign ID` and `CAMPAIGNID` all become `campaignid`."""
    return _SEPARATORS.sub("", name.strip().lstrip("\ufeff")).lower()


_BY_NORMALISED = {normalise_name(c): c for c in CANONICAL}


class MissingColumns(ValueError):
    """The header lacks required columns; the whole file is refused."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(f"missing required columns: {', '.join(missing)}")


@dataclass(frozen=True, slots=True)
class Header:
    """Where each canonical column sits in the file (0-based), and what else the header holds."""

    width: int
    positions: dict[str, int]
    extra: tuple[str, ...]
    duplicated: tuple[str, ...]

    def has(self, column: str) -> bool:
        return column in self.positions


def resolve_header(names: list[str]) -> Header:
    """Map a header row onto canonical columns, in any order and either spelling.

    Unknown columns are reported as `extra` (and ignored); a canonical column named twice keeps
    its first position and is reported in `duplicated`. Raises `MissingColumns` naming every
    required column the header lacks.
    """
    positions: dict[str, int] = {}
    extra: list[str] = []
    duplicated: list[str] = []
    for index, raw in enumerate(names):
        canonical = _BY_NORMALISED.get(normalise_name(raw))
        if canonical is None:
            extra.append(raw.strip())
        elif canonical in positions:
            duplicated.append(raw.strip())
        else:
            positions[canonical] = index
    missing = [c for c in REQUIRED if c not in positions]
    if missing:
        raise MissingColumns(missing)
    return Header(
        width=len(names), positions=positions, extra=tuple(extra), duplicated=tuple(duplicated)
    )
