"""Print the app's OpenAPI schema as JSON, without starting it (no models load).

    python -m backend.cli.openapi frontend/openapi.json

The frontend's typed client (frontend/src/api/schema.d.ts) is generated from this file
by ``make api-client``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from backend.app import create_app
from backend.settings import Settings


def schema() -> dict[str, object]:
    # The lifespan never runs here, so nothing is built: only the routes are read.
    app = create_app(Settings(bootstrap_admin=False))
    return app.openapi()


def main(argv: list[str]) -> int:
    text = json.dumps(schema(), indent=2, sort_keys=True) + "\n"
    if argv:
        Path(argv[0]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
