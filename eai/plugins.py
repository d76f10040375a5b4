"""The plugins bundled with eai: the one module of the core that names them.

Touches: nothing itself (importing a plugin module registers its listeners,
destinations, content types and jobs with :mod:`eai.registry`).

Like Redpanda Connect's ``public/components/all/package.go``: a list of module
names, imported by name with :mod:`importlib`, so the core has no static import
of a plugin package (``connectors``, ``dicom_router``) and the layers contract
can forbid one. A new bundled plugin module adds its line to :data:`BUILTIN`, and the
``type:`` values it registers to :data:`TYPES`.

Loading every plugin costs most of a second (pydicom, pynetdicom, httpx, signxml); a
command that validates ``routes.yaml`` needs only the plugins of the types the file
names. :func:`only` scopes :func:`load_builtin` to some modules (a context variable, reset
when the block ends); :func:`modules_for` says which modules those types need.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = [
    "BUILTIN",
    "COMMANDS",
    "LISTINGS",
    "TYPES",
    "load_builtin",
    "loaded",
    "modules_for",
    "only",
]

BUILTIN: tuple[str, ...] = (
    "connectors.filedrop",  # listener "filedrop": CDA documents dropped as files
    "connectors.http_in",  # listener "http": CDA documents by HTTP POST
    "connectors.mllp",  # listener and destination "mllp": HL7 v2 over MLLP
    "connectors.dmp.destination",  # destination "dmp": the DMP (IHE XDS.b ITI-41)
    "connectors.mssante.destination",  # destination "mssante": MSSanté mail (SMTP, IHE XDM)
    "connectors.mssante.receipts",  # listener "mssante_receipts": DSN/MDN over IMAP -> ZAM
    "connectors.fhir",  # destination "fhir": FHIR R4 transactions (SCAD, any FHIR server)
    "dicom_router.plugin",  # listener, destination and content type "dicom" (e-m@ge imaging)
)
"""Module names of the bundled plugins, imported in this order."""

TYPES: dict[tuple[str, str], str] = {
    ("listener", "filedrop"): "connectors.filedrop",
    ("listener", "http"): "connectors.http_in",
    ("listener", "mllp"): "connectors.mllp",
    ("destination", "mllp"): "connectors.mllp",
    ("destination", "dmp"): "connectors.dmp.registration",
    ("destination", "mssante"): "connectors.mssante.destination",
    ("listener", "mssante_receipts"): "connectors.mssante.receipts",
    ("destination", "fhir"): "connectors.fhir",
    ("listener", "dicom"): "dicom_router.registration",
    ("destination", "dicom"): "dicom_router.registration",
}
"""(``"listener"`` or ``"destination"``, ``type:`` value) -> the module that registers it:
what a ``routes.yaml`` naming that type needs loaded to be validated (a test holds it equal
to what each module registers). A module of :data:`BUILTIN`, or a light one it imports
that registers the types without the plugin's heavy libraries (``dicom_router.registration``:
no pydicom, no pynetdicom)."""

COMMANDS: tuple[tuple[str, str, str], ...] = (
    (
        "dicom",
        "dicom_router.cli:dicom",
        "DICOM: C-ECHO and C-STORE to a peer, the forwarding queue per study.",
    ),
    (
        "dmp",
        "connectors.dmp.cli:dmp",
        "DMP: the XDS metadata a message would publish (nothing sent).",
    ),
    (
        "send",
        "connectors.mllp.cli:send",
        "MLLP test client: send each message of FILES to HOST:PORT, print each MSA.",
    ),
    (
        "identity standin",
        "standins.identity.cli:standin",
        "Run the identity-server stand-in (PDQm + PIXm, for tests and the demo; NOT a real "
        "identity server).",
    ),
    (
        "sink",
        "standins.sinks.cli:sink",
        "Demo sinks that print what they receive: MLLP (answers AA) and SMTP.",
    ),
)
"""The bundled plugins' ``eai`` subcommands: name (its path under ``eai``: ``"identity
standin"`` is ``eai identity standin``), ``module:attribute`` of the click command (imported
only when it runs) and its ``--help`` line (:class:`eai.registry.CommandSpec`). The demo
package :mod:`standins` adds its command here too, so the core never imports it."""

LISTINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dicom", ("study_instance_uid", "series_instance_uid", "sop_instance_uid")),
)
"""The bundled plugins' listing fields (:class:`eai.registry.ListingSpec`): content type and
its JSON keys in ``eai messages list|show``. Declared here so that listing a journal holds
every key (null for other messages) without importing a plugin; reading a payload of that
content type loads the plugins (a test holds these equal to what the plugins register)."""


_scope: ContextVar[frozenset[str] | None] = ContextVar("eai_plugins_scope", default=None)


def modules_for(
    listener_types: Iterable[str], destination_types: Iterable[str]
) -> list[str] | None:
    """The modules registering these types (values of :data:`TYPES`, in its order);
    None when one of them is not in :data:`TYPES` (every plugin is then needed, if only to
    say which types exist)."""
    wanted = [("listener", t) for t in listener_types]
    wanted += [("destination", t) for t in destination_types]
    if any(kind not in TYPES for kind in wanted):
        return None
    needed = {TYPES[kind] for kind in wanted}
    return [name for name in dict.fromkeys(TYPES.values()) if name in needed]


@contextmanager
def only(modules: Iterable[str]) -> Iterator[None]:
    """Within the block, :func:`load_builtin` imports only ``modules`` (the registry then
    answers with what they register, and any plugin imported before)."""
    token = _scope.set(frozenset(modules))
    try:
        yield
    finally:
        _scope.reset(token)


def loaded() -> bool:
    """True once every module of :data:`BUILTIN` has been imported."""
    return all(name in sys.modules for name in BUILTIN)


def load_builtin() -> None:
    """Imports every module of :data:`BUILTIN` (once; later calls are dictionary lookups).

    Within :func:`only`, just the modules it names (a module of :data:`BUILTIN` or of
    :data:`TYPES`). An import error of a plugin
    propagates: a broken bundled plugin is a broken install."""
    scope = _scope.get()
    if scope is None and loaded():
        return  # asked once per planned message (the registries): 8 lookups, not 8 imports
    for name in BUILTIN if scope is None else sorted(scope):
        importlib.import_module(name)
