"""The worker's decisions, each a pure function of (stored state, command, now) that returns
a decision value: what to answer, what to announce, what to store. Storage reads before a
decision and writes after it; nothing here does I/O. One module per family of commands."""
