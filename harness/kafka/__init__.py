"""The local single-node Apache Kafka broker (KRaft) for development and tests."""
