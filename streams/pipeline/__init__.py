"""The Faust layer: one App built from Settings, its topics, tables and agents.

Event path (each module one stage)::

    cx.tickets / cx.surveys --ingest.py--> cxstream-route (by ticket / event id)
        --tickets_stage.py--> cxstream-observations (by dims key)
        --aggregate_stage.py--> windows table --> /metrics (exposition) and cx.alerts
"""
