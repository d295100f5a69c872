"""The HTTP resources, one module each (SPEC §3)."""
