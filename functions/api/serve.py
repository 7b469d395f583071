"""The image's one entry point: ``python -m functions.api.serve``.

On Lambda (``AWS_LAMBDA_RUNTIME_API`` is set) it runs the AWS Lambda runtime interface client on
``functions.api.main.handler``; anywhere else (Docker on EC2/ECS, a laptop) it runs uvicorn on
``${HOST:-0.0.0.0}:${PORT:-8000}`` with one worker: scale with containers, not workers (uvicorn
does not set TCP_NODELAY with several workers; see DESIGN.md).
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
        from awslambdaric import bootstrap  # type: ignore[import-not-found,unused-ignore]

        sys.argv = [sys.argv[0], "functions.api.main.handler"]
        bootstrap.run(
            os.getcwd(), "functions.api.main.handler", os.environ["AWS_LAMBDA_RUNTIME_API"]
        )
        return
    import uvicorn

    uvicorn.run(
        "functions.api.main:app",
        host=os.environ.get("HOST", "0.0.0.0"),  # a container must listen on all
        port=int(os.environ.get("PORT", "8000")),
        workers=1,
        access_log=False,  # RequestMiddleware logs each request once, as JSON
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
