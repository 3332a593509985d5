"""Run the fake OpenID Connect provider as a process, for the browser e2e run.

    python -m tests.fakes.serve_oidc --email sam@example.com --groups staff

prints one JSON line once it listens (``issuer``, ``client_id``, ``client_secret``) for
the server's EXPERTGATE_OIDC_* settings, signs that user in at ``/authorize`` without
asking, and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import sys

from tests.fakes.http_server import wait_for_signal
from tests.fakes.oidc_provider import FakeOidcProvider, FakeUser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--email", default="sam@example.com")
    parser.add_argument("--groups", default="staff", help="comma-separated groups claim")
    args = parser.parse_args(argv)
    groups = tuple(g for g in args.groups.split(",") if g)
    provider = FakeOidcProvider(user=FakeUser("e2e-user", args.email, groups)).start()
    print(json.dumps({"issuer": provider.issuer, "client_id": provider.client_id,
                      "client_secret": provider.client_secret}), flush=True)  # fmt: skip
    wait_for_signal()
    provider.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
