"""The bundled connectors: importing this package registers every one of them.

Touches: nothing itself (each connector module registers its listener or
destination with :mod:`eai.registry` on import).

Like Redpanda Connect's ``public/components/all``: one import per bundled
connector module, so ``eai.registry.load_builtin_connectors()`` loads them all.
A new connector adds its line here.
"""

import connectors.mllp  # noqa: F401  - listener and destination type "mllp"
