"""The pure domain layer: every number cxstream publishes is computed here.

Nothing in this package imports Faust, Kafka or Prometheus, and nothing reads
the clock: every function that needs the time takes ``now_us`` (integer
microseconds since the Unix epoch), so tests drive time explicitly.
"""
