"""IncrementalAlterConfigs (KIP-339) v0, which aiokafka 0.14 does not offer.

aiokafka's ``alter_configs`` is the older AlterConfigs, which replaces every config set on a
topic, so a config an operator set by hand (or one we do not manage) would be silently
reset. Built on aiokafka's own protocol classes; the versions are negotiated per connection
as for its requests (brokers from 2.3 to 4.x serve v0).
"""

from __future__ import annotations

from typing import Any

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int8, Int16, Int32, Schema, String

# The config_operation of a config in the request: set it to the given value.
SET = 0


class _IncrementalAlterConfigsResponseV0(Response):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 44
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "responses",
            Array(
                ("error_code", Int16),
                ("error_message", String("utf-8")),
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
            ),
        ),
    )


class _IncrementalAlterConfigsRequestV0(RequestStruct):  # type: ignore[misc]
    API_KEY = 44
    API_VERSION = 0
    RESPONSE_TYPE = _IncrementalAlterConfigsResponseV0
    SCHEMA = Schema(
        (
            "resources",
            Array(
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
                (
                    "configs",
                    Array(
                        ("name", String("utf-8")),
                        ("config_operation", Int8),
                        ("value", String("utf-8")),
                    ),
                ),
            ),
        ),
        ("validate_only", Boolean),
    )


class IncrementalAlterConfigs(Request[_IncrementalAlterConfigsRequestV0]):  # type: ignore[misc]
    """The request, for aiokafka's ``AIOKafkaAdminClient._send_request``.

    ``resources``: ``(resource_type, resource_name, [(name, config_operation, value)])``.
    """

    API_KEY = 44

    def __init__(self, resources: list[Any], validate_only: bool) -> None:
        self._resources = resources
        self._validate_only = validate_only

    def build(self, request_struct_class: type[Any]) -> Any:
        return request_struct_class(self._resources, self._validate_only)
