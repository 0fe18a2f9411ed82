"""Alert rules: the rule model, the built-in defaults and the YAML rules file.

Modules: ``model`` (``Rule``, ``DetractorConfig``: every field check, once),
``metrics`` (what a rule reads from a window snapshot), ``templates``,
``defaults`` (the contract's rules, ``RuleSet``), ``loader`` (the YAML file,
errors at ``FILE:LINE``). The public names are importable from here.

A threshold rule watches one metric of one rolling window for every dims key
(``channel``/``team`` by default) and fires when the metric compares with a
threshold for long enough, given enough samples. The detractor rule is
different: it fires once per NPS response of 0-6 that carries a comment.

Rules file (``--rules FILE`` / ``CX_RULES``)
============================================

.. code-block:: yaml

    # Optional. false drops the built-in rules (CxNpsLow, CxCsatLow,
    # CxFirstResponseSlow, CxFcrLow); otherwise the rules below are added to
    # them, and a rule with a built-in's alertname replaces that built-in.
    defaults: true

    rules:
      - alertname: CxNpsLowChat        # required; [A-Za-z_][A-Za-z0-9_]*, unique
        metric: nps_score              # required; see METRICS below
        window: 24h                    # required; one of the worker's windows
        op: "<"                        # required; <, <=, > or >=
        threshold: 10                  # required; a finite number
        resolve_threshold: 15          # optional hysteresis; default = threshold
        min_samples: 30                # optional; default 1
        for: 10m                       # optional; 30s, 10m, 2h, 1d or seconds; default 0
        severity: warning              # optional; default warning
        filters: {channel: chat}       # optional; only dims keys with these labels
        summary: "NPS {value:.1f} on {channel}"   # optional templates, see below
        description: "..."
        confidence: false              # optional; true: judge a bound, not the value
      - alertname: CxFcrLow            # a built-in switched off
        enabled: false

    # Optional: the per-response detractor alert (CxDetractorResponse).
    detractor:
      enabled: true                    # default true
      severity: info                   # default info
      resolve_after: 24h               # default 24h
      max_open: 500                    # open detractor alerts kept per dims key
      summary: "..."                   # fields: see DETRACTOR_FIELDS
      description: "..."

``metric`` is one of ``nps_score``, ``csat_ratio``, ``ces_score``,
``fcr_ratio``, ``first_response_p50``/``_p90``/``_p99`` and
``resolution_p50``/``_p90``/``_p99`` (seconds). The sample size compared with
``min_samples`` is the window's responses for NPS, CSAT and CES, its
first-resolved tickets for FCR and the summary's count for durations.

Hysteresis: a firing alert resolves only when the value no longer satisfies
``op`` against ``resolve_threshold`` (for ``<`` that is ``value >=
resolve_threshold``), so a value wobbling around the threshold does not flap.
``resolve_threshold`` must therefore lie on the healthy side of (or equal to)
``threshold``.

Confidence (contract 8.1): with ``confidence: true`` (``nps_score``,
``csat_ratio`` or ``ces_score`` only) a ``<``/``<=`` rule compares the
**upper** bound of the window's confidence interval with the threshold, a
``>``/``>=`` rule the **lower** bound, both to fire and to resolve; the point
estimate alone never fires it, and a window without a bound (CES with fewer
than two responses) neither fires nor keeps it firing. The alert's
annotations carry ``lower_bound``, ``upper_bound`` and ``confidence`` (the
level), and templates can use ``{lower}`` and ``{upper}``.

Templates are Python ``str.format`` strings. Threshold rules may use
``{alertname} {metric} {op} {value} {threshold} {resolve_threshold} {window}
{sample_size} {min_samples} {severity} {dims} {lower} {upper}`` (``dims`` reads ``channel=chat,
team=billing``) and every dimension label (``{channel}``, ``{team}``). A
format spec on ``value`` is safe even when there is no value (it reads
``n/a``). Templates are checked when the file is loaded.

A rule that replaces a built-in is complete in itself (it inherits nothing
from the built-in). An enabled-false entry takes only ``alertname`` and
``enabled``. A built-in whose window the worker does not have (``--windows``)
is left out and named in ``RuleSet.skipped``; a file rule naming an unknown
window is an error. Filters name dimension labels; a filter on a label the
worker does not have never matches. How rules fire and resolve (pending,
``for``, minimum samples, draining windows) is described in
``streams.domain.alerting``.
Every error (unknown key, unknown metric or window, bad op, non-numeric
threshold, duplicate alertname, ...) raises ``RulesError`` naming the file,
the line and the key.
"""

from streams.domain.rules.defaults import (
    DEFAULT_DETRACTOR,
    DEFAULT_RULES,
    RuleSet,
    default_ruleset,
)
from streams.domain.rules.loader import load_rules, parse_rules
from streams.domain.rules.metrics import (
    CONFIDENCE_METRICS,
    METRICS,
    OPS,
    metric_sample_size,
    metric_value,
)
from streams.domain.rules.model import (
    DETRACTOR_ALERTNAME,
    DETRACTOR_FIELDS,
    RESERVED_LABELS,
    RULE_FIELDS,
    Bounds,
    DetractorConfig,
    Rule,
)
from streams.domain.rules.templates import render_template
from streams.errors import RulesError

__all__ = [
    "CONFIDENCE_METRICS",
    "DEFAULT_DETRACTOR",
    "DEFAULT_RULES",
    "DETRACTOR_ALERTNAME",
    "DETRACTOR_FIELDS",
    "METRICS",
    "OPS",
    "RESERVED_LABELS",
    "RULE_FIELDS",
    "Bounds",
    "DetractorConfig",
    "Rule",
    "RuleSet",
    "RulesError",
    "default_ruleset",
    "load_rules",
    "metric_sample_size",
    "metric_value",
    "parse_rules",
    "render_template",
]
