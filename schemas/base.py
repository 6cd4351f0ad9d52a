"""The camelCase-on-the-wire, snake_case-in-Python base every public model shares."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """A model whose JSON names are camelCase; Python code keeps snake_case."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
