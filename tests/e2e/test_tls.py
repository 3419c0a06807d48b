"""TLS as real processes: `parcelproof tls dev-cert`, and `serve --tls-cert --tls-key` answering
HTTPS that verifies against that certificate, refusing plain HTTP, and refusing bad files."""

from __future__ import annotations

import ipaddress
import re
import ssl
import stat
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console

from parcelproof.api.security import HSTS
from parcelproof.cli import _is_loopback, _listen, _plain_http_banner
from parcelproof.tls import (
    DEV_CERT_DAYS,
    DEV_CERT_FILE,
    DEV_KEY_FILE,
    DevCertificate,
    write_dev_certificate,
)
from tests.e2e.test_serve import PARCEL, POSTCODE, STARTUP_TIMEOUT, _clean_env, _run, running

HTTPS_URL = r"listening on (https://127\.0\.0\.1:\d+)"


@pytest.fixture
def dev_cert(tmp_path: Path) -> DevCertificate:
    return write_dev_certificate(tmp_path / "tls")


# --- dev-cert -------------------------------------------------------------------------------


def test_dev_cert_writes_a_self_signed_p256_certificate_and_a_private_key(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    result = _run(
        ["tls", "dev-cert", "--out", str(out), "--host", "node.test", "--host", "10.1.2.3"],
        _clean_env(),
        tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cert_path, key_path = out / DEV_CERT_FILE, out / DEV_KEY_FILE
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644
    assert str(cert_path) in result.stdout and str(key_path) in result.stdout
    assert f"parcelproof serve --tls-cert {cert_path} --tls-key {key_path}" in result.stdout

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.issuer == cert.subject  # self-signed, no CA
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "node.test"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.1.2.3"),
    ]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=DEV_CERT_DAYS) <= lifetime <= timedelta(days=DEV_CERT_DAYS, hours=1)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert key.public_key() == cert.public_key()


def test_dev_cert_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    made = write_dev_certificate(tmp_path)
    before = made.cert.read_bytes(), made.key.read_bytes()
    refused = _run(["tls", "dev-cert", "--out", str(tmp_path)], _clean_env(), tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"error: {made.cert} exists: pass --force to overwrite it")
    assert (made.cert.read_bytes(), made.key.read_bytes()) == before

    made.cert.unlink()  # the key alone is enough to refuse
    again = _run(["tls", "dev-cert", "--out", str(tmp_path)], _clean_env(), tmp_path)
    assert again.returncode == 2 and "dev-key.pem exists" in again.stderr
    assert made.key.read_bytes() == before[1]

    forced = _run(["tls", "dev-cert", "--out", str(tmp_path), "--force"], _clean_env(), tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert made.key.read_bytes() != before[1]
    assert stat.S_IMODE(made.key.stat().st_mode) == 0o600


def test_dev_cert_refuses_a_host_that_is_no_name(tmp_path: Path) -> None:
    result = _run(
        ["tls", "dev-cert", "--out", str(tmp_path), "--host", "bad_host!"], _clean_env(), tmp_path
    )
    assert result.returncode == 2
    assert "is neither a DNS name" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / DEV_KEY_FILE).exists()


# --- serve over TLS -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["flags", "environment"])
def test_serve_answers_https_verified_against_the_dev_certificate(
    tmp_path: Path, dev_cert: DevCertificate, how: str
) -> None:
    args = ["serve", "--dev-chain", "--port", "0"]
    env = _clean_env()
    if how == "flags":
        args += ["--tls-cert", str(dev_cert.cert), "--tls-key", str(dev_cert.key)]
    else:
        env |= {
            "PARCELPROOF_TLS_CERT": str(dev_cert.cert),
            "PARCELPROOF_TLS_KEY": str(dev_cert.key),
        }
    with running("tls", args, env, tmp_path) as proc:
        url = proc.wait_for(HTTPS_URL, timeout=STARTUP_TIMEOUT)
        out = proc.stdout()
        assert "plain HTTP" not in out
        token = re.search(r"^(ppk_\S+)$", out, re.MULTILINE)
        assert token is not None
        trust = ssl.create_default_context(cafile=str(dev_cert.cert))
        with httpx.Client(base_url=url, verify=trust, timeout=30.0) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.headers["strict-transport-security"] == HSTS
            r = client.post(
                "/v1/shipments",
                headers={"Authorization": f"Bearer {token.group(1)}"},
                json={"tracking_number": PARCEL, "postcode": POSTCODE},
            )
            assert r.status_code == 201, r.text
            assert r.headers["cache-control"] == "no-store"
            page = client.get("/")
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert page.headers["strict-transport-security"] == HSTS

        # Plain HTTP to the TLS port gets no answer, and a client that does not trust the
        # development certificate refuses the connection.
        with pytest.raises(httpx.TransportError):
            httpx.get(url.replace("https://", "http://") + "/healthz", timeout=10.0)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(url + "/healthz", timeout=10.0)
    assert proc.popen.returncode == 0, proc.stderr()
    assert "Traceback" not in proc.stderr()


# --- refusals -------------------------------------------------------------------------------


def _other_key(tmp_path: Path) -> Path:
    return write_dev_certificate(tmp_path / "other").key


def _encrypted_key(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "encrypted-key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"hunter2"),
        )
    )
    return path


def _garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.pem"
    path.write_text("not a PEM file\n")
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "cert flag only",
            "TLS needs a certificate and its key: --tls-cert (PARCELPROOF_TLS_CERT) is set but "
            "--tls-key (PARCELPROOF_TLS_KEY) is not; pass both, or neither for plain HTTP",
        ),
        ("key variable only", "--tls-key (PARCELPROOF_TLS_KEY) is set but --tls-cert"),
        ("missing cert", "cannot read the TLS certificate"),
        ("unreadable key", "cannot read the TLS key"),
        ("garbage cert", "holds no PEM certificate"),
        ("garbage key", "holds no usable PEM private key"),
        ("encrypted key", "is encrypted: serve needs an unencrypted key"),
        ("key of another cert", "the key does not belong to the certificate"),
    ],
)
def test_serve_refuses_bad_tls_settings_with_one_line(
    tmp_path: Path, dev_cert: DevCertificate, case: str, message: str
) -> None:
    cert, key = str(dev_cert.cert), str(dev_cert.key)
    env = _clean_env()
    flags: list[str] = []
    if case == "cert flag only":
        flags = ["--tls-cert", cert]
    elif case == "key variable only":
        env["PARCELPROOF_TLS_KEY"] = key
    else:
        files = {
            "missing cert": (str(tmp_path / "nope.pem"), key),
            "unreadable key": (cert, str(tmp_path)),  # a directory
            "garbage cert": (str(_garbage(tmp_path)), key),
            "garbage key": (cert, str(_garbage(tmp_path))),
            "encrypted key": (cert, str(_encrypted_key(tmp_path))),
            "key of another cert": (cert, str(_other_key(tmp_path))),
        }[case]
        flags = ["--tls-cert", files[0], "--tls-key", files[1]]
    result = _run(["serve", "--dev-chain", "--port", "0", *flags], env, tmp_path, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "listening on" not in result.stdout


# --- the plain-HTTP warning -----------------------------------------------------------------


def test_plain_http_beyond_loopback_is_flagged() -> None:
    for host, loopback in [("127.0.0.1", True), ("localhost", True), ("0.0.0.0", False)]:  # noqa: S104
        sock = _listen(host, 0)
        try:
            assert _is_loopback(sock) is loopback, host
        finally:
            sock.close()
    console = Console(record=True, width=200)
    _plain_http_banner(console, "http://0.0.0.0:8000")
    text = console.export_text()
    assert "WARNING: plain HTTP on http://0.0.0.0:8000" in text
    assert "--tls-cert and --tls-key" in text
