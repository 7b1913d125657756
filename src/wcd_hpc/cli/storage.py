"""``wcd-hpc storage serve``: run the gRPC storage proxy that lets hundreds of workers share a
database. All of it is :mod:`wcd_hpc.store.proxy`; this module parses the flags and prints."""

from __future__ import annotations

from typing import Annotated

import typer

from wcd_hpc.cli.common import err, out
from wcd_hpc.store import proxy
from wcd_hpc.store.urls import ENV_STORAGE, from_env

app = typer.Typer(
    help="The gRPC storage proxy: more workers than the database has connections for.",
    no_args_is_help=True,
)


@app.command("serve")
def serve_cmd(
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help=f"Database URL to serve (postgresql://…); default ${ENV_STORAGE}.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on: a cluster-internal one (no auth, no TLS)."
        ),
    ] = proxy.DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on; 0 picks a free one.")
    ] = proxy.DEFAULT_PORT,
    threads: Annotated[
        int,
        typer.Option(
            "--threads", min=1, max=1024, help="Server threads (calls in flight at once)."
        ),
    ] = proxy.DEFAULT_THREADS,
    connections: Annotated[
        int,
        typer.Option(
            "--connections", min=1, max=1024, help="Database connections the proxy holds."
        ),
    ] = proxy.DEFAULT_CONNECTIONS,
    lease: Annotated[
        float,
        typer.Option(
            "--lease",
            min=0.1,
            max=86_400,
            help="Seconds after which a dead worker's claim lock lapses.",
        ),
    ] = proxy.DEFAULT_LEASE_S,
) -> None:
    """Serve a database to workers as storage: grpc://HOST:PORT, until SIGTERM or Ctrl-C.

    Workers then need no database password and hold no database connection. The sweep does not
    start the proxy: run it on a node the workers reach, before the workers start.
    """
    url = from_env(storage)

    def ready(serving: proxy.Serving) -> None:
        out.print(
            f"serving {serving.backend} with {serving.threads} threads; "
            f"workers use  storage: {serving.address}"
        )

    proxy.serve(
        url,
        host=host,
        port=port,
        threads=threads,
        connections=connections,
        lease_s=lease,
        ready=ready,
    )
    err.print("storage proxy stopped")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="storage")
