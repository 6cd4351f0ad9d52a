"""The batch-load report (`POST /etl/uploads`, `fk etl FILE`)."""

from pydantic import ConfigDict, Field
from pydantic.config import JsonValue

from schemas.base import WireModel

_ROW_ERRORS: list[JsonValue] = [
    {"line": 47, "column": "influencerId", "reason": "missing value"},
    {"line": 206, "column": "postedAt", "reason": "bad date"},
    {"line": 214, "column": "views", "reason": "not an integer"},
]


class RowError(WireModel):
    model_config = ConfigDict(json_schema_extra={"examples": _ROW_ERRORS[:1]})

    line: int = Field(description="Physical line (1-based) where the rejected row starts.")
    column: str | None = Field(
        description="The offending column, canonical name; null for a wrong column count."
    )
    reason: str = Field(
        description="missing value, not an integer, negative count, views not positive, "
        "unknown platform, bad date or wrong column count."
    )


class LoadReport(WireModel):
    """What a load did. `rows = accepted + rejected`; `accepted = inserted + duplicates`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "loadId": "30466e9e50c745a38f74e0d930e6aa9c",
                    "file": "performance.csv",
                    "rows": 300,
                    "accepted": 297,
                    "rejected": 3,
                    "inserted": 297,
                    "duplicates": 0,
                    "errors": _ROW_ERRORS,
                    "errorsOmitted": 0,
                    "extraColumns": [],
                    "rejectedFile": "/etl/uploads/30466e9e50c745a38f74e0d930e6aa9c/rejected",
                    "seconds": 0.221,
                }
            ]
        }
    )

    load_id: str = Field(description="Identifies this load (and its rejected-rows file).")
    file: str = Field(description="Name of the loaded file.")
    rows: int = Field(description="Data rows read (blank lines are not rows).")
    accepted: int = Field(description="Valid rows.")
    rejected: int = Field(description="Invalid rows; none of their values was stored.")
    inserted: int = Field(description="Valid rows stored by this load.")
    duplicates: int = Field(
        description="Valid rows whose content was already stored (by an earlier load of the "
        "same rows, or earlier in this file): idempotency by content."
    )
    errors: list[RowError] = Field(
        description="One entry per offending column of each rejected row, in file order "
        "(capped; see errorsOmitted). The rejected-rows file holds all of them."
    )
    errors_omitted: int = Field(default=0, description="Errors beyond the cap, not listed.")
    extra_columns: list[str] = Field(
        default_factory=list, description="Header columns that are not part of the format."
    )
    rejected_file: str | None = Field(
        default=None, description="CSV of the rejected rows with line, column and reason."
    )
    seconds: float = Field(description="Wall time of the load.")
