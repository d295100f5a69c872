"""The published documents as the code makes them now: the AsyncAPI document of the topics
and the HTTP API's OpenAPI document; and the committed example events, as they are on disk."""

import json
from pathlib import Path
from typing import Any

from api.app import create_app
from api.settings import Settings
from contracts.asyncapi import asyncapi_document

CONTRACTS_DIR = Path(__file__).resolve().parent
EXAMPLES_SUBDIR = Path("examples") / "v1"


def json_text(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def openapi_document() -> dict[str, Any]:
    # model_construct reads no environment: the document depends on the routes alone, and
    # the dummy values below are never used (the app's lifespan does not run).
    settings = Settings.model_construct(
        auth_issuer="https://issuer.example",
        auth_audience="device-binding",
        auth_jwks_file=Path("jwks.json"),
        instance_id="contracts",
    )
    return create_app(settings).openapi()


def generated_documents() -> dict[str, dict[str, Any]]:
    """File name in ``contracts/`` -> the document the code generates now."""
    return {"asyncapi.json": asyncapi_document(), "openapi.json": openapi_document()}


def load_examples(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, dict[str, Any]]:
    """The committed v1 examples by name (file name without ``.json``)."""
    return {
        path.name.removesuffix(".json"): json.loads(path.read_text())
        for path in sorted((contracts_dir / EXAMPLES_SUBDIR).glob("*.json"))
    }


# Fixed, realistic values: one person's device, bound through one challenge.
