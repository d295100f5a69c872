"""The audit trail's revisions, oldest first by their ``down_revision``."""
