"""Which replica owns which partitions of the replies topic: a sticky group assignment.

The API replicas form one consumer group on the replies topic, so Kafka's group protocol
decides who reads what, and a replica started or stopped needs no configuration. Each
replica names one partition it owns in every command it sends; a reply can only reach it
while it still owns that partition. So partitions must stay where they are when the group
changes: this assignor keeps every member's partitions (up to its fair share) and hands out
only the rest, a leaving member's or those beyond a fair share, fewest-first. Each member
tells the leader what it owns in its join metadata (``user_data``).

A replica beyond the partition count gets none and is not ready: keep the replies topic's
partitions at least as many as the API replicas.
"""

import json
import math
from collections.abc import Iterable, Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

_VERSION = 0


def sticky_assignment(
    partitions: Iterable[int], owned: Mapping[str, Iterable[int]]
) -> dict[str, list[int]]:
    """Partitions per member: each keeps what it owns (lowest first, its fair share at most;
    a partition claimed twice goes to the first member by id), the rest go to the members
    holding fewest. Every member gets one when there are enough partitions."""
    available = set(partitions)
    members = sorted(owned)
    if not members:
        return {}
    fair = math.ceil(len(available) / len(members))
    assignment: dict[str, list[int]] = {}
    for member in members:
        kept = sorted(p for p in set(owned[member]) if p in available)[:fair]
        available.difference_update(kept)
        assignment[member] = kept
    for partition in sorted(available):
        fewest = min(members, key=lambda member: (len(assignment[member]), member))
        assignment[fewest].append(partition)
    return {member: sorted(held) for member, held in assignment.items()}


class StickyReplyAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """The assignor of one replica's consumer: it reports what this replica owns."""

    name = "device-binding-sticky-replies"
    version = _VERSION

    def __init__(self) -> None:
        self.owned: list[int] = []

    # aiokafka calls these on the object it is given; an instance carries this replica's
    # ownership, where the abstract class expects class methods.

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        user_data = json.dumps({"owned": self.owned}).encode()
        return ConsumerProtocolMemberMetadata(_VERSION, sorted(topics), user_data)

    def assign(
        self, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = sorted({topic for metadata in members.values() for topic in metadata.subscription})
        result: dict[str, list[ConsumerProtocolMemberAssignment.Assignment]] = {
            member: [] for member in members
        }
        for topic in topics:
            subscribers = {m: d for m, d in members.items() if topic in d.subscription}
            partitions = cluster.partitions_for_topic(topic) or set()
            per_member = sticky_assignment(
                partitions, {member: _owned(d) for member, d in subscribers.items()}
            )
            for member, held in per_member.items():
                result[member].append(ConsumerProtocolMemberAssignment.Assignment(topic, held))
        return {
            member: ConsumerProtocolMemberAssignment(_VERSION, assignment, b"")
            for member, assignment in result.items()
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        self.owned = sorted(tp.partition for tp in assignment.partitions())


def _owned(metadata: ConsumerProtocolMemberMetadata) -> list[int]:
    try:
        claimed = json.loads(metadata.user_data or b"{}").get("owned", [])
    except (ValueError, AttributeError):
        return []  # not ours to judge: a member without a readable claim owns nothing yet
    return [p for p in claimed if isinstance(p, int)]
