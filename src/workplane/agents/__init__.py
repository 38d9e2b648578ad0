"""Programs that speak the cluster sync protocol (docs/sync-protocol.md) for a cluster.

``replay`` plays real GPU-cluster traces (``traces``) into a server through ``client``.
"""
