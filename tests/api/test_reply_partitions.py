"""The sticky assignment of reply partitions to API replicas (pure: no broker)."""

from __future__ import annotations

from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from api.reply_partitions import StickyReplyAssignor, sticky_assignment


def test_a_lone_replica_owns_every_partition() -> None:
    assert sticky_assignment(range(6), {"a": []}) == {"a": [0, 1, 2, 3, 4, 5]}


def test_a_replica_joining_takes_only_what_is_beyond_the_others_fair_share() -> None:
    before = {"a": [0, 1, 2, 3, 4, 5]}
    after = sticky_assignment(range(6), {**before, "b": []})
    # "a" keeps its lowest partitions, which include the one its commands name (0).
    assert after == {"a": [0, 1, 2], "b": [3, 4, 5]}


def test_a_replica_leaving_hands_its_partitions_to_those_holding_fewest() -> None:
    after = sticky_assignment(range(6), {"a": [0, 1], "c": [4, 5]})
    assert {0, 1} <= set(after["a"])
    assert {4, 5} <= set(after["c"])
    assert sorted(after["a"] + after["c"]) == [0, 1, 2, 3, 4, 5]
    assert {len(held) for held in after.values()} == {3}


def test_existing_owners_keep_their_partitions_when_a_third_joins() -> None:
    after = sticky_assignment(range(6), {"a": [0, 1, 2], "b": [3, 4, 5], "c": []})
    assert after["a"] == [0, 1]
    assert after["b"] == [3, 4]
    assert after["c"] == [2, 5]


def test_a_partition_claimed_twice_goes_to_one_replica_only() -> None:
    after = sticky_assignment(range(2), {"a": [0], "b": [0]})
    assert after == {"a": [0], "b": [1]}


def test_partitions_that_no_longer_exist_are_not_kept() -> None:
    assert sticky_assignment(range(2), {"a": [0, 7]}) == {"a": [0, 1]}


def test_more_replicas_than_partitions_leaves_one_without() -> None:
    after = sticky_assignment(range(2), {"a": [], "b": [], "c": []})
    assert sorted(len(held) for held in after.values()) == [0, 1, 1]


def test_the_assignor_reports_what_its_replica_owns() -> None:
    assignor = StickyReplyAssignor()
    assignor.owned = [2, 3]
    metadata = assignor.metadata(["replies"])
    decoded = ConsumerProtocolMemberMetadata.decode(metadata.encode())
    assert decoded.subscription == ["replies"]
    assert b'"owned": [2, 3]' in decoded.user_data
