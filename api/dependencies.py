"""What the routes depend on, as ``Annotated`` aliases.

Every request is checked in this order, before anything is published: the bearer token
(:data:`PrincipalDep`: 401, 403), the path id (:data:`ResourceIdDep`: 404), the body
(:func:`json_body`: its ``Content-Type`` 415, then the body itself 400; see
:mod:`api.bodies`). The order is part of the dependency graph: the id and the body depend on
the principal. Bodies are read here rather than by FastAPI, which would parse the JSON before
any dependency runs and so answer 400 to a caller it never authenticated.
"""

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Final, TypedDict, TypeVar, cast
from uuid import UUID, uuid4

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from api.auth import InsufficientScope, Principal, TokenVerifier, Unauthenticated
from api.bodies import read_model, require_json
from api.errors import Forbidden, NotFound, RequestInvalid, Unauthorized
from api.gateway import Gateway
from api.jwks import KeySet
from api.request_ids import request_id_of
from api.settings import Settings
from schemas.challenges import SignatureSubmission
from schemas.devices import DeviceRegistration
from schemas.signing import DeviceChallengeRequest, KeyAddition

MAX_BODY_BYTES: Final = 64 * 1024
_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
# Documents the scheme in OpenAPI; the header itself is checked by the TokenVerifier.
_bearer = HTTPBearer(auto_error=False, description="A JWT with scope mfa:device-binding")

Model = TypeVar("Model", bound=BaseModel)


# ``async def`` although nothing here awaits: FastAPI runs a plain ``def`` dependency on a
# thread of its pool, a hand-off that cost more than the rest of the request's dependencies.


async def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


async def get_verifier(request: Request) -> TokenVerifier:
    return cast(KeySet, request.app.state.keys).verifier


async def get_gateway(request: Request) -> Gateway:
    return cast(Gateway, request.app.state.gateway)


SettingsDep = Annotated[Settings, Depends(get_settings)]
VerifierDep = Annotated[TokenVerifier, Depends(get_verifier)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def authenticated_principal(
    request: Request,
    verifier: VerifierDep,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, authenticated and holding the required scope."""
    try:
        principal = verifier.authenticate(request.headers.get("Authorization"))
        verifier.authorize(principal)
    except Unauthenticated as exc:
        raise Unauthorized(exc.detail) from None
    except InsufficientScope as exc:
        raise Forbidden(exc.detail) from None
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticated_principal)]


async def current_request_id(request: Request) -> str:
    return request_id_of(request.scope)


RequestIdDep = Annotated[str, Depends(current_request_id)]


async def resource_id(
    _principal: PrincipalDep,
    id: Annotated[str, Path(description="The resource's id", json_schema_extra={"format": "uuid"})],
) -> UUID:
    """The path id; anything but a UUID names nothing, so it is a 404 like any unknown id."""
    if not _UUID_TEXT.fullmatch(id):
        raise NotFound()
    return UUID(id)


ResourceIdDep = Annotated[UUID, Depends(resource_id)]


class CommandHeaderFields(TypedDict):
    """The :class:`~schemas.commands.CommandHeader` fields of one request's command."""

    command_id: UUID
    request_id: str
    client_id: str
    reply_to: str
    issued_at: datetime


async def command_header(
    principal: PrincipalDep, request_id: RequestIdDep, gateway: GatewayDep
) -> CommandHeaderFields:
    return {
        "command_id": uuid4(),
        "request_id": request_id,
        "client_id": principal.client_id,
        "reply_to": gateway.instance_id,
        "issued_at": datetime.now(UTC),
    }


CommandHeaderDep = Annotated[CommandHeaderFields, Depends(command_header)]


def json_body(model: type[Model]) -> Callable[..., Awaitable[Model]]:
    """A dependency reading the request body as ``model``, after authentication."""

    async def parse(_principal: PrincipalDep, request: Request) -> Model:
        # The declared type first: a body that is not JSON is not even read.
        require_json(request.headers.getlist("content-type"))
        return read_model(model, await _read_body(request))

    return parse


async def _read_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestInvalid(f"Invalid request: body: must be at most {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


SignatureSubmissionDep = Annotated[SignatureSubmission, Depends(json_body(SignatureSubmission))]
DeviceRegistrationDep = Annotated[DeviceRegistration, Depends(json_body(DeviceRegistration))]
DeviceChallengeRequestDep = Annotated[
    DeviceChallengeRequest, Depends(json_body(DeviceChallengeRequest))
]
KeyAdditionDep = Annotated[KeyAddition, Depends(json_body(KeyAddition))]
