"""The one counter of requests refused by a limit, shared by the API and the workers.

Defined once here, in the package both import, because Prometheus' default registry takes
one definition per name: the API counts ``client_rate`` and ``in_flight``, the workers their
per-person limits (``person_locked``, ``pending_challenges``, ``otp_sends``), each process
on its own ``/metrics``. Label values are the constants below, never free text.
"""

from typing import Final

from prometheus_client import Counter

CLIENT_RATE: Final = "client_rate"
IN_FLIGHT: Final = "in_flight"
PERSON_LOCKED: Final = "person_locked"
PENDING_CHALLENGES: Final = "pending_challenges"
OTP_SENDS: Final = "otp_sends"

LIMITED = Counter(
    "device_binding_limited_total",
    "Requests refused by a limit: client_rate and in_flight at the API (429, 503); "
    "person_locked, pending_challenges and otp_sends at the workers (409, 429)",
    ["limit"],
)
