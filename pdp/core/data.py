"""The shape of bundle data (DESIGN §4.3), validated once when a policy set is compiled.

Only the keys the access model reads are checked (``roles``, ``users``, ``services``,
``approvals``, ``routes``); anything else in ``data.json`` is free-form, for conditions that read
``data.<path>``. A user naming a role that ``roles`` does not define is an error: it is almost
always a typo, and silently granting nothing would be hard to debug.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from pdp.core.document import field_errors
from pdp.core.errors import FieldError, PolicyValidationError
from pdp.core.rules import Level

Name = Annotated[StrictStr, StringConstraints(min_length=1, max_length=1024)]
HttpMethod = Annotated[StrictStr, StringConstraints(pattern=r"^(\*|[A-Za-z]{1,16})$")]
RoutePath = Annotated[StrictStr, StringConstraints(pattern=r"^/[^\s?#]*$", max_length=2048)]


class UserRecord(BaseModel):
    """``data.users[<id>]``: the user's roles and free-form attributes."""

    model_config = ConfigDict(extra="allow", frozen=True)

    roles: tuple[Name, ...] = ()
    attributes: dict[str, JsonValue] = Field(default_factory=dict)


class ServiceRecord(BaseModel):
    """``data.services[<id>]``: owner, sensitivity ``level`` and anything else."""

    model_config = ConfigDict(extra="allow", frozen=True)

    owner: StrictStr | None = None
    level: Level | None = None
    visibility: StrictStr | None = None


class RouteRecord(BaseModel):
    """``data.routes[i]``: an HTTP route template and the action it means (for ext_authz)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: HttpMethod
    path: RoutePath
    action: Name
    service_id: Name | None = None

    @model_validator(mode="after")
    def _names_a_service(self) -> RouteRecord:
        if self.service_id is None and "{service_id}" not in self.path:
            raise ValueError("a route needs a {service_id} segment in its path or a service_id")
        return self


class AccessData(BaseModel):
    """The parts of bundle data that the access model and ext_authz read."""

    model_config = ConfigDict(extra="allow", frozen=True)

    roles: dict[str, tuple[Name, ...]] = Field(default_factory=dict)
    users: dict[str, UserRecord] = Field(default_factory=dict)
    services: dict[str, ServiceRecord] = Field(default_factory=dict)
    approvals: dict[str, tuple[Name, ...]] = Field(default_factory=dict)
    routes: tuple[RouteRecord, ...] = ()


def parse_data(raw: Mapping[str, Any], *, source: str = "data") -> AccessData:
    """Validate bundle data or raise ``PolicyValidationError`` with ``data.``-prefixed paths."""
    try:
        data = AccessData.model_validate(dict(raw) if isinstance(raw, Mapping) else raw)
    except ValidationError as exc:
        raise PolicyValidationError(source, field_errors(exc, prefix="data")) from None
    errors = [
        FieldError(f"data.users.{user_id}.roles.{i}",
                   f"unknown role {role!r}; data.roles defines: {', '.join(sorted(data.roles))}")
        for user_id, user in data.users.items()
        for i, role in enumerate(user.roles)
        if role not in data.roles
    ]
    if errors:
        raise PolicyValidationError(source, errors)
    return data
