"""The base every wire model shares."""

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """Immutable, and unknown fields are an error: a typo never passes silently."""

    model_config = ConfigDict(frozen=True, extra="forbid")
