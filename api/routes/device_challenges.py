"""``/v1/mfa/challenges/devices``: a bound device signs a login or a payment (SPEC §8)."""

from fastapi import APIRouter, Response

from api.dependencies import (
    CommandHeaderDep,
    DeviceChallengeRequestDep,
    GatewayDep,
    ResourceIdDep,
    SignatureSubmissionDep,
)
from api.errors import error_responses
from api.idempotency import IdempotencyKeyDep, creation_ids
from api.openapi import request_body
from api.outcomes import answer, no_content
from schemas.challenges import SignatureSubmission
from schemas.commands import GetDeviceChallenge, OpenDeviceChallenge, VerifyDeviceSignature
from schemas.signing import DeviceChallengeOpened, DeviceChallengeRequest, DeviceChallengeView

router = APIRouter(prefix="/v1/mfa/challenges/devices", tags=["device challenges"])


@router.post(
    "",
    status_code=201,
    response_model=DeviceChallengeOpened,
    responses=error_responses(400, 401, 403, 404, 409, 415, 429, 500, 503),
    openapi_extra=request_body(DeviceChallengeRequest),
)
async def open_device_challenge(
    header: CommandHeaderDep,
    idempotency_key: IdempotencyKeyDep,
    request: DeviceChallengeRequestDep,
    gateway: GatewayDep,
    response: Response,
) -> DeviceChallengeOpened:
    """Ask a bound device to sign: a login, or with ``transaction`` a payment, whose amount
    and payee are then part of ``string_to_sign`` (dynamic linking). A payment needs the
    device's restricted key (409 ``restricted_key_required`` without one).

    With an ``Idempotency-Key`` a retry answers the same challenge; a different body under
    the same key answers 409 ``idempotency_key_reused``."""
    ids = creation_ids("device-challenge", header["client_id"], idempotency_key)
    header["command_id"] = ids.command_id
    command = OpenDeviceChallenge(
        **header,
        challenge_id=ids.created_id,
        device_id=request.device_id,
        key_purpose=request.wanted_purpose(),
        device_data=request.device_data,
        transaction=request.transaction,
    )
    opened = answer(await gateway.send(command), DeviceChallengeOpened)
    response.headers["Location"] = f"{router.prefix}/{opened.id}"
    return opened


@router.put(
    "/{id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 401, 403, 404, 409, 415, 429, 500, 503),
    openapi_extra=request_body(SignatureSubmission),
)
async def verify_device_signature(
    header: CommandHeaderDep,
    challenge_id: ResourceIdDep,
    submission: SignatureSubmissionDep,
    gateway: GatewayDep,
) -> Response:
    """Verify the device's signature of ``string_to_sign``; 204 only if a worker verified
    it. Safe to retry, as the binding PUT is."""
    command = VerifyDeviceSignature(
        **header,
        challenge_id=challenge_id,
        signature=submission.signature,
        device_data=submission.device_data,
    )
    no_content(await gateway.send(command))
    return Response(status_code=204)


@router.get(
    "/{id}",
    response_model=DeviceChallengeView,
    responses=error_responses(401, 403, 404, 429, 500, 503),
)
async def get_device_challenge(
    header: CommandHeaderDep, challenge_id: ResourceIdDep, gateway: GatewayDep
) -> DeviceChallengeView:
    """The challenge's state, with its transaction."""
    command = GetDeviceChallenge(**header, challenge_id=challenge_id)
    return answer(await gateway.send(command), DeviceChallengeView)
