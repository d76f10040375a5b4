"""Normalisation of identity traits for comparison (never for transmission).

Touches: nothing.

Compared values ignore case, diacritics, hyphens, apostrophes and repeated
spaces (RNIV comparison rules); what is transmitted keeps the traits as sent.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalise_trait", "same_trait"]

_SEPARATORS = re.compile(r"[\s\-'’‘`´]+")


def normalise_trait(value: str) -> str:
    """``"Dupont-Lajoie d’Éste "`` -> ``"DUPONT LAJOIE D ESTE"``."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SEPARATORS.sub(" ", stripped).strip().upper()


def same_trait(a: str, b: str) -> bool:
    return normalise_trait(a) == normalise_trait(b)
