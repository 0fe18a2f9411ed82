"""The one error hierarchy of cxstream::

    CxError                      anything cxstream raises on purpose
     ├── SettingsError           a bad setting; names it (flag and environment variable)
     ├── RulesError              a bad alert rules file; names the file and line
     ├── SchedulesError          a bad schedules/SLA file; names the file and line
     ├── ProduceError            `cxstream produce` could not deliver
     ├── StateFormatError        a stored state row this version cannot read
     └── BrokerError             Kafka unreachable, TLS untrusted or credentials rejected;
                                 names the setting to check (never a secret)

Bad *input events* are not errors: they are rejections (``Rejection``) and end
in the dead-letter topic with a reason.
"""

from __future__ import annotations


class CxError(Exception):
    """Base class of every error cxstream raises on purpose."""


class SettingsError(CxError):
    """A setting is missing, malformed or unknown. The message names it."""


class RulesError(CxError):
    """An alert rules file is unreadable or invalid. The message names the line."""


class SchedulesError(CxError):
    """A schedules/SLA file is unreadable or invalid. The message names the line."""


class ProduceError(CxError):
    """Events could not be delivered to Kafka."""


class StateFormatError(CxError):
    """A stored state row has an unknown format version or is corrupt. The
    worker stops rather than publish numbers from state it cannot read."""


class BrokerError(CxError):
    """The broker cannot be reached or refused us. The message names the setting."""
