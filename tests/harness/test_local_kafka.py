"""The local broker launcher's pure parts (the broker itself is exercised by every
``kafka``-marked test)."""

import base64

from harness.kafka.local_kafka import new_cluster_id


def test_cluster_ids_are_16_bytes_and_never_look_like_an_option() -> None:
    ids = [new_cluster_id() for _ in range(5000)]  # about 78 would start with '-' unguarded
    assert not any(cluster_id.startswith("-") for cluster_id in ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
