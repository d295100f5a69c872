"""The published contracts in ``contracts/``: ``python -m contracts write|check|examples``.

- ``write``: the AsyncAPI document (:mod:`contracts.asyncapi`) and the HTTP API's OpenAPI one.
- ``check``: exits 1, naming each file and its first difference, when a committed document
  is not what the code generates now.
- ``examples``: the v1 example events that are missing, and only those. The committed ones
  are the frozen baseline compatibility is checked against (:mod:`contracts.compatibility`):
  regenerating them from today's models would make that check pass by definition.
"""

import argparse
import json
import sys
from pathlib import Path

from contracts.compatibility import drift
from contracts.documents import CONTRACTS_DIR, EXAMPLES_SUBDIR, generated_documents, json_text
from contracts.examples import example_events


def write(contracts_dir: Path) -> int:
    contracts_dir.mkdir(parents=True, exist_ok=True)
    for name, document in generated_documents().items():
        (contracts_dir / name).write_text(json_text(document))
        print(f"wrote {contracts_dir / name}")
    return 0


def check(contracts_dir: Path) -> int:
    drifted = False
    for name, document in generated_documents().items():
        path = contracts_dir / name
        if not path.exists():
            print(f"{path}: missing; run `make contracts`", file=sys.stderr)
            drifted = True
            continue
        differences = drift(json.loads(path.read_text()), document)
        if differences:
            print(
                f"{path}: differs from the code ({len(differences)} difference(s)), first at "
                f"{differences[0]}; run `make contracts`",
                file=sys.stderr,
            )
            drifted = True
    return 1 if drifted else 0


def write_missing_examples(contracts_dir: Path) -> int:
    directory = contracts_dir / EXAMPLES_SUBDIR
    directory.mkdir(parents=True, exist_ok=True)
    kept = 0
    for name, event in example_events():
        path = directory / f"{name}.json"
        try:
            # "x": never over a committed example, even one written meanwhile.
            with path.open("x") as file:
                file.write(json_text(event.model_dump(mode="json")))
        except FileExistsError:
            kept += 1
            continue
        print(f"wrote {path}")
    print(f"kept {kept} existing examples in {directory} (frozen)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m contracts",
        description="Write or check the published contracts in contracts/.",
    )
    parser.add_argument("command", choices=("write", "check", "examples"))
    parser.add_argument(
        "--dir", type=Path, default=CONTRACTS_DIR, help="the contracts folder (default: contracts/)"
    )
    args = parser.parse_args(argv)
    if args.command == "write":
        return write(args.dir)
    if args.command == "check":
        return check(args.dir)
    return write_missing_examples(args.dir)


if __name__ == "__main__":
    raise SystemExit(main())
