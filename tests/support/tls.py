"""A test certificate authority and HTTPS servers on loopback, for fixtures that play remote services.

``TestCA.create(directory)`` makes an RSA CA and one server certificate for 127.0.0.1 / ::1 /
localhost (made with ``cryptography``, valid one day). ``ca.ca_file`` is the CA's PEM in a
world-readable file: what the SDKs get as REQUESTS_CA_BUNDLE (requests, hence azure-core and
google-auth), AWS_CA_BUNDLE (botocore) and SSL_CERT_FILE (OpenSSL's default verify path, urllib).
The server key stays 0600 in a private subdirectory.

``HttpsServer`` runs a ``ThreadingHTTPServer`` with TLS on 127.0.0.1 (a free port) in a daemon
thread and hands each request to a ``handle(Request) -> Response`` callable.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import os
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_BODY = 1 << 20  # a token request is a few KiB; anything larger is refused


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass(frozen=True)
class TestCA:
    """A CA (``ca_file``, world-readable) and a loopback server certificate (``cert_file``, ``key_file``)."""

    __test__ = False  # not a pytest test class

    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def create(cls, directory: Path) -> TestCA:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        now = dt.datetime.now(dt.UTC)
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("credo test clouds CA"))
            .issuer_name(_name("credo test clouds CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("127.0.0.1"))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        ca_file = directory / "ca.pem"
        ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        ca_file.chmod(0o644)
        private = directory / "private"
        private.mkdir(mode=0o700, exist_ok=True)
        cert_file = private / "server.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file = private / "server.key"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        return cls(ca_file=ca_file, cert_file=cert_file, key_file=key_file)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Trusts this CA only: what a cloud's fetcher would trust for the test issuer host."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def environment(self) -> dict[str, str]:
        """The variables that make each SDK (and urllib) trust this CA, as a job would get them."""
        ca = str(self.ca_file)
        return {"REQUESTS_CA_BUNDLE": ca, "AWS_CA_BUNDLE": ca, "SSL_CERT_FILE": ca}


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body (each name once; a repeated name keeps its last value)."""
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[-1] for name, values in parsed.items()}

    def json(self) -> object:
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, document: object, **headers: str) -> Response:
        return cls(status, json.dumps(document).encode(), headers=dict(headers))


Handler = Callable[[Request], Response]


class HttpsServer:
    """One HTTPS server on 127.0.0.1 (free port), each request given to ``handler``; ``close()`` stops it."""

    def __init__(self, ca: TestCA, handler: Handler, name: str) -> None:
        self.name = name

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = f"credo-test-{name}"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._send(Response(413))
                    return
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=url.path,
                    query=parse_qs(url.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                try:
                    response = handler(request)
                except Exception as exc:  # a fixture bug: answer 500 and say so, never hang the client
                    response = Response.json(500, {"fixture_error": f"{type(exc).__name__}: {exc}"})
                self._send(response)

            def _send(self, response: Response) -> None:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass  # requests carry tokens in their bodies only, but keep test output quiet anyway

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        context = ca.server_context()
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"https-{name}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def serve_handler(ca: TestCA, handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve a plain ``http.server`` handler over TLS on 127.0.0.1; yields https://127.0.0.1:PORT."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = ca.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
