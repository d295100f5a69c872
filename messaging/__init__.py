"""How every process reaches Kafka: the broker's address and its TLS and SASL settings."""

from messaging.connection import KafkaConnection, kafka_options

__all__ = ["KafkaConnection", "kafka_options"]
