"""Request bodies: what a body must be declared as, and what JSON the API reads.

- :func:`require_json`: exactly one ``Content-Type``, ``application/json`` or a ``+json``
  type of the ``application`` tree (``application/problem+json``), with parameters allowed
  but a ``charset`` other than UTF-8 refused; anything else, or none, is 415
  ``unsupported_media_type``. A body declared as something else is never parsed, so what
  a gateway or WAF treats as text or a form cannot be read here as JSON.
- :func:`read_model`: the body as a model, refused (400 ``validation_error``) when it is not
  JSON, does not fit the model, or repeats a key in any object at any depth. JSON parsers
  disagree on a repeated key (pydantic keeps the last, others the first or refuse it), so a
  log or a WAF reading ``{"signature": A, "signature": B}`` could see another signature
  than the one verified.

Both run in :func:`api.dependencies.json_body`, after authentication: a stranger learns
nothing about bodies.
"""

import json
import re
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from api.errors import RequestInvalid, UnsupportedMediaType, describe_validation_errors

Model = TypeVar("Model", bound=BaseModel)

JSON_MEDIA_TYPE: Final = "application/json"
# RFC 9110 token characters before the RFC 6839 "+json" suffix.
_JSON_TYPE: Final = re.compile(r"application/(?:json|[!#$%&'*+.^_`|~0-9a-z-]+\+json)")
_EXPECTED: Final = "application/json (or another +json media type) with the body in UTF-8"
_NOT_JSON: Final = f"Content-Type must be {_EXPECTED}."


def require_json(content_types: list[str]) -> None:
    """Refuse (415) unless the one ``Content-Type`` given declares UTF-8 JSON."""
    if len(content_types) != 1:
        if not content_types:
            raise UnsupportedMediaType(f"Content-Type is missing; it must be {_EXPECTED}.")
        raise UnsupportedMediaType("Content-Type must be given once.")
    value = content_types[0]
    if value == JSON_MEDIA_TYPE:  # what nearly every client sends
        return
    media_type, _, parameters = value.partition(";")
    if not _JSON_TYPE.fullmatch(media_type.strip().lower()):
        raise UnsupportedMediaType(_NOT_JSON)
    for parameter in parameters.split(";"):
        if not parameter.strip():
            continue
        name, equals, argument = parameter.partition("=")
        if not equals or not name.strip():
            raise UnsupportedMediaType(_NOT_JSON)
        if name.strip().lower() == "charset" and _unquoted(argument.strip()).lower() != "utf-8":
            raise UnsupportedMediaType(_NOT_JSON)


def read_model(model: type[Model], raw: bytes) -> Model:
    """``raw`` as ``model``: valid JSON that fits it, no object repeating a key."""
    try:
        value = model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestInvalid.from_errors(exc.errors(include_input=False)) from None
    # After the model: the body is known to be UTF-8 JSON, nested at most pydantic's limit
    # (200) deep, so the second parse below cannot recurse far or meet anything new.
    refuse_repeated_keys(raw)
    return value


class _RepeatedKey(Exception):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> None:
    # Answers None: only whether a key repeats matters, not the parsed document.
    if len(pairs) > 1 and len(dict(pairs)) != len(pairs):
        raise _RepeatedKey


# Built once: ``json.loads`` with a hook builds a decoder per call, which cost more than the
# parse itself.
_KEY_CHECKER: Final = json.JSONDecoder(object_pairs_hook=_unique)
_JSON_WHITESPACE: Final = " \t\n\r"


def refuse_repeated_keys(raw: bytes) -> None:
    """400 naming the key if an object in the JSON document ``raw`` repeats one.

    ``raw`` has passed the model's parser, so it is one JSON value, perhaps with whitespace
    around it: what follows the value is not looked at again.
    """
    try:
        _KEY_CHECKER.raw_decode(raw.decode().lstrip(_JSON_WHITESPACE))
    except _RepeatedKey:
        path = _repeated_key_path(raw)
        raise RequestInvalid(
            describe_validation_errors(
                [{"loc": ("body", *path), "type": "value_error", "msg": "appears more than once"}]
            )
        ) from None
    except (ValueError, RecursionError):
        # Read by pydantic but not here (an integer of more than 4300 digits, say).
        raise RequestInvalid("Invalid request: body: is not valid JSON.") from None


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key-value pairs, in order, repeats kept."""


def _repeated_key_path(raw: bytes) -> tuple[str | int, ...]:
    """Where the first repeated key is (its object's path, then the key); only on refusal."""
    found = _find_repeated(json.loads(raw, object_pairs_hook=_Pairs), ())
    return found if found is not None else ()


def _find_repeated(value: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    if isinstance(value, _Pairs):
        seen: set[str] = set()
        for key, _ in value:
            if key in seen:
                return (*path, key)
            seen.add(key)
        children: list[tuple[str | int, Any]] = list(value)
    elif isinstance(value, list):
        children = list(enumerate(value))
    else:
        return None
    for step, child in children:
        found = _find_repeated(child, (*path, step))
        if found is not None:
            return found
    return None


def _unquoted(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text
