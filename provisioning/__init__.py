"""The product's Kafka topics: their specifications, the provisioning command
(``python -m provisioning``) that creates or corrects them on a cluster, and the creation of
missing ones a worker does at start-up on a development broker."""

from provisioning.development import ProvisioningError, provision_topics

__all__ = ["ProvisioningError", "provision_topics"]
