"""What the contract tests share: the committed v1 examples, the default messages, and the
means to change a message's models and see the AsyncAPI document a consumer would get."""

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, create_model

from contracts.asyncapi import asyncapi_document
from contracts.compatibility import compatibility_problems, message_of
from contracts.documents import load_examples
from contracts.messages import DEFAULT_MESSAGES, MessageSpec
from schemas.model import WireModel

EXAMPLES = load_examples()
MESSAGES = {spec.name: spec for spec in DEFAULT_MESSAGES}


def examples_of(*messages: str) -> list[str]:
    """The names of the committed examples of ``messages``, sorted."""
    return sorted(name for name in EXAMPLES if message_of(name) in messages)


def at(document: Any, pointer: str) -> Any:
    """The value at a JSON pointer (``#`` prefix allowed) in ``document``."""
    node = document
    for segment in pointer.removeprefix("#").removeprefix("/").split("/"):
        node = node[segment.replace("~1", "/").replace("~0", "~")]
    return node


def members(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) of every object in a JSON value, nested ones included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from members(value)
    elif isinstance(node, list):
        for item in node:
            yield from members(item)


def changed(
    model: type[BaseModel], *, without: str | None = None, **fields: Any
) -> type[BaseModel]:
    """``model`` changed, under its own name: ``without`` removed, ``fields`` added or
    retyped (a rename is both)."""
    kept = {
        name: (info.annotation, info)
        for name, info in model.model_fields.items()
        if name != without
    }
    return create_model(
        model.__name__, __base__=WireModel, __doc__=model.__doc__, **(kept | fields)
    )


def messages_with(names: frozenset[str], **fields: Any) -> tuple[MessageSpec, ...]:
    """The default messages, the payload models of ``names`` with ``fields`` overridden."""
    messages = []
    for spec in DEFAULT_MESSAGES:
        if spec.name in names:
            assert spec.payload is not None
            payload = create_model(
                spec.payload.__name__,
                __base__=spec.payload,
                __doc__=spec.payload.__doc__,
                **fields,
            )
            spec = replace(spec, payload=payload)
        messages.append(spec)
    return tuple(messages)


def problems_with(names: frozenset[str], **fields: Any) -> list[str]:
    """What the v1 examples report against a document whose messages ``names`` have
    ``fields`` overridden in their payload models."""
    return compatibility_problems(EXAMPLES, asyncapi_document(messages_with(names, **fields)))
