"""The message facts a plan hands to its destinations (CI-SIS flags, PRT recipients, the
qualified INS), sealed once per message, and only for destinations that read them.

Touches: nothing (pure).
"""

from __future__ import annotations

from eai import registry
from eai.config import Config
from eai.content import ParsedContent
from eai.messages import MessageFacts
from eai.store import Cipher
from identity.patient import PatientIdentity

__all__ = ["facts_readers", "qualified_ins", "sealed_facts"]


def facts_readers(config: Config) -> frozenset[str]:
    """The destinations of ``config`` whose connector reads the facts
    (:attr:`eai.registry.DestinationSpec.reads_facts`; an unknown type is taken to)."""
    specs = registry.destinations()
    return frozenset(
        d.name
        for d in config.destinations
        if (spec := specs.get(d.type)) is None or spec.reads_facts
    )


def sealed_facts(
    cipher: Cipher, content: ParsedContent, qualified: PatientIdentity | None
) -> bytes | None:
    """The message's facts for its destinations, sealed once for all its deliveries
    (None when there are none); the INS only when the identity is ``qualified``."""
    facts = MessageFacts(
        content.facts,
        content.recipients,
        qualified.ins if qualified is not None else "",
        qualified.ins_oid if qualified is not None else "",
    )
    return None if facts.is_empty() else cipher.seal(facts.to_json())


def qualified_ins(cipher: Cipher, ident: PatientIdentity | None) -> bytes | None:
    """The qualified INS, sealed as facts, for the held deliveries the message releases
    (held because their own message's identity was not qualified: they had no INS)."""
    if ident is None or not ident.ins:
        return None
    return cipher.seal(MessageFacts(ins=ident.ins, ins_oid=ident.ins_oid).to_json())
