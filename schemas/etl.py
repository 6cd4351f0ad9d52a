"""The batch-load report (`POST /etl/uploads`, `fk etl FILE`)."""

from pydantic import Field

from schemas.base import WireModel


class RowError(WireModel):
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
