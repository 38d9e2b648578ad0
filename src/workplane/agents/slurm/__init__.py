"""``workplane agent slurm``: a Slurm cluster's jobs as workloads, through the sync protocol.

``jobs`` reads Slurm's text output into jobs and jobs into sync items (the phase table, resources,
types by shape); ``commands`` runs Slurm's clients and streams their output line by line; ``agent``
polls, keeps what it has sent, and sends changes, full resyncs and CPU/memory samples
(docs/decisions/0013-slurm-agent.md).
"""
