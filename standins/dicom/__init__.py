"""Real DICOM peers for demos, tests and benchmarks: dcmtk's tools and Orthanc.

Touches: subprocesses, network, files (each peer's directory and log).

Debian's packages ``dcmtk`` (``storescp``, ``storescu``, ``echoscu``) and
``orthanc`` (``Orthanc``); ``scripts/install-test-peers.sh`` installs them. Tests
never skip when they are missing: :class:`DicomPeerUnavailable` says what to
install.

* :class:`StoreScp` -- dcmtk ``storescp`` receiving into a directory;
* :class:`Orthanc` -- an Orthanc server with its own temporary configuration,
  storage and index (the system service of the Debian package is never used);
* :func:`storescu` / :func:`echoscu` -- one-shot SCUs returning
  ``(returncode, output)``;
* :func:`make_ct_series` -- copies of pydicom's ``CT_small.dcm`` with new UIDs.

Every server listens on a port the OS reported free (:func:`standins.net.free_port`),
retried with a new one when it is taken before the server binds it, and is
reached on 127.0.0.1. (Neither ``storescp`` 3.6.7 nor Orthanc 1.10 has a bind
address option: both bind 0.0.0.0. Orthanc's HTTP API refuses non-local
clients with ``RemoteAccessAllowed: false``.)

Nagle's algorithm: dcmtk only sets ``TCP_NODELAY`` on its sockets when the
environment variable ``TCP_NODELAY=1`` is set (checked with strace: without it,
no ``setsockopt(TCP_NODELAY)``). Every dcmtk tool here, and Orthanc (which uses
dcmtk's network code for DICOM), runs with :func:`dcmtk_env`. Orthanc's HTTP
server gets ``"TcpNoDelay": true`` in its configuration. Without this, every
peer falls to ~10-20 images/s on loopback.

Servers are started in their own session, stopped with SIGTERM (SIGKILL after a
grace period) on :meth:`stop` / ``__exit__``, and log to a file whose tail is
put in every error message.

This package does not depend on pytest.
"""

from standins.dicom._common import (
    HOST,
    TIMEOUT_RC,
    TRAILING_PADDING,
    DicomPeerStartError,
    DicomPeerUnavailable,
    OrthancHttpError,
    dcmtk_env,
    is_listening,
    require_binary,
)
from standins.dicom._orthanc import Orthanc
from standins.dicom._storescp import StoreScp
from standins.dicom._tools import ct_small_path, dataset_bytes, echoscu, make_ct_series, storescu

__all__ = [
    "HOST",
    "TIMEOUT_RC",
    "TRAILING_PADDING",
    "DicomPeerStartError",
    "DicomPeerUnavailable",
    "Orthanc",
    "OrthancHttpError",
    "StoreScp",
    "ct_small_path",
    "dataset_bytes",
    "dcmtk_env",
    "echoscu",
    "is_listening",
    "make_ct_series",
    "require_binary",
    "storescu",
]
