"""Prometheus exposition: process counters and collectors over table snapshots.

Registries are always injected; nothing here touches the global registry.
"""
