"""The bundled connectors (MLLP, HTTP intake, file drop): one module per listener or destination.

Touches: nothing (importing the package registers nothing; :mod:`eai.plugins`
lists the connector modules and imports each by name, and each registers its
listener or destination with :mod:`eai.registry` on import).

Connectors use only the public API of :mod:`eai` (``eai.net``, ``eai.registry``,
``eai.config``, ``eai.messages``, ``eai.errors``, ...); they never import
``dicom_router``, nor ``dicom_router`` them.
"""
