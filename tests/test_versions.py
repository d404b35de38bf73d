"""This server's own version, beside the Faktory protocol version it speaks,
in the web UI's footer; the footer shows no TLS key paths and links to the
docs the operator published (``[web] docs_url``), never the Go server's wiki."""

from __future__ import annotations

import os
import shutil
import ssl
import urllib.request

from test_tls import make_ca_and_cert

from faktory import FAKTORY_COMPAT_VERSION, __version__
from helpers import ServerProcess, config_dir


def test_footer_versions_no_key_paths_and_our_docs():
    cdir = config_dir('[web]\ndocs_url = "https://docs.example.org/faktory/"\n')
    ca = make_ca_and_cert(cdir)
    srv = ServerProcess(args=["-c", cdir]).start()
    try:
        ctx = ssl.create_default_context(cafile=ca)
        with urllib.request.urlopen(
            f"https://localhost:{srv.web_port}/", context=ctx, timeout=20
        ) as r:
            html = r.read().decode()
        footer = html[html.index("<footer") :]
        assert f"faktory-server {__version__}" in footer
        assert f"Faktory {FAKTORY_COMPAT_VERSION}" in footer
        assert f"ssl:{srv.port}:interface=127.0.0.1" in footer
        assert ".pem" not in html and cdir not in html
        assert 'href="https://docs.example.org/faktory/"' in footer
        assert "contribsys/faktory/wiki" not in html
    finally:
        srv.discard()
        shutil.rmtree(cdir, ignore_errors=True)


def test_no_docs_url_no_foreign_docs_link():
    srv = ServerProcess().start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.web_port}/", timeout=20) as r:
            html = r.read().decode()
        assert "contribsys/faktory/wiki" not in html
        assert f"faktory-server {__version__}" in html
    finally:
        srv.discard()
    assert not os.path.exists(srv.data_dir)
