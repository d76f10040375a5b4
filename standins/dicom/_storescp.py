"""dcmtk's ``storescp`` receiving into a directory, on a free port.

Touches: subprocesses, network, files (its output directory and log).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from standins.dicom._common import HOST, _Server, is_listening, require_binary
from standins.net import free_port


class StoreScp(_Server):
    """dcmtk ``storescp`` writing every received instance into ``out_dir``.

    Accepts every storage SOP class (``-pm``: also unknown ones) and every
    transfer syntax dcmtk knows (``+xa``), as received; writes the data exactly
    as read (``+B`` bit-preserving: file meta + dataset bytes as sent), one file
    per C-STORE with a unique name (``+uf``, so an instance received twice is two
    files). With ``+B`` the dataset is byte-identical to what was received; the
    file meta information (group 0002) is storescp's own, so compare datasets,
    not whole files. ``+uf`` / ``+B`` can be turned off with ``unique_filenames`` /
    ``bit_preserving``; ``extra_args`` are added before the port (for instance
    ``("--refuse",)`` or ``("--sleep-during", "2")``).

    ``with StoreScp(tmp_path / "out") as scp: ... scp.port ... scp.files()``
    """

    name = "storescp"

    def __init__(
        self,
        out_dir: Path | str,
        ae_title: str = "STORESCP",
        *,
        port: int | None = None,
        unique_filenames: bool = True,
        bit_preserving: bool = True,
        verbose: bool = False,
        extra_args: Sequence[str] = (),
        log_path: Path | str | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.ae_title = ae_title
        self._fixed_port = port
        self.port = port or 0
        self.unique_filenames = unique_filenames
        self.bit_preserving = bit_preserving
        self.verbose = verbose
        self.extra_args = tuple(extra_args)
        self.binary = require_binary("storescp")
        default_log = self.out_dir.parent / f"{self.out_dir.name}.storescp.log"
        super().__init__(Path(log_path) if log_path else default_log)

    def _choose_ports(self, attempt: int) -> bool:
        if self._fixed_port:
            self.port = self._fixed_port
            return False
        self.port = free_port(HOST)
        return True

    def _command(self) -> list[str]:
        cmd = [self.binary, "+xa", "-pm", "-dhl", "-aet", self.ae_title, "-od", str(self.out_dir)]
        if self.bit_preserving:
            cmd.append("+B")
        if self.unique_filenames:
            cmd.append("+uf")
        if self.verbose:
            cmd.append("-v")
        return [*cmd, *self.extra_args, str(self.port)]

    def _ready(self) -> bool:
        return is_listening(self.port)

    def start(self) -> StoreScp:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        started: StoreScp = super().start()
        return started

    def restart(self) -> StoreScp:
        """Stop and start again on the same port (for 'destination down' tests)."""
        self.stop()
        port, self._fixed_port = self._fixed_port, self.port
        try:
            return self.start()
        finally:
            self._fixed_port = port

    def files(self) -> list[Path]:
        """The files received so far, sorted by name (may include one being written)."""
        if not self.out_dir.is_dir():
            return []
        return sorted(p for p in self.out_dir.iterdir() if p.is_file())

    def count(self) -> int:
        """How many files are in ``out_dir`` (cheaper than :meth:`files`)."""
        try:
            with os.scandir(self.out_dir) as entries:
                return sum(1 for e in entries if e.is_file())
        except FileNotFoundError:
            return 0

    def wait_files(self, n: int, timeout: float = 30.0, settle: float = 0.05) -> list[Path]:
        """Wait until at least ``n`` files exist and their sizes are stable for ``settle``
        seconds (storescp writes each file in place before answering); return them.
        Raises TimeoutError (with the log tail) when they do not arrive in time."""
        deadline = time.monotonic() + timeout
        sizes: dict[Path, int] | None = None
        while True:
            files = self.files()
            if len(files) >= n:
                now = {p: p.stat().st_size for p in files}
                if now == sizes:
                    return files
                sizes = now
                time.sleep(settle)
            elif time.monotonic() >= deadline:
                raise TimeoutError(
                    f"storescp on port {self.port} holds {len(files)} files, expected {n}; "
                    f"log:\n{self.log_tail()}"
                )
            else:
                sizes = None
                time.sleep(0.01)
