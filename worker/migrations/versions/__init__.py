"""The service store's revisions, oldest first by their ``down_revision``."""
