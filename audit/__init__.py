"""The reference audit consumer: every result event stored once, in a hash chain."""
