"""The AsyncAPI 3.0 document of the product's Kafka topics, built from the wire models only.

:func:`asyncapi_document` takes its messages as data (:mod:`contracts.messages`), so a test
can feed it a changed model and see the document a consumer would get. Channels and
operations are :mod:`contracts.channels` and :mod:`contracts.operations`. Payload schemas come
from pydantic and live under ``components/schemas``.

The objects of public messages (events, OTP deliveries, fraud signals) are published open:
within a major version (``v1``) they may gain optional properties, so their consumers must
ignore properties they do not know, and the schemas they read say so by not forbidding them.
Internal messages (commands, replies) stay as strict as their models, which refuse unknown
fields: the API and the workers are one product, released together.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contracts.channels import CHANNELS, Channel
from contracts.messages import (
    ASYNCAPI_VERSION,
    DEFAULT_MESSAGES,
    JSON,
    KAFKA_BINDING_VERSION,
    SCHEMA_REF_TEMPLATE,
    MessageSpec,
)
from contracts.operations import OPERATIONS, Operation

# The name of the closed copy of a model that public messages publish open.
INTERNAL_SUFFIX = "Internal"

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
    """Each message's payload schema, and the ``components/schemas`` they refer to.

    A model that public and internal messages both carry (a command's transaction is the
    event's) cannot be published both open and closed under one name: the internal copy,
    closed, is named ``<Model>Internal``, and the internal schemas refer to it by that name.
    """
    public_refs, public = _definitions(
        spec.payload for spec in messages if spec.payload and spec.channel.public
    )
    internal_refs, internal = _definitions(
        spec.payload for spec in messages if spec.payload and not spec.channel.public
    )
    public = {name: _open(schema) for name, schema in public.items()}
    names = {
        name: name + INTERNAL_SUFFIX
        for name in sorted(public.keys() & internal.keys())
        if public[name] != internal[name]
    }
    if taken := sorted(set(names.values()) & (public.keys() | internal.keys())):
        raise ValueError(f"cannot name the internal copies: {', '.join(taken)} taken")
    renamed = {_ref(old): _ref(new) for old, new in names.items()}
    internal = {
        names.get(name, name): _renamed(schema, renamed) for name, schema in internal.items()
    }

    def payload(spec: MessageSpec) -> dict[str, Any]:
        if spec.payload is None:
            return {"description": "Any bytes: not necessarily JSON."}
        if spec.channel.public:
            return public_refs[spec.payload]
        reference: dict[str, Any] = _renamed(internal_refs[spec.payload], renamed)
        return reference

    payloads = {spec.name: payload(spec) for spec in messages}
    return payloads, dict(sorted((public | internal).items()))


def _ref(name: str) -> str:
    return SCHEMA_REF_TEMPLATE.format(model=name)


def _renamed(node: Any, references: Mapping[str, str]) -> Any:
    """``node`` with each ``$ref`` that ``references`` names replaced by its new target."""
    if isinstance(node, dict):
        return {
            key: references.get(value, value)
            if key == "$ref" and isinstance(value, str)
            else _renamed(value, references)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_renamed(item, references) for item in node]
    return node


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
