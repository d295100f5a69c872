"""Checks the stored chain against its published checkpoints: ``verify --checkpoints``.

Each checkpoint must be signed by a trusted key, and the stored chain must hold, at its
position, a record with exactly the hash it signed, reached by a chain that is internally
consistent from the first record (:func:`audit.verification.link_problem`). The database
alone cannot produce that: whoever rewrites a record must recompute every hash after it,
and then the records the checkpoints name no longer have the hashes they signed. Records
removed from the end leave checkpoints pointing past the end.

The report names the first checkpoint, by position in the chain, that no longer matches:
the chain was changed at or before that record, and after the checkpoint before it.
Streams the records once, as :mod:`audit.verification` does.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from audit import chain
from audit.checkpoint_log import PublishedCheckpoint
from audit.signing import CheckpointSignatureError, CheckpointVerifier
from audit.tables import AuditRecord
from audit.verification import link_problem


@dataclass(frozen=True)
class Finding:
    """A published message that does not vouch for the stored chain, and why."""

    published: PublishedCheckpoint
    problem: str

    def describe(self) -> str:
        checkpoint = self.published.checkpoint
        if checkpoint is None:
            return f"message at {self.published.where}: {self.problem}"
        signed_at = checkpoint.signed_at.isoformat()
        return (
            f"checkpoint of record {checkpoint.seq} signed at {signed_at} "
            f"({self.published.where}): {self.problem}"
        )


@dataclass
class AnchorReport:
    chain: str
    checkpoints: int = 0  # correctly signed checkpoints of this chain
    records: int = 0  # records walked before the end of the chain or its first broken link
    anchored: int = 0  # the highest record a matching checkpoint vouches for
    mismatched: list[Finding] = field(default_factory=list)  # first by position
    forged: list[Finding] = field(default_factory=list)  # by position on the topic

    @property
    def intact(self) -> bool:
        return not self.mismatched and not self.forged and not self.unanchored

    @property
    def unanchored(self) -> bool:
        """Records are stored but no checkpoint vouches for any of them."""
        return self.checkpoints == 0 and self.records > 0

    def lines(self) -> list[str]:
        lines = []
        if self.mismatched:
            lines.append(
                f"first checkpoint that no longer matches: {self.mismatched[0].describe()}"
            )
            lines.extend(f"also no longer matches: {f.describe()}" for f in self.mismatched[1:])
        lines.extend(f"forged or unreadable: {finding.describe()}" for finding in self.forged)
        if self.unanchored:
            lines.append(
                f"no checkpoint of chain {self.chain} was published: its {self.records} "
                "records are anchored nowhere"
            )
        if self.intact:
            lines.append(
                f"checkpoints match: {self.checkpoints} checkpoints of chain {self.chain} "
                f"vouch for records 1..{self.anchored}"
                + (
                    f"; records {self.anchored + 1}..{self.records} are not checkpointed yet"
                    if self.records > self.anchored
                    else ""
                )
            )
        return lines


async def verify_against_checkpoints(
    engine: AsyncEngine,
    published: Sequence[PublishedCheckpoint],
    verifier: CheckpointVerifier,
    *,
    chain_name: str,
) -> AnchorReport:
    report = AnchorReport(chain_name)
    by_seq: dict[int, list[PublishedCheckpoint]] = defaultdict(list)
    for message in published:
        problem = _signature_problem(message, verifier, chain_name)
        if problem is not None:
            report.forged.append(Finding(message, problem))
            continue
        assert message.checkpoint is not None
        by_seq[message.checkpoint.seq].append(message)
        report.checkpoints += 1
    pending = sorted(by_seq)  # checkpointed positions not reached yet, in chain order
    seq, previous = 0, chain.GENESIS_HASH
    broken: str | None = None
    async with engine.connect() as connection:
        records = await connection.stream(
            select(AuditRecord.__table__)
            .order_by(AuditRecord.seq)
            .execution_options(yield_per=1000)
        )
        async for record in records:
            problem = link_problem(record, seq + 1, previous)
            if problem is not None:
                broken = f"the chain is broken at record {record.seq} ({problem})"
                break
            seq, previous = record.seq, record.record_hash
            while pending and pending[0] <= seq:
                position = pending.pop(0)
                for message in by_seq[position]:
                    _compare(report, message, seq, record.record_hash, position)
        report.records = seq
    for position in pending:
        for message in by_seq[position]:
            reason = broken or (
                f"the stored chain ends at record {seq}: record {position} and any after "
                f"record {seq} were removed"
            )
            report.mismatched.append(Finding(message, reason))
    report.mismatched.sort(key=_position)
    return report


def _compare(
    report: AnchorReport, message: PublishedCheckpoint, seq: int, stored: str, position: int
) -> None:
    checkpoint = message.checkpoint
    assert checkpoint is not None
    if position != seq:
        report.mismatched.append(Finding(message, f"record {position} is missing"))
    elif checkpoint.record_hash != stored:
        report.mismatched.append(
            Finding(
                message,
                f"the stored record {seq} has hash {stored[:16]}…, the checkpoint signed "
                f"{checkpoint.record_hash[:16]}…: the chain was rewritten at or before it",
            )
        )
    else:
        report.anchored = max(report.anchored, seq)


def _position(finding: Finding) -> tuple[int, int, int]:
    checkpoint = finding.published.checkpoint
    assert checkpoint is not None
    return (checkpoint.seq, finding.published.partition, finding.published.offset)


def _signature_problem(
    message: PublishedCheckpoint, verifier: CheckpointVerifier, chain_name: str
) -> str | None:
    checkpoint = message.checkpoint
    if checkpoint is None:
        return message.unreadable or "not a checkpoint"
    if checkpoint.chain != chain_name:
        return f"published under chain {chain_name}'s key but names chain {checkpoint.chain}"
    try:
        verifier.verify(checkpoint)
    except CheckpointSignatureError as error:
        return str(error)
    return None
