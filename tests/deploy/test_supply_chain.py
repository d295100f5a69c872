"""The supply chain, pinned; checked offline (no index, no registry, no Docker daemon).

- Every lock file in requirements/ (written by ``make lock``) pins each package to one
  version with the hash of its files, and holds nothing else: no unpinned line, no URL, no
  option that could widen what pip accepts.
- Each lock agrees with pyproject.toml: the packages it marks as the project's own direct
  dependencies are exactly those pyproject.toml declares for its set (runtime; runtime and
  test; those and bench), at versions its specifiers allow; every other pin is there because
  a pinned package needs it. runtime.txt (the image) holds no test tool, and the three sets
  agree on every version, so the image runs what the tests ran.
- The build lock pins pip and the build backend pyproject.toml names; the lock tool is the
  version its input names.
- The Makefile and the Dockerfile install through the locks (``--require-hashes``) or
  without dependencies (``--no-deps``), never otherwise; the venv is rebuilt when a lock
  changes; every FROM line names its base image by digest.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.test_manifests import (
    DOCKERFILE,
    REPO,
    dockerfile_instructions,
    dockerignored,
)

LOCKS = REPO / "requirements"
MAKEFILE = REPO / "Makefile"
# How uv annotates a pin that pyproject.toml asks for directly.
PROJECT = "device-binding (pyproject.toml)"
# Each lock compiled from pyproject.toml, with the extras it installs.
PROJECT_LOCKS: dict[str, tuple[str, ...]] = {
    "runtime.txt": (),
    "test.txt": ("test",),
    "bench.txt": ("test", "bench"),
}
ALL_LOCKS = [*PROJECT_LOCKS, "build.txt", "lock-tool.txt"]
# The environment every lock is resolved for (`make lock`: CPython 3.11 on Linux).
TARGET = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux"}
HASH = re.compile(r"sha256:[0-9a-f]{64}")
IMAGE_BY_DIGEST = re.compile(r"[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    """One package of a lock file: its exact version, its files' hashes, and why it is there."""

    name: str
    version: str
    hashes: tuple[str, ...]
    via: frozenset[str]


def parse_lock(text: str) -> dict[str, Pin]:
    """The pins of a lock file in uv's (and pip-compile's) format; anything else fails."""
    pinned: list[tuple[str, str, tuple[str, ...]]] = []
    vias: dict[str, set[str]] = {}
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            # "# via NAME", or "# via" followed by one "#   NAME" per line; the header
            # comes before any pin.
            reason = line.lstrip("#").strip().removeprefix("via").strip()
            if pinned and reason:
                vias[pinned[-1][0]].add(reason)
            continue
        pending += " " + line.removesuffix("\\").strip()
        if line.endswith("\\"):
            continue
        requirement_text, *hashes = re.split(r"\s+--hash=", pending.strip())
        pending = ""
        assert not requirement_text.startswith("-"), f"an option in a lock: {requirement_text}"
        requirement = Requirement(requirement_text)
        (specifier, *others) = list(requirement.specifier)
        assert not others, f"one version per package: {requirement_text}"
        assert specifier.operator == "==", f"unpinned: {requirement_text}"
        assert "*" not in specifier.version, f"unpinned: {requirement_text}"
        assert requirement.url is None, f"a URL in a lock: {requirement_text}"
        assert hashes, f"no --hash for {requirement_text}"
        for file_hash in hashes:
            assert HASH.fullmatch(file_hash), f"{requirement_text}: {file_hash}"
        name = canonicalize_name(requirement.name)
        assert name not in vias, f"{name} pinned twice"
        pinned.append((name, specifier.version, tuple(hashes)))
        vias[name] = set()
    assert not pending, "a lock ends inside a continued line"
    return {
        name: Pin(name, version, hashes, frozenset(vias[name])) for name, version, hashes in pinned
    }


def read_lock(name: str) -> dict[str, Pin]:
    return parse_lock((LOCKS / name).read_text())


def pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def declared(extras: Iterable[str]) -> dict[str, list[Requirement]]:
    """pyproject.toml's direct dependencies for the runtime plus ``extras``, by package."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    by_name: dict[str, list[Requirement]] = {}
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(TARGET):
            by_name.setdefault(canonicalize_name(requirement.name), []).append(requirement)
    return by_name


# --- the lock files --------------------------------------------------------------------


@pytest.mark.parametrize("lock", ALL_LOCKS)
def test_every_line_of_a_lock_pins_one_version_with_its_hashes(lock: str) -> None:
    pins = read_lock(lock)
    assert pins, f"{lock} pins nothing"


@pytest.mark.parametrize(("lock", "extras"), PROJECT_LOCKS.items())
def test_a_lock_pins_exactly_what_pyproject_declares_for_its_set(
    lock: str, extras: tuple[str, ...]
) -> None:
    pins = read_lock(lock)
    wanted = declared(extras)
    direct = {name for name, pin in pins.items() if PROJECT in pin.via}
    assert set(wanted) - set(pins) == set(), f"{lock} lacks them: run `make lock`"
    assert direct == set(wanted), f"{lock} disagrees with pyproject.toml: run `make lock`"
    for name, requirements in wanted.items():
        for requirement in requirements:
            assert requirement.specifier.contains(pins[name].version, prereleases=True), (
                f"{lock}: {name}=={pins[name].version} outside {requirement}: run `make lock`"
            )


@pytest.mark.parametrize("lock", ALL_LOCKS)
def test_every_pin_is_wanted_by_the_project_or_by_another_pin_of_the_same_lock(
    lock: str,
) -> None:
    pins = read_lock(lock)
    for pin in pins.values():
        reasons = {
            reason
            for reason in pin.via
            # The project itself, an input file (-r), the lock the others follow (-c).
            if reason != PROJECT and not reason.startswith(("-r ", "-c "))
        }
        assert pin.via, f"{lock}: nothing asks for {pin.name}"
        unknown = {canonicalize_name(reason) for reason in reasons} - set(pins)
        assert not unknown, f"{lock}: {pin.name} is there for {unknown}, which it does not pin"


def test_the_image_lock_holds_no_test_or_bench_tool() -> None:
    runtime = read_lock("runtime.txt")
    tools = set(declared(("test", "bench"))) - set(declared(()))
    assert {"pytest", "mypy", "ruff", "matplotlib"} <= tools
    assert tools & set(runtime) == set()


def test_the_locks_agree_on_every_version_so_the_image_runs_what_the_tests_ran() -> None:
    runtime, test, bench = (read_lock(name) for name in PROJECT_LOCKS)
    for smaller, larger in ((runtime, test), (test, bench)):
        for name, pin in smaller.items():
            assert name in larger, name
            assert (larger[name].version, larger[name].hashes) == (pin.version, pin.hashes), name


def test_the_build_lock_pins_pip_and_the_build_backend() -> None:
    pins = read_lock("build.txt")
    assert "pip" in pins
    build_system = pyproject()["build-system"]
    assert isinstance(build_system, dict)
    for line in build_system["requires"]:
        requirement = Requirement(line)
        pin = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pin.version), f"{pin.name}=={pin.version}"


def test_the_lock_tool_is_the_version_its_input_names() -> None:
    wanted = [
        Requirement(line)
        for line in (LOCKS / "lock-tool.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    (uv,) = wanted
    (specifier,) = list(uv.specifier)
    assert specifier.operator == "==", "the resolver's own version is pinned exactly"
    assert read_lock("lock-tool.txt")["uv"].version == specifier.version


def test_the_parser_refuses_what_pip_would_install_unchecked() -> None:
    hashed = "six==1.17.0 \\\n    --hash=sha256:" + "a" * 64 + "\n"
    good = hashed + "    # via device-binding (pyproject.toml)\n"
    assert parse_lock(good)["six"].via == {PROJECT}
    for bad in (
        "six==1.17.0\n",  # no hash
        "six>=1.17 \\\n    --hash=sha256:" + "a" * 64 + "\n",  # a range
        "six==1.* \\\n    --hash=sha256:" + "a" * 64 + "\n",  # a wildcard
        "six==1.17.0 \\\n    --hash=md5:" + "a" * 32 + "\n",  # not a sha256
        "--extra-index-url https://example.org/simple\n" + good,
        "-e .\n" + good,
    ):
        with pytest.raises(AssertionError):
            parse_lock(bad)


# --- what installs through them ------------------------------------------------------


def pip_commands(script: str) -> list[str]:
    """Every ``pip install`` and ``pip wheel`` of a shell text, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", script)
    commands = re.split(r"&&|;|\n", joined)
    return [c.strip() for c in commands if re.search(r"\bpip(\.exe)?\b.*\b(install|wheel)\b", c)]


def assert_installs_only_from_locks(where: str, commands: list[str]) -> None:
    assert commands, f"{where} installs nothing"
    for command in commands:
        if "--no-deps" in command:
            # Only the project itself: its dependencies come from a lock.
            assert "--require-hashes" not in command, command
            assert " -r " not in command, command
            continue
        assert "--require-hashes" in command, f"{where}: {command}"
        assert re.search(r"-r \S*requirements/[\w-]+\.txt\b", command), f"{where}: {command}"


def makefile_expanded() -> str:
    """The Makefile with its one-word variables ($(VENV), $(LOCKS), ...) substituted."""
    text = MAKEFILE.read_text()
    variables = dict(re.findall(r"^(\w+) :?= *(\S+) *$", text, flags=re.MULTILINE))
    for _ in range(3):  # variables defined from variables ($(BIN) is $(VENV)/bin)
        text = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m[1], m[0]), text)
    return text


def test_the_makefile_installs_through_the_locks_and_reinstalls_when_one_changes() -> None:
    makefile = makefile_expanded()
    recipes = "\n".join(line for line in makefile.splitlines() if line.startswith("\t"))
    assert_installs_only_from_locks("Makefile", pip_commands(recipes))
    rules = dict(re.findall(r"^(\S+): *(.*)$", makefile, flags=re.MULTILINE))
    # The venv everything (run, test, lint, CI) starts from, and the benchmarks' extra.
    assert {"requirements/build.txt", "requirements/test.txt"} <= set(
        rules[".venv/.installed"].split()
    )
    assert "requirements/bench.txt" in rules[".venv/.installed-bench"].split()
    assert "lock" in rules, "the documented re-lock command"


def test_the_dockerfile_installs_through_the_runtime_lock() -> None:
    runs = [args for keyword, args in dockerfile_instructions() if keyword == "RUN"]
    commands = pip_commands("\n".join(runs))
    assert_installs_only_from_locks("Dockerfile", commands)
    assert sum("requirements/runtime.txt" in command for command in commands) == 2
    assert not any(re.search(r"requirements/(test|bench)\.txt", command) for command in commands)
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not dockerignored("requirements/runtime.txt", patterns)
    assert not dockerignored("requirements/build.txt", patterns)


# --- the base image ------------------------------------------------------------------


def base_images(instructions: list[tuple[str, str]]) -> list[str]:
    """What each FROM line pulls, ARG defaults substituted; earlier stages left out."""
    arguments: dict[str, str] = {}
    stages: set[str] = set()
    images = []
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            arguments[name.strip()] = default.strip().strip("\"'")
        elif keyword == "FROM":
            words = [word for word in rest.split() if not word.startswith("--platform=")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: arguments.get(m[1], m[0]), words[0])
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
            if image not in stages:
                images.append(image)
    return images


def test_every_from_line_names_its_base_image_by_digest() -> None:
    images = base_images(dockerfile_instructions())
    assert len(images) >= 2
    for image in images:
        assert IMAGE_BY_DIGEST.fullmatch(image), f"not pinned by digest: {image}"
        assert image.startswith("python:3.11"), image


def test_the_dockerfile_frontend_is_pinned_by_digest_too() -> None:
    # BuildKit pulls the image a `# syntax=` directive names and runs it to read the file.
    first = DOCKERFILE.read_text().splitlines()[0]
    syntax = re.fullmatch(r"#\s*syntax\s*=\s*(\S+)", first)
    if syntax is not None:
        assert IMAGE_BY_DIGEST.fullmatch(syntax[1]), f"not pinned by digest: {syntax[1]}"


def test_the_digest_check_refuses_a_tag_alone() -> None:
    pinned = "python:3.11-slim@sha256:" + "0" * 64
    assert base_images([("ARG", f"IMAGE={pinned}"), ("FROM", "${IMAGE} AS build")]) == [pinned]
    # A later stage built on an earlier one pulls nothing.
    assert base_images([("FROM", f"{pinned} AS build"), ("FROM", "build")]) == [pinned]
    for unpinned in ("python:3.11-slim", "python:3.11-slim@sha256:abc"):
        (image,) = base_images([("ARG", f"IMAGE={unpinned}"), ("FROM", "$IMAGE")])
        assert not IMAGE_BY_DIGEST.fullmatch(image)
