"""The bundled connectors: importing this package registers every one of them.

Touches: nothing itself (each connector module registers its listener or
destination with :mod:`eai.registry` on import).

Like Redpanda Connect's ``public/components/all``: one import per bundled
connector module, so ``eai.registry.load_builtin_connectors()`` loads them all.
A new connector adds its line here.
"""

import connectors.filedrop  # noqa: F401  - listener type "filedrop" (CDA documents dropped as files)
import connectors.http_in  # noqa: F401  - listener type "http" (CDA documents by HTTP POST)
import connectors.mllp  # noqa: F401  - listener and destination type "mllp"
import dicom_router  # noqa: F401  - listener, destination and content type "dicom" (e-m@ge imaging)
