"""The base of core's validated configurations (:class:`~allele.core.agent.AgentConfig`,
:class:`~allele.core.evolution.EvolutionConfig`).

Pydantic validates them, but a bad value is one :class:`allele.errors.ValidationError` (so
``except AlleleError`` catches it), in one line naming the field, never pydantic's own multi-line
``ValidationError``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from allele.errors import ValidationError


class CoreConfig(BaseModel):
    """A frozen pydantic model whose constructor and ``model_validate`` / ``model_validate_json``
    raise :class:`allele.errors.ValidationError`:
    ``invalid <label>: <field>: <what is wrong> (got <value>)``, one part per bad field, and
    ``param`` set to the first bad field (None when the fields are fine but do not go together).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: ClassVar[str] = "config"

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise config_error(type(self).label, exc) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Pydantic's ``model_validate`` (a dict, as read from YAML or JSON), with the same
        one-line error as the constructor."""
        try:
            return super().model_validate(obj, **kwargs)
        except PydanticValidationError as exc:
            raise config_error(cls.label, exc) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        """Pydantic's ``model_validate_json``, with the same one-line error as the constructor."""
        try:
            return super().model_validate_json(json_data, **kwargs)
        except PydanticValidationError as exc:
            raise config_error(cls.label, exc) from None


def config_error(label: str, exc: PydanticValidationError) -> ValidationError:
    """One-line :class:`allele.errors.ValidationError` for a pydantic error about ``label``; the
    constructor's own error where pydantic wrapped it (``model_validate`` calls the
    constructor)."""
    for err in exc.errors():
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, ValidationError):
            return inner
    parts = []
    param = None
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = " ".join(str(err["msg"]).removeprefix("Value error, ").split())
        if loc:
            param = param or str(err["loc"][0])
            parts.append(f"{loc}: {msg} (got {err.get('input')!r})")
        else:  # a model validator: the message names the fields
            parts.append(msg)
    return ValidationError(f"invalid {label}: " + "; ".join(parts), param=param)
