"""``/v1/mfa/devices``: register, read, list and unbind devices."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.dependencies import (
    CommandHeaderDep,
    DeviceRegistrationDep,
    GatewayDep,
    ResourceIdDep,
)
from api.errors import error_responses
from api.idempotency import IdempotencyKeyDep, registration_ids
from api.openapi import request_body
from api.outcomes import answer, no_content
from schemas.commands import GetDevice, ListDevices, RegisterDevice, UnbindDevice
from schemas.devices import DeviceList, DeviceRegistered, DeviceRegistration, DeviceView
from schemas.fields import Identifier

router = APIRouter(prefix="/v1/mfa/devices", tags=["devices"])


@router.post(
    "",
    status_code=202,
    response_model=DeviceRegistered,
    responses=error_responses(400, 401, 403, 409, 415, 429, 500, 503),
    openapi_extra=request_body(DeviceRegistration),
)
async def register_device(
    header: CommandHeaderDep,
    idempotency_key: IdempotencyKeyDep,
    registration: DeviceRegistrationDep,
    gateway: GatewayDep,
    response: Response,
) -> DeviceRegistered:
    """Register a device key, open its binding challenge and send the OTP.

    Send an ``Idempotency-Key`` header to make the request safe to retry: a repeat with the
    same key and body answers the same 202 (and sends no second OTP); a different body
    under the same key answers 409 ``idempotency_key_reused``.
    """
    ids = registration_ids(header["client_id"], idempotency_key)
    header["command_id"] = ids.command_id
    command = RegisterDevice(
        **header,
        device_id=ids.device_id,
        key_id=ids.key_id,
        challenge_id=ids.challenge_id,
        registration=registration,
    )
    registered = answer(await gateway.send(command), DeviceRegistered)
    response.headers["Location"] = f"/v1/mfa/challenges/signatures/{registered.challenge.id}"
    return registered


@router.get(
    "",
    response_model=DeviceList,
    responses=error_responses(400, 401, 403, 429, 500, 503),
)
async def list_devices(
    header: CommandHeaderDep,
    person_id: Annotated[Identifier, Query(alias="filter[person_id]")],
    gateway: GatewayDep,
) -> DeviceList:
    """The person's bound devices."""
    command = ListDevices(**header, person_id=person_id)
    return answer(await gateway.send(command), DeviceList)


@router.get(
    "/{id}",
    response_model=DeviceView,
    responses=error_responses(401, 403, 404, 429, 500, 503),
)
async def get_device(
    header: CommandHeaderDep, device_id: ResourceIdDep, gateway: GatewayDep
) -> DeviceView:
    """One device."""
    command = GetDevice(**header, device_id=device_id)
    return answer(await gateway.send(command), DeviceView)


@router.delete(
    "/{id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 429, 500, 503),
)
async def unbind_device(
    header: CommandHeaderDep, device_id: ResourceIdDep, gateway: GatewayDep
) -> Response:
    """Unbind a device and its keys."""
    command = UnbindDevice(**header, device_id=device_id)
    no_content(await gateway.send(command))
    return Response(status_code=204)
