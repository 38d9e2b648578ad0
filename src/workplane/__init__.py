"""workplane: a control plane for GPU workloads, wire-compatible with the Run:ai Workloads API."""

__version__ = "0.1.0"
