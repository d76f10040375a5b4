"""The warnings a mapping leaves in its Bundle: the ``meta.tag`` codes of ``urn:eai:mapping-flag``.

Touches: nothing.

A mapping that keeps a doubtful value (a result without LOINC coding,
``no-loinc``; a reference range whose bounds and text disagree,
``range-text-differs``) tags the resource rather than refusing it. The pipeline
turns the tags of each Bundle it makes into ``warning`` events of the message's
journey (:func:`bundle_warnings`): resource types, codes and counts only, never
a value (they may be patient data).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["FLAG_SYSTEM", "bundle_warnings"]

FLAG_SYSTEM = "urn:eai:mapping-flag"
_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def bundle_warnings(bundle: dict[str, Any], mapping: str) -> list[str]:
    """One line per (flag, resource type) found in ``bundle``, with its count."""
    counts: dict[tuple[str, str], int] = {}
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {}) if isinstance(entry, dict) else {}
        tags = resource.get("meta", {}).get("tag", []) if isinstance(resource, dict) else []
        for tag in tags:
            code = tag.get("code") if isinstance(tag, dict) else None
            if tag.get("system") != FLAG_SYSTEM or not isinstance(code, str):
                continue
            if _CODE.fullmatch(code):
                key = (code, str(resource.get("resourceType", "")))
                counts[key] = counts.get(key, 0) + 1
    return [
        f"mapping {mapping}: {count} {kind} flagged {code} ({FLAG_SYSTEM})"
        for (code, kind), count in sorted(counts.items())
    ]
