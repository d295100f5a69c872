"""The checks behind the published contracts, pure functions for tests and the CLI alike.

- :func:`drift`: where a committed document differs from the one the code generates now.
- :func:`compatibility_problems`: what in a generated AsyncAPI document would break
  consumers of the frozen v1 example messages.

Here rather than in ``schemas``: ``jsonschema`` is a development dependency, not one of the
services'.
"""

import json
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

# Where the document sits in the validator's registry: its "#/..." references resolve in it.
_DOCUMENT_URI = "urn:device-binding:asyncapi"
_SHOWN_VALUE_LENGTH = 60


def drift(committed: Any, generated: Any) -> list[str]:
    """Each difference as "<JSON pointer>: <what>", in document order; [] when equal."""
    return list(_differences(committed, generated, ""))


def _differences(committed: Any, generated: Any, pointer: str) -> Iterator[str]:
    if isinstance(committed, dict) and isinstance(generated, dict):
        for key in sorted(committed.keys() | generated.keys()):
            at = f"{pointer}/{_escaped(key)}"
            if key not in generated:
                yield f"{at}: only in the committed file"
            elif key not in committed:
                yield f"{at}: only in the generated document"
            else:
                yield from _differences(committed[key], generated[key], at)
    elif isinstance(committed, list) and isinstance(generated, list):
        for index, (old, new) in enumerate(zip(committed, generated, strict=False)):
            yield from _differences(old, new, f"{pointer}/{index}")
        if len(committed) != len(generated):
            yield (
                f"{pointer or '/'}: {len(committed)} items committed, {len(generated)} generated"
            )
    # JSON tells true from 1 and 1 from 1.0; Python's == does not.
    elif type(committed) is not type(generated) or committed != generated:
        yield f"{pointer or '/'}: committed {_shown(committed)}, generated {_shown(generated)}"


def _escaped(key: str) -> str:
    """``key`` as one JSON pointer segment (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= _SHOWN_VALUE_LENGTH else text[: _SHOWN_VALUE_LENGTH - 3] + "..."


def message_of(example_name: str) -> str:
    """The message an example is of: its name up to the first dot (``<message>.<variant>``)."""
    return example_name.partition(".")[0]


def compatibility_problems(
    examples: Mapping[str, Mapping[str, Any]], document: Mapping[str, Any]
) -> list[str]:
    """What would break for consumers of v1 if ``document``'s messages replaced v1's.

    Each example must validate against its message's payload schema in ``document``, every
    object closed to properties the schema does not declare. So it reports:

    - a removed or renamed property: the example still carries it, a v1 consumer reads it;
    - a retyped property or a changed ``const`` (a renamed CloudEvents type): the example's
      value no longer fits;
    - a new required property: the v1 messages already on the topic lack it.

    A new optional property is not reported: v1 messages stay valid, and v1 consumers ignore
    properties they do not know, which the open schemas of public messages tell them to do.
    """
    closed = _closed(document)
    registry: Registry[Any] = Registry().with_resource(
        _DOCUMENT_URI, DRAFT202012.create_resource(closed)
    )
    messages = closed["components"]["messages"]
    problems: list[str] = []
    for name, example in sorted(examples.items()):
        message = message_of(name)
        if message not in messages:
            problems.append(f"{name}: the document has no message {message!r}")
            continue
        payload = {"$ref": f"{_DOCUMENT_URI}#/components/messages/{message}/payload"}
        validator = Draft202012Validator(payload, registry=registry)
        errors = sorted(validator.iter_errors(example), key=lambda e: (e.json_path, e.message))
        problems.extend(f"{name}: {error.json_path}: {error.message}" for error in errors)
    return problems


def _closed(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` with each object schema of ``components/schemas`` refusing unknown
    properties, as the models themselves do."""
    components = document["components"]
    schemas = {
        name: schema
        if schema.get("type") != "object" or "additionalProperties" in schema
        else {**schema, "additionalProperties": False}
        for name, schema in components["schemas"].items()
    }
    return {**document, "components": {**components, "schemas": schemas}}
