"""The worker's Prometheus metrics, served at ``GET /metrics`` on its probe port.

Counters count deliveries: a redelivered command is counted again (its decision is not
taken again, see worker/binding.py), so rates read as work done, not as customers' acts.
"""

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

COMMANDS = Counter(
    "device_binding_commands_total",
    "Commands taken off the commands topic, by type and result "
    "(handled, failed: to be retried, dead_lettered)",
    ["type", "result"],
)
COMMAND_DURATION = Histogram(
    "device_binding_command_duration_seconds",
    "Time to handle one command: decide, store, publish event and reply",
    ["type"],
    buckets=_LATENCY_BUCKETS,
)
VERIFICATION_OUTCOMES = Counter(
    "device_binding_verification_outcomes_total",
    "Signature verifications answered, by outcome (verified, rejected) and reason",
    ["outcome", "reason"],
)
EVENT_PUBLISH_LATENCY = Histogram(
    "device_binding_event_publish_duration_seconds",
    "Time for Kafka to acknowledge a result event (acks=all)",
    buckets=_LATENCY_BUCKETS,
)
COMMAND_TO_EVENT = Histogram(
    "device_binding_command_to_event_seconds",
    "From the API issuing a command to its outcome being stored and announced (result event "
    "and reply acknowledged by Kafka), by command type",
    ["type"],
    buckets=_LATENCY_BUCKETS,
)
DEAD_LETTERS = Counter(
    "device_binding_dead_letters_total",
    "Commands sent to the dead-letter topic",
)
CONSUMER_LAG = Gauge(
    "device_binding_consumer_lag",
    "Commands not yet committed by the workers' group, per partition (every worker reports "
    "the whole group's lag: aggregate with max, not sum)",
    ["partition"],
)
