"""The AsyncAPI 3.0 document of the product's Kafka topics, built from the wire models only.

:func:`asyncapi_document` takes its messages as data (:mod:`contracts.messages`), so a test
can feed it a changed model and see the document a consumer would get. Payload schemas come
from pydantic and live under ``components/schemas``.

The objects of public messages (events, OTP deliveries, fraud signals) are published open:
within a major version (``v1``) they may gain optional properties, so their consumers must
ignore properties they do not know, and the schemas they read say so by not forbidding them.
Internal messages (commands, replies) stay as strict as their models, which refuse unknown
fields: the API and the workers are one product, released together.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contracts.messages import (
    ASYNCAPI_VERSION,
    CHANNELS,
    DEFAULT_MESSAGES,
    JSON,
    KAFKA_BINDING_VERSION,
    OPERATIONS,
    SCHEMA_REF_TEMPLATE,
    Channel,
    MessageSpec,
    Operation,
)

_DESCRIPTION = """\
The Kafka contract of the device-binding service (SPEC section 5).

Compatibility within v1: public messages may gain optional properties, never lose or retype \
one, and a CloudEvents type is never renamed. Consumers must ignore properties they do not \
know; the schemas of public messages therefore do not forbid them. Any other change is a new \
topic version (.v2)."""


def asyncapi_document(messages: Sequence[MessageSpec] = DEFAULT_MESSAGES) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of ``messages`` on :data:`CHANNELS`, a JSON-ready dict."""
    names = [spec.name for spec in messages]
    if len(set(names)) != len(names):
        raise ValueError(f"message names must be unique: {sorted(names)}")
    payloads, schemas = _payload_schemas(messages)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Device-binding signature verification: Kafka contract",
            "version": "1.0.0",
            "description": _DESCRIPTION,
        },
        "defaultContentType": JSON,
        "channels": {channel.id: _channel(channel, messages) for channel in CHANNELS},
        "operations": {operation.id: _operation(operation, messages) for operation in OPERATIONS},
        "components": {
            "messages": {spec.name: _message(spec, payloads[spec.name]) for spec in messages},
            "schemas": schemas,
        },
    }


def _names_on(channel: Channel, messages: Sequence[MessageSpec]) -> list[str]:
    return sorted(spec.name for spec in messages if spec.channel == channel)


def _channel(channel: Channel, messages: Sequence[MessageSpec]) -> dict[str, Any]:
    return {
        "address": channel.address,
        "description": channel.description,
        "messages": {
            name: {"$ref": f"#/components/messages/{name}"} for name in _names_on(channel, messages)
        },
    }


def _operation(operation: Operation, messages: Sequence[MessageSpec]) -> dict[str, Any]:
    channel_id = operation.channel.id
    return {
        "action": operation.action,
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "summary": operation.summary,
        "messages": [
            {"$ref": f"#/channels/{channel_id}/messages/{name}"}
            for name in _names_on(operation.channel, messages)
        ],
    }


def _message(spec: MessageSpec, payload: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": spec.name,
        "summary": spec.summary,
        "contentType": spec.content_type,
        "payload": payload,
        "bindings": {"kafka": {"key": spec.key.schema(), "bindingVersion": KAFKA_BINDING_VERSION}},
    }
    if spec.headers:
        message["headers"] = {
            "type": "object",
            "properties": {header.name: header.schema() for header in spec.headers},
            "required": sorted(header.name for header in spec.headers),
        }
    return message


def _payload_schemas(
    messages: Sequence[MessageSpec],
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Each message's payload schema, and the ``components/schemas`` they refer to."""
    public_refs, public = _definitions(
        spec.payload for spec in messages if spec.payload and spec.channel.public
    )
    internal_refs, internal = _definitions(
        spec.payload for spec in messages if spec.payload and not spec.channel.public
    )
    public = {name: _open(schema) for name, schema in public.items()}
    for name in sorted(public.keys() & internal.keys()):
        if public[name] != internal[name]:
            raise ValueError(
                f"{name} is in public and internal messages: it cannot be both open and "
                "closed; give one of them its own model"
            )
    refs = public_refs | internal_refs
    opaque = {"description": "Any bytes: not necessarily JSON."}
    payloads = {spec.name: refs[spec.payload] if spec.payload else opaque for spec in messages}
    return payloads, dict(sorted((public | internal).items()))


def _definitions(
    models: Iterable[type[BaseModel]],
) -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, Any]]:
    unique = list(dict.fromkeys(models))
    refs, definitions = models_json_schema(
        [(model, "validation") for model in unique], ref_template=SCHEMA_REF_TEMPLATE
    )
    return {model: refs[(model, "validation")] for model in unique}, definitions.get("$defs", {})


def _open(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without ``additionalProperties: false``: unknown properties are allowed."""
    return {
        key: value
        for key, value in schema.items()
        if not (key == "additionalProperties" and value is False)
    }
