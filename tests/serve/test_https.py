"""``serve --tls-cert --tls-key``: the API over HTTPS with a certificate made by the test."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from omconnect.runtime.cli import serve_cmd
from omconnect.runtime.serve import TlsFiles
from tests.support.served_worker import ServedWorker


def self_signed(directory: Path) -> TlsFiles:
    """A certificate for 127.0.0.1 and localhost, valid for a day, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "omconnect test")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert = directory / "cert.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file = directory / "key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(cert, key_file)


def test_the_api_is_served_over_https(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    tls = self_signed(tmp_path)
    trusting = ssl.create_default_context(cafile=tls.cert)
    with ServedWorker(folder, tls=tls) as worker:
        assert worker.base_url.startswith("https://127.0.0.1:")
        assert worker.json("GET", "/health") == {"status": "ok"}
        with httpx.Client(verify=trusting, base_url=worker.base_url) as client:
            assert client.get("/pipelines").status_code == 401
            answer = client.get("/pipelines", headers={"Authorization": f"Bearer {worker.token}"})
            assert (answer.status_code, answer.json()) == (200, [])
            assert answer.http_version == "HTTP/1.1"
        # Plain HTTP to the TLS port gets no answer: nothing is served in the clear.
        connection = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=5)
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            connection.request("GET", "/health")
            connection.getresponse()
        connection.close()


def test_unreadable_certificate_files_refuse_to_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMCONNECT_API_TOKEN", "sesame")
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (tmp_path / "junk.pem").write_text("not a certificate")
    state = ["--state", str(tmp_path / "state"), "--port", "0"]
    for options, problem in [
        (["--tls-cert", str(tmp_path / "none.pem")], "No such file"),
        (["--tls-cert", str(tmp_path / "junk.pem")], "cannot load the certificate"),
        (["--tls-key", str(tmp_path / "junk.pem")], "--tls-key needs --tls-cert"),
    ]:
        assert serve_cmd.main([str(folder), *state, *options]) == 2
        err = capsys.readouterr().err
        assert problem in err and "Traceback" not in err
