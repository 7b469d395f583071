"""The image's one entry point: ``python -m functions.api.serve``.

On Lambda (``AWS_LAMBDA_RUNTIME_API`` is set) it runs the AWS Lambda runtime interface client on
``functions.api.main.handler``; anywhere else (Docker on EC2/ECS, a laptop) it runs uvicorn on
``${HOST:-0.0.0.0}:${PORT:-8000}`` with one worker: scale with containers, not workers (uvicorn
does not set TCP_NODELAY with several workers; see DESIGN.md).
"""

from __future__ import annotations

import os
import sys

HANDLER = "functions.api.main.handler"


def run_lambda() -> None:
    """Hand the process to ``awslambdaric``, exactly as ``python -m awslambdaric HANDLER`` would.

    awslambdaric's ``__main__.main(argv)`` reads the handler from ``argv[1]`` and the Runtime API
    address from ``AWS_LAMBDA_RUNTIME_API``, builds its runtime client and loops on
    ``/runtime/invocation/next`` forever. (In the pinned 4.x, ``bootstrap.run`` takes a handler
    and a client; the ``run(app_root, handler, address)`` form of old releases is gone.)
    Importing the handler is the init phase: the models are loaded and warmed up there, and an
    import failure is reported to ``/runtime/init/error`` by the client itself.
    """
    # awslambdaric ships no type information.
    from awslambdaric.__main__ import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        main as ric_main,
    )

    ric_main([sys.argv[0], HANDLER])


def run_server() -> None:
    import uvicorn

    from functions.api import heap
    from functions.api.main import app  # built here: models loaded and warmed up

    # Before the first request: full collections skip what start-up built (heap.py).
    heap.freeze()
    uvicorn.run(
        app,
        host=os.environ.get("HOST", "0.0.0.0"),  # a container must listen on all
        port=int(os.environ.get("PORT", "8000")),
        workers=1,
        access_log=False,  # RequestMiddleware logs each request once, as JSON
        proxy_headers=True,
    )


def main() -> None:
    if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
        run_lambda()
    else:
        run_server()


if __name__ == "__main__":
    main()
