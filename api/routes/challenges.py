"""``/v1/mfa/challenges/signatures``: verify a signature (the seed endpoint), read a challenge."""

from fastapi import APIRouter, Response

from api.dependencies import CommandHeaderDep, GatewayDep, ResourceIdDep, SignatureSubmissionDep
from api.errors import error_responses
from api.openapi import request_body
from api.outcomes import answer, no_content
from schemas.challenges import ChallengeView, SignatureSubmission
from schemas.commands import GetChallenge, VerifySignature

router = APIRouter(prefix="/v1/mfa/challenges/signatures", tags=["challenges"])


@router.put(
    "/{id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 401, 403, 404, 409, 415, 429, 500, 503),
    openapi_extra=request_body(SignatureSubmission),
)
async def verify_signature(
    header: CommandHeaderDep,
    challenge_id: ResourceIdDep,
    submission: SignatureSubmissionDep,
    gateway: GatewayDep,
) -> Response:
    """Verify the device's signature of the OTP; 204 only if a worker verified it.

    Safe to retry: after a 503 ``verification_pending`` send the same request again.
    """
    command = VerifySignature(
        **header,
        challenge_id=challenge_id,
        signature=submission.signature,
        device_data=submission.device_data,
    )
    no_content(await gateway.send(command))
    return Response(status_code=204)


@router.get(
    "/{id}",
    response_model=ChallengeView,
    responses=error_responses(401, 403, 404, 429, 500, 503),
)
async def get_challenge(
    header: CommandHeaderDep, challenge_id: ResourceIdDep, gateway: GatewayDep
) -> ChallengeView:
    """The challenge's state."""
    command = GetChallenge(**header, challenge_id=challenge_id)
    return answer(await gateway.send(command), ChallengeView)
