"""What reconciling a cluster's topics plans, and the report of what it did: a topic as it
should be (:class:`TopicSpec`), what differs on the cluster (:class:`TopicPlan`), and the
lines an operator reads (:class:`Report`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiokafka.errors import for_code


@dataclass(frozen=True)
class TopicSpec:
    """A topic as it should be."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


@dataclass(frozen=True)
class BrokerError:
    """An error code (and message) a broker returned for one topic."""

    code: int
    message: str | None

    def __str__(self) -> str:
        name = for_code(self.code).__name__
        return f"{name}: {self.message}" if self.message else name


@dataclass(frozen=True)
class ConfigChange:
    name: str
    current: str | None  # the effective value; None when the broker reports none
    on_topic: bool  # whether the current value is set on the topic (else a broker default)
    wanted: str

    def __str__(self) -> str:
        source = "" if self.on_topic else " (broker default)"
        return f"{self.name} {self.current}{source} -> {self.wanted}"


@dataclass(frozen=True)
class TopicPlan:
    """One topic's difference between the cluster and its spec."""

    spec: TopicSpec
    partitions: int | None  # None: the topic does not exist
    replication_factor: int | None
    config_changes: tuple[ConfigChange, ...] = ()

    @property
    def missing(self) -> bool:
        return self.partitions is None

    @property
    def adds_partitions(self) -> bool:
        return self.partitions is not None and self.partitions < self.spec.partitions

    @property
    def unchanged(self) -> bool:
        return not (self.missing or self.adds_partitions or self.config_changes)

    def notes(self) -> list[str]:
        """What differs from the spec and is deliberately left as it is."""
        notes = []
        if self.partitions is not None and self.partitions > self.spec.partitions:
            notes.append(
                f"{self.partitions} partitions, more than the {self.spec.partitions} wanted: "
                "partitions are never removed"
            )
        if self.replication_factor is not None and (
            self.replication_factor != self.spec.replication_factor
        ):
            notes.append(
                f"replication factor {self.replication_factor}, "
                f"wanted {self.spec.replication_factor}: not changed here "
                "(that takes a partition reassignment)"
            )
        return notes


@dataclass
class Report:
    """What a run planned, and what the cluster refused (by topic)."""

    plans: list[TopicPlan]
    dry_run: bool
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def replace(self, other: Report) -> None:
        """Take ``other``'s plans and errors for the topics it covers (a second attempt)."""
        again = {plan.spec.name: plan for plan in other.plans}
        self.plans = [again.get(plan.spec.name, plan) for plan in self.plans]
        for name in again:
            self.errors.pop(name, None)
        self.errors.update(other.errors)

    def lines(self) -> list[str]:
        """One line per action, note or failure, then a summary."""
        created, changed = (
            ("would create", "would change") if self.dry_run else ("created", "changed")
        )
        lines: list[str] = []
        for plan in self.plans:
            name = plan.spec.name
            if name in self.errors:
                lines.extend(f"failed {name}: {error}" for error in self.errors[name])
                continue
            if plan.missing:
                configs = ", ".join(f"{k}={v}" for k, v in sorted(plan.spec.configs.items()))
                lines.append(
                    f"{created} {name}: "
                    f"{plan.spec.partitions} partitions, "
                    f"replication factor {plan.spec.replication_factor}, {configs}"
                )
            changes = [str(config) for config in plan.config_changes]
            if plan.adds_partitions:
                changes.append(
                    f"partitions {plan.partitions} -> {plan.spec.partitions} (keys move to "
                    "other partitions; restart the API replicas and the fraud consumer so "
                    "they read the new ones)"
                )
            lines.extend(f"{changed} {name}: {change}" for change in changes)
            if plan.unchanged:
                lines.append(f"unchanged {name}")
            lines.extend(f"note {name}: {note}" for note in plan.notes())
        lines.append(self._summary())
        return lines

    def _summary(self) -> str:
        done = [plan for plan in self.plans if plan.spec.name not in self.errors]
        missing = sum(plan.missing for plan in done)
        unchanged = sum(plan.unchanged for plan in done)
        altered = len(done) - missing - unchanged
        if self.dry_run:
            summary = (
                f"{missing} to create, {altered} to change, {unchanged} unchanged; "
                "dry run, nothing changed"
            )
        else:
            summary = f"{missing} created, {altered} changed, {unchanged} unchanged"
        if self.errors:
            summary += f"; {len(self.errors)} failed"
        return summary
