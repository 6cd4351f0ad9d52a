"""The camelCase-on-the-wire, snake_case-in-Python base every public model shares, and the
timestamp type of answers."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """A model whose JSON names are camelCase; Python code keeps snake_case."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def _in_utc(value: datetime) -> datetime:
    # The store's DateTime64(3, 'UTC') columns come back without a zone: they are UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_in_utc)]
"""A moment in an answer: always rendered with its offset (RFC 3339 `date-time`); a value
without a zone is read as UTC."""
