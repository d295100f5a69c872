"""``/v1/mfa/devices/{id}/keys``: a bound device's keys by purpose (SPEC §8)."""

from fastapi import APIRouter, Response

from api.dependencies import CommandHeaderDep, GatewayDep, KeyAdditionDep, ResourceIdDep
from api.errors import error_responses
from api.idempotency import IdempotencyKeyDep, creation_ids
from api.openapi import request_body
from api.outcomes import answer
from schemas.commands import AddDeviceKey, ListDeviceKeys
from schemas.signing import DeviceKeys, KeyAdded, KeyAddition

router = APIRouter(prefix="/v1/mfa/devices", tags=["keys"])


@router.get(
    "/{id}/keys",
    response_model=DeviceKeys,
    responses=error_responses(401, 403, 404, 429, 500, 503),
)
async def list_keys(
    header: CommandHeaderDep, device_id: ResourceIdDep, gateway: GatewayDep
) -> DeviceKeys:
    """The device's keys: its binding key first, then those added, with when each last
    signed."""
    command = ListDeviceKeys(**header, device_id=device_id)
    return answer(await gateway.send(command), DeviceKeys)


@router.post(
    "/{id}/keys",
    status_code=201,
    response_model=KeyAdded,
    responses=error_responses(400, 401, 403, 404, 409, 415, 429, 500, 503),
    openapi_extra=request_body(KeyAddition),
)
async def add_key(
    header: CommandHeaderDep,
    idempotency_key: IdempotencyKeyDep,
    device_id: ResourceIdDep,
    addition: KeyAdditionDep,
    gateway: GatewayDep,
    response: Response,
) -> KeyAdded:
    """Add a key of another purpose, vouched for by a key the device holds: its signature
    (``device_signature``) of the new key's lowercase hex. 403 ``invalid_signature`` if it
    does not verify; 409 ``key_purpose_taken`` if the device holds that purpose already.
    An ``Idempotency-Key`` makes a retry answer the same key (as for a new device)."""
    ids = creation_ids("key", header["client_id"], idempotency_key)
    header["command_id"] = ids.command_id
    command = AddDeviceKey(**header, device_id=device_id, key_id=ids.created_id, addition=addition)
    added = answer(await gateway.send(command), KeyAdded)
    response.headers["Location"] = f"{router.prefix}/{device_id}/keys"
    return added
