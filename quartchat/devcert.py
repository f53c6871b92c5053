"""``quartchat dev-cert``: a certificate for serving over TLS (and so HTTP/2) while developing.

It is signed by a throw-away certificate authority, written beside it as ``ca.pem``: trust
that file in a browser or give it to a client, and the server's certificate is valid.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
VALID_DAYS = 365  # browsers refuse server certificates valid for much longer (Apple: 825 days)


@dataclass(frozen=True)
class DevCert:
    certfile: Path  # the server's certificate, then the authority's
    keyfile: Path
    cafile: Path

    def instructions(self, hosts: tuple[str, ...]) -> str:
        return "\n".join(
            [
                f"Wrote a TLS certificate for {', '.join(hosts)}, valid {VALID_DAYS} days.",
                "Serve with it by adding to config.toml:",
                "",
                "[server]",
                f"certfile = {json.dumps(str(self.certfile))}",
                f"keyfile = {json.dumps(str(self.keyfile))}",
                "",
                f"(or QUARTCHAT_SERVER_CERTFILE={self.certfile} "
                f"QUARTCHAT_SERVER_KEYFILE={self.keyfile}).",
                f"Then trust {self.cafile} (import it as an authority in the browser, or e.g.",
                f"curl --cacert {self.cafile} https://localhost:8000/) to avoid warnings.",
            ]
        )


def write_dev_cert(directory: Path, hosts: tuple[str, ...] = DEFAULT_HOSTS) -> DevCert:
    """Write ``cert.pem``, ``key.pem`` (readable by the owner only) and ``ca.pem`` into
    ``directory``, replacing earlier ones."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA(organization_name="quartchat development")
    now = datetime.now(UTC)
    leaf = authority.issue_cert(
        *hosts,
        organization_name="quartchat development",
        not_before=now - timedelta(minutes=5),  # a little slack for clocks that differ
        not_after=now + timedelta(days=VALID_DAYS),
    )
    written = DevCert(directory / "cert.pem", directory / "key.pem", directory / "ca.pem")
    written.certfile.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    _write_private(written.keyfile, leaf.private_key_pem.bytes())
    written.cafile.write_bytes(authority.cert_pem.bytes())
    return written


def _write_private(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)  # so that the mode below applies to a new file
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
