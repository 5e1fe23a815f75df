"""The rating scale: which verdict ratings exist, what each means, and its ClaimReview value.

The default is the desk's six-step scale; CLAIMDESK_RATING_SCALE points at a JSON file to replace
it: a list of {id, label, definition, ratingValue (1 worst .. 5 best)}, with optional
``recheckable`` (whether a verdict with this rating may carry recheck_at).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class Rating(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    label: str = Field(min_length=1, max_length=200)
    definition: str = Field(min_length=1, max_length=2000)
    rating_value: int = Field(alias="ratingValue", ge=1, le=5)
    recheckable: bool = False


DEFAULT_SCALE: list[Rating] = [
    Rating(
        id="confirmed",
        label="Confirmed by independent sources",
        definition="Independent sources we could check agree with the claim in every material part.",
        rating_value=5,
    ),
    Rating(
        id="partly_confirmed",
        label="Partly confirmed",
        definition="Some material parts of the claim are confirmed; others are not, or are wrong.",
        rating_value=4,
    ),
    Rating(
        id="unverified",
        label="Unverified: attributed, not independently confirmed",
        definition="The claim is correctly attributed, but we could not confirm it independently yet.",
        rating_value=3,
        recheckable=True,
    ),
    Rating(
        id="disputed",
        label="Disputed: sources give conflicting accounts",
        definition="Credible sources give accounts that conflict, and the evidence does not settle it.",
        rating_value=3,
        recheckable=True,
    ),
    Rating(
        id="misleading",
        label="Misleading or missing context",
        definition="Accurate in parts, but framed or cut so that it leaves a false impression.",
        rating_value=2,
    ),
    Rating(id="false", label="False", definition="The evidence shows the claim is wrong.", rating_value=1),
]

_scale_adapter = TypeAdapter(list[Rating])


def load_scale(path: str) -> list[Rating]:
    if not path:
        return DEFAULT_SCALE
    scale = _scale_adapter.validate_python(json.loads(Path(path).read_text(encoding="utf-8")))
    ids = [r.id for r in scale]
    if not scale or len(set(ids)) != len(ids):
        raise ValueError(f"{path}: the rating scale needs at least one rating and unique ids")
    return scale


@lru_cache(maxsize=8)
def scale_for(path: str) -> dict[str, Rating]:
    return {r.id: r for r in load_scale(path)}
