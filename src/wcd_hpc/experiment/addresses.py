"""``grpc://HOST:PORT``: the one storage value that is an address rather than a database.

It is parsed in two places that must agree: the experiment check (so a mistyped port is blamed on
the line of the experiment file that wrote it, before anything is created) and the storage opener
(for ``--storage`` and ``$WCD_HPC_STORAGE`` given to ``status``, ``worker`` …). Both use
:func:`grpc_address`. It lives down here, below :mod:`wcd_hpc.queue`, because the experiment
layer may not import the queue.

Only a host and a port are accepted: Optuna's proxy client takes nothing else (no path, no user,
no TLS settings), and a URL that looked as if it carried credentials would suggest a security
the proxy does not have.
"""

from __future__ import annotations

import re

GRPC_SCHEME = "grpc://"
#: What a grpc storage value must look like, as error messages say it.
GRPC_FORM = "grpc://HOST:PORT (the address `wcd-hpc storage serve` prints)"
_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+")


def grpc_address(url: str) -> tuple[str, int]:
    """``(host, port)`` of ``grpc://HOST:PORT``; ValueError saying what was expected otherwise.

    IPv6 hosts are written in brackets (``grpc://[::1]:13000``) and returned without them.
    """
    rest = url.removeprefix(GRPC_SCHEME)
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        raise ValueError(f"expected {GRPC_FORM}, got {url!r} (no port)")
    if _HOST.fullmatch(host) is None:
        raise ValueError(f"expected {GRPC_FORM}, got {url!r} (host {host!r} is not a host name)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected {GRPC_FORM} with a port 1-65535, got {url!r}")
    return host.strip("[]"), int(port)
