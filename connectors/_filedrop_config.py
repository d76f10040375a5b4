"""The file-drop listener's configuration model (listener type ``filedrop``).

Touches: nothing (validation; the user database when ``owner`` names a user).
"""

from __future__ import annotations

import pwd
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from connectors._cda_intake import MIB, CdaIntakeConfig
from eai.config import Duration
from eai.errors import ConfigError, ConfigIssue

__all__ = ["FileDropListenerConfig"]


class FileDropListenerConfig(CdaIntakeConfig):
    """A watched directory where CDA R2 documents are dropped as files."""

    type: Literal["filedrop"] = Field(
        default="filedrop", description="listener type: CDA documents dropped as files"
    )
    path: Path = Field(
        description="the watched directory (must exist); processed/ and failed/ are created in it",
        examples=["/var/spool/eai/cda-in"],
    )
    pattern: str = Field(
        default="*.xml",
        min_length=1,
        description="file names taken (shell pattern, case-sensitive); names starting with . "
        "or ending in .tmp or .part (write under such a name, then rename) are always ignored",
        examples=["*.xml", "CR-*.xml"],
    )
    interval: Duration = Field(
        default=1.0,
        gt=0,
        description="time between two listings of the directory",
        examples=["1s", "500ms"],
    )
    settle: Duration = Field(
        default=1.0,
        description="how long a file's inode, size, modification and change times must stay "
        "unchanged (and, on Linux, the file stay closed by its writers) before it is taken "
        "(0: take it when first seen closed, for producers that rename complete files)",
        examples=["1s", 0],
    )
    max_file_bytes: int = Field(
        default=20 * MIB,
        gt=0,
        description="largest document taken; a bigger file is rejected unread and moved to failed/",
        examples=[20 * MIB],
    )
    owner: int | str | None = Field(
        default=None,
        description="when set, only files owned by this user (uid or user name) are read; a "
        "file of another owner is rejected unread and moved to failed/",
        examples=["eai-drop", 1001],
    )

    @field_validator("pattern")
    @classmethod
    def _plain_pattern(cls, value: str) -> str:
        if "/" in value or "\\" in value or "\x00" in value:
            raise ValueError("pattern matches file names in the directory: no path separators")
        return value

    @field_validator("owner")
    @classmethod
    def _owner_shape(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 0:
            raise ValueError("owner: a uid is 0 or more")
        if isinstance(value, str) and (not value or value != value.strip() or ":" in value):
            raise ValueError("owner: a user name or a uid")
        return value

    def owner_uid(self) -> int | None:
        """The uid files must have (``None``: any); ConfigError for an unknown user name."""
        owner = self.owner
        if owner is None or isinstance(owner, int):
            return owner
        if owner.isdigit():
            return int(owner)
        try:
            return pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise ConfigError(
                [ConfigIssue(str(self.path), 0, 0, f"listener {self.name}: no user {owner!r}")]
            ) from None
