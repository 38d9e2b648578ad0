"""Workload metrics: the sampling rule (``sampling``), the back-end seam (``backend``), the embedded
chunk store (``store``, ``codec``), the idle-GPU rule (``idle``) and answering a request (``query``).
See docs/decisions/0008-workload-metrics.md."""
