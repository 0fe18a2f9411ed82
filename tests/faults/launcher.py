"""``cxstream worker`` with a test-only fault: events whose event_id starts
with $FAULTS_BOOM_PREFIX raise inside the pipeline, as a bug would.

cxstream has no fault-injection hook of its own, so this wraps the
validator's ``decode`` before the pipeline imports it: the record decodes,
then processing raises. The contract says such a record is dead-lettered
with reason ``processing_error`` and processing continues.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import streams.domain.validation as validation


def _install(prefix: str) -> None:
    real = validation.decode

    def decode(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if str(getattr(result, "event_id", "")).startswith(prefix):
            raise RuntimeError(f"injected processing error ({prefix}*)")
        return result

    validation.decode = decode


if __name__ == "__main__":
    prefix = os.environ.get("FAULTS_BOOM_PREFIX")
    if prefix:
        _install(prefix)
    from streams.cli import main  # imported after the patch: its modules bind the wrapper

    sys.exit(main(sys.argv[1:]))
