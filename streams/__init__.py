"""cxstream: real-time customer-experience metrics from Kafka to Prometheus.

Where things live:

* ``streams.domain``      pure logic: validation, ticket state, rolling windows,
                           alert rules. No Faust, Kafka or Prometheus imports.
* ``streams.pipeline``    the Faust app: topics, tables, agents, timers, web views.
* ``streams.exposition``  Prometheus collectors over table snapshots.
* ``streams.cli``         the ``cxstream`` command line.
"""

__version__ = "0.1.0"
