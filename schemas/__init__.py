"""The wire contract: HTTP bodies, Kafka commands, replies and events, topic names, reasons.

Pydantic models and constants only; no I/O. Both ``api`` and ``worker`` import this
package; neither imports the other.
"""
