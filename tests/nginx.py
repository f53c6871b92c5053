"""nginx (Debian's) on loopback in front of quartchat processes, run with the shipped
deploy/nginx.conf: only its lines marked ``# SITE`` are rewritten (ports, the test's
processes, certificate, static dir, ACME webroot), so whatever else that file says is what
the tests exercise.  A main config around it keeps pid, logs and temp files in the test's
directory; nginx runs in the foreground and is stopped by the test."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .servers import free_port, missing, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "deploy" / "nginx.conf"
SITE_MARK = "# SITE"
MIME_TYPES = Path("/etc/nginx/mime.types")
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> str:
    """Path of nginx; skip the test when there is none, but fail under CI (``$CI`` set),
    where tests/run.sh should have installed it."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found and MIME_TYPES.is_file():
        return found
    missing("nginx is not installed (tests/run.sh installs Debian's with apt-get)")


@dataclass(frozen=True)
class Site:
    """This test's values for the shipped file's ``# SITE`` lines."""

    http_port: int
    https_port: int
    upstreams: Sequence[str]  # HOST:PORT of each quartchat process
    certificate: Path
    key: Path
    static_dir: Path
    acme_root: Path


def render_site(text: str, site: Site) -> str:
    """The shipped site config with its ``# SITE`` lines rewritten for ``site``."""
    lines: list[str] = []
    for line in text.splitlines():
        lines.extend(_rewrite(line, site) if is_site_line(line) else [line])
    return "\n".join(lines) + "\n"


def is_site_line(line: str) -> bool:
    """A directive followed by the ``# SITE`` comment (not a comment that mentions it)."""
    code, mark, comment = line.partition("#")
    return bool(code.strip()) and (mark + comment).startswith(SITE_MARK)


def _rewrite(line: str, site: Site) -> list[str]:
    indent = line[: len(line) - len(line.lstrip())]
    directive, *args = line.split(";", 1)[0].split()
    if directive == "listen":
        if args[0].startswith("["):
            return []  # IPv6: the tests keep to 127.0.0.1
        port = site.https_port if "ssl" in args else site.http_port
        return [f"{indent}listen 127.0.0.1:{port} {' '.join(args[1:])};"]
    if directive == "server":
        return [f"{indent}server {upstream};" for upstream in site.upstreams]
    if directive == "server_name":
        return [line]  # the tests use the shipped name, with a certificate for it
    paths = {
        "ssl_certificate": site.certificate,
        "ssl_certificate_key": site.key,
        "alias": f"{site.static_dir}/",
        "root": site.acme_root,
    }
    if directive in paths:
        return [f"{indent}{directive} {paths[directive]};"]
    raise ValueError(f"{SHIPPED}: tests/nginx.py cannot rewrite this {SITE_MARK} line: {line}")


def main_config(workdir: Path) -> str:
    """What Debian's /etc/nginx/nginx.conf would be, with everything in ``workdir``."""
    # A master started as root hands requests to workers running as `user` (nobody by
    # default), who could not reach the test's private directory.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    temp_paths = "\n".join(f"    {kind}_temp_path {workdir}/{kind};" for kind in TEMP_KINDS)
    return f"""\
daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
{user}
events {{
    worker_connections 512;
}}
http {{
    include {MIME_TYPES};
    default_type application/octet-stream;
    access_log {workdir}/access.log;
{temp_paths}
    include {workdir}/site.conf;
}}
"""


class NginxServer:
    """nginx in the foreground with the rendered config; ports chosen at construction."""

    def __init__(
        self, workdir: Path, upstreams: Sequence[str], certificate: Path, key: Path
    ) -> None:
        self.binary = nginx_binary()
        self.workdir = workdir
        self.acme_root = workdir / "acme"
        self.site = Site(
            http_port=free_port(),
            https_port=free_port(),
            upstreams=upstreams,
            certificate=certificate,
            key=key,
            static_dir=ROOT / "static",
            acme_root=self.acme_root,
        )
        self.error_log = workdir / "error.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.acme_root.mkdir(exist_ok=True)
        (self.workdir / "site.conf").write_text(render_site(SHIPPED.read_text(), self.site))
        config = self.workdir / "nginx.conf"
        config.write_text(main_config(self.workdir))
        with (self.workdir / "nginx.out").open("ab") as output:
            self.process = subprocess.Popen(
                [self.binary, "-p", self.workdir, "-c", config, "-e", self.error_log],
                cwd=self.workdir,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(self.site.https_port, self.process)
            wait_for_port(self.site.http_port, self.process)
        except RuntimeError as error:
            self.stop()
            log = self.error_log.read_text() if self.error_log.exists() else ""
            raise RuntimeError(f"{error}\n{log}") from None

    def stop(self) -> None:
        """Fast shutdown (SIGTERM): a graceful one would wait for every open websocket."""
        stop_process(self.process)
        self.process = None
