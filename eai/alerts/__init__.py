"""Technical alerts mailed to the establishments and the regional team, with state.

Touches: DB, files, network (SMTP): see :mod:`eai.alerts._job`.

The rules of ``alerts:`` in routes.yaml (:mod:`eai.config`) are measured every few
seconds (``_probes``, ``_certs``, ``_signals``); each rule and scope is a state machine
kept in the journal (``_machine``; ok -> pending -> firing -> resolved), so a restart
neither loses nor repeats an alert and several nodes send each mail once; mails owed
are grouped per recipient (``_mail``). ``eai alerts`` lists them and adds silences.
See docs/supervision.md.
"""

from eai.alerts._job import Alerter, active_rules
from eai.alerts._machine import Observation, Policy, decide, duration_fr
from eai.alerts._mail import build_alert_mail
from eai.alerts._rules import RULES, scope_name
from eai.alerts._signals import Signals, TlsRejectionWatch, listener_ports

__all__ = [
    "RULES",
    "Alerter",
    "Observation",
    "Policy",
    "Signals",
    "TlsRejectionWatch",
    "active_rules",
    "build_alert_mail",
    "decide",
    "duration_fr",
    "listener_ports",
    "scope_name",
]
