"""Instructions per document of the DMP and MSSanté destinations' ``prepare``, for callgrind.

Run by hand (a count of instructions does not move with the load of a shared machine,
unlike CPU time)::

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \\
        --callgrind-out-file=/tmp/cg.out .venv/bin/python bench/prepare_instructions.py dmp 10
    callgrind_annotate /tmp/cg.out | head     # PROGRAM TOTALS / 10 = instructions per document

Three documents warm up (imports, compiled XPaths); the measured ones run inside
``functools.reduce``, the only C function callgrind is told to collect. RSA and SHA run
without the CPU's own instructions under valgrind: their share is over-weighted. See
docs/benchmarks.md. Without valgrind it prints the CPU time per document of the same loop
(``.venv/bin/python bench/prepare_instructions.py mss 200``).
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import dmp_publish  # noqa: E402
import mssante_send  # noqa: E402

from connectors.dmp.destination import load_signing_identity  # noqa: E402
from connectors.dmp.destination import prepare as dmp_prepare  # noqa: E402
from connectors.mssante.destination import prepare as mss_prepare  # noqa: E402
from eai.messages import OutboxItem  # noqa: E402


def main() -> int:
    which, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
    tmp = Path(tempfile.mkdtemp(prefix="prepare-instructions-"))
    one: Callable[[OutboxItem], object]
    if which == "dmp":
        config = dmp_publish._config(dmp_publish._pki(tmp), "https://127.0.0.1:1/repository")
        signer = load_signing_identity(config.sign_cert, config.sign_key)
        items = [dmp_publish._item(n, 1) for n in range(count + 3)]

        def one(item: OutboxItem) -> object:
            return dmp_prepare(config, signer, item)
    elif which == "mss":
        mss_config = mssante_send._config(mssante_send._pki(tmp), 25, 1)
        items = [mssante_send._item(n) for n in range(1, count + 4)]

        def one(item: OutboxItem) -> object:
            return mss_prepare(mss_config, item)
    else:
        raise SystemExit("usage: prepare_instructions.py dmp|mss [documents]")
    for item in items[:3]:
        one(item)
    started = time.process_time()
    functools.reduce(lambda _, item: one(item), items[3:], None)
    spent = time.process_time() - started
    print(f"{which} prepare: {1000 * spent / count:.2f} ms CPU per document ({count} documents)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
