"""The Kubernetes agent: lists and watches a cluster and reports its workloads through the sync protocol.

``kinds`` says what is watched and discovers which of it the cluster serves; ``cluster`` keeps the
objects seen and groups pods under their workload (the top owner); ``status`` works out a workload's
phase; ``workloads`` turns a workload into a sync item; ``agent`` runs the lists, watches and batches.
"""
