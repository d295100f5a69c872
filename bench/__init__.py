"""Benchmarks. ``python -m bench`` (``make bench``) runs every measurement in one run and
writes ``var/bench/summary.json``; each stage also runs alone, to measure one thing before and
after a change. What each measures, and how: docs/benchmarks.md.

- ``verify``: the verifier on one core against ``openssl speed`` (+ ``openssl``);
- ``drain``: one worker draining a backlog of verification commands, binding or device
  signatures (+ ``drain_watch``, ``backlogs``);
- ``e2e``: open-loop latency against offered load, full stack and inline peer (+ ``ladder``,
  ``loadgen`` the generator's process, ``inline_peer``);
- ``report``: the summary, tables and charts from the stages' results (+ ``summary``,
  ``plot``);
- ``audit``: what the audit trail costs per event;
- ``http``: a closed-loop smoke test against a running ``make run`` (not in ``make bench``).

Shared parts: ``seed`` (pending challenges with known OTPs, a stored customer base),
``device_seed`` (bound devices with a pending device challenge each), ``databases``,
``warmup`` (the broker's JIT), ``stats`` (schedule and percentiles), ``scrape`` (the
processes' own histograms), ``profiling`` (py-spy output), ``environment`` (cores and
versions). Processes, ports, topics and the stack come from ``harness``.
"""
