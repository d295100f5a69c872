"""Benchmarks. ``python -m bench`` (``make bench``) runs issue 6's measurements and
writes ``var/bench/summary.json``; each stage also runs alone, to measure one thing before
and after a change:

- ``verify``: the verifier on one core against ``openssl speed`` (+ ``openssl``);
- ``drain``: one worker draining a backlog of verification commands;
- ``e2e``: open-loop latency against offered load, full stack and inline peer
  (+ ``loadgen``, the generator's process; ``inline_peer``; ``stack``, starting them);
- ``report``: the summary, table and chart from the stages' results (+ ``plot``);
- ``audit``: what the audit trail costs per event;
- ``http``: a closed-loop smoke test against a running ``make run`` (not in ``make bench``).

Shared parts: ``seed`` (pending challenges with known OTPs), ``stats`` (schedule and
percentiles), ``processes`` (children that never outlive the run), ``topics`` (private
Kafka topics and offsets), ``scrape`` (the processes' own histograms), ``profiling``
(py-spy output), ``environment`` (cores and versions).
"""
