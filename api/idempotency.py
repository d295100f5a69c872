"""Idempotent creation: an ``Idempotency-Key`` makes a retried POST the same command.

``PUT`` is idempotent by its nature (the signature identifies the attempt). ``POST
/v1/mfa/devices`` is not: a caller whose request ended in 503 ``verification_pending``
cannot know whether the device was registered. With an ``Idempotency-Key`` the command's
id and the ids of the device, key and challenge are derived from the client and the key,
so the retry is the same command: the worker answers it from what it stored (the same
202 body, no second OTP), or refuses a different request under the same key. Opening a
device challenge and adding a key work the same way (:func:`creation_ids`), each route's
ids derived apart from the others', so one key used on two routes names two things.
"""

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, Header

from api.dependencies import PrincipalDep
from api.errors import RequestInvalid

HEADER: Final = "Idempotency-Key"
_KEY: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_NAMESPACE: Final = uuid.UUID("0b7c1d64-5f0e-4d7f-a2e4-3c9d1e6f8a52")


@dataclass(frozen=True)
class RegistrationIds:
    command_id: uuid.UUID
    device_id: uuid.UUID
    key_id: uuid.UUID
    challenge_id: uuid.UUID


def registration_ids(client_id: str, idempotency_key: str | None) -> RegistrationIds:
    """Fresh ids, or, with a key, the same ids for every request of this client and key."""
    if idempotency_key is None:
        return RegistrationIds(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())

    def derived(kind: str) -> uuid.UUID:
        # Client and key separated by a character neither may contain.
        return uuid.uuid5(_NAMESPACE, f"{kind}\n{client_id}\n{idempotency_key}")

    return RegistrationIds(
        derived("command"), derived("device"), derived("key"), derived("challenge")
    )


@dataclass(frozen=True)
class CreationIds:
    command_id: uuid.UUID
    created_id: uuid.UUID  # the challenge's or the key's


def creation_ids(route: str, client_id: str, idempotency_key: str | None) -> CreationIds:
    """Fresh ids, or, with a key, the same ids for every request of this client, route and
    key."""
    if idempotency_key is None:
        return CreationIds(uuid.uuid4(), uuid.uuid4())

    def derived(kind: str) -> uuid.UUID:
        return uuid.uuid5(_NAMESPACE, f"{route}:{kind}\n{client_id}\n{idempotency_key}")

    return CreationIds(derived("command"), derived("created"))


async def idempotency_key(
    _principal: PrincipalDep,  # authentication first: a stranger learns nothing, not even 400
    key: Annotated[str | None, Header(alias=HEADER)] = None,
) -> str | None:
    if key is not None and not _KEY.fullmatch(key):
        raise RequestInvalid(
            f"Invalid request: {HEADER}: must be 1 to 128 characters of A-Z a-z 0-9 . _ : -."
        )
    return key


IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]
