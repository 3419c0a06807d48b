"""TLS files for `serve`: checking a certificate and key before use; development certificates."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from parcelproof.settings import ConfigurationError

DEV_CERT_DAYS = 30
DEV_CERT_FILE = "dev-cert.pem"
DEV_KEY_FILE = "dev-key.pem"
#: Names every development certificate covers, before the ones asked for.
DEV_HOSTS = ("localhost", "127.0.0.1")
#: Accepted clock skew between this machine and its clients.
BACKDATE = timedelta(minutes=5)
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True)
class DevCertificate:
    """What :func:`write_dev_certificate` wrote."""

    cert: Path
    key: Path
    hosts: tuple[str, ...]
    not_after: datetime


def check_server_files(cert: Path, key: Path) -> datetime:
    """Load ``cert`` (PEM, leaf first) and ``key`` (unencrypted PEM) as the server will, and
    return the leaf's expiry. Every failure is a :class:`ConfigurationError` saying which file
    is wrong and why, never a traceback or a password prompt."""
    cert_pem = _read(cert, "certificate")
    key_pem = _read(key, "key")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise ConfigurationError(
            f"the TLS certificate {cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ) from None
    try:
        serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ConfigurationError(
            f"the TLS key {key} is encrypted: serve needs an unencrypted key (mode 0600)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigurationError(f"the TLS key {key} holds no usable PEM private key") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except ssl.SSLError as e:
        reason = (
            "the key does not belong to the certificate"
            if "KEY_VALUES_MISMATCH" in str(e) or "key values mismatch" in str(e)
            else f"OpenSSL refused them ({e.reason or 'unknown reason'})"
        )
        raise ConfigurationError(f"cannot use TLS files {cert} and {key}: {reason}") from None
    return chain[0].not_valid_after_utc


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigurationError(f"cannot read the TLS {what} {path}: {e.strerror or e}") from None


def _no_password() -> bytes:
    """Answer OpenSSL's password question so it never prompts on the terminal."""
    return b""


def dev_hosts(extra: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
    """localhost, 127.0.0.1 and ``extra`` (DNS names or IP addresses), checked, lower case,
    without duplicates."""
    hosts: list[str] = []
    for raw in (*DEV_HOSTS, *extra):
        host = raw.strip().lower().removesuffix(".")
        try:
            host = str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            if len(host) > 253 or not all(_LABEL.fullmatch(p) for p in host.split(".")):
                raise ConfigurationError(
                    f"--host {raw!r} is neither a DNS name (letters, digits, '-' and '.') "
                    "nor an IP address"
                ) from None
        if host not in hosts:
            hosts.append(host)
    return tuple(hosts)


def make_dev_certificate(
    hosts: tuple[str, ...], now: datetime | None = None
) -> tuple[bytes, bytes, datetime]:
    """A self-signed certificate (no CA) for ``hosts`` and its EC P-256 key, both PEM, and its
    expiry: a server certificate only, valid from a few minutes ago for DEV_CERT_DAYS."""
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ParcelProof development only"),
            x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
        ]
    )
    public = key.public_key()
    not_after = now + timedelta(days=DEV_CERT_DAYS)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, not_after


def write_dev_certificate(
    directory: Path, extra_hosts: list[str] | tuple[str, ...] = (), *, force: bool = False
) -> DevCertificate:
    """Write DEV_CERT_FILE (mode 0644) and DEV_KEY_FILE (mode 0600) into ``directory``;
    existing files are refused unless ``force``."""
    hosts = dev_hosts(extra_hosts)
    directory = directory.resolve()
    cert_path, key_path = directory / DEV_CERT_FILE, directory / DEV_KEY_FILE
    if not force:
        for path in (cert_path, key_path):
            if path.exists():
                raise ConfigurationError(f"{path} exists: pass --force to overwrite it")
    cert_pem, key_pem, not_after = make_dev_certificate(hosts)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_atomically(key_path, key_pem, 0o600)
    _write_atomically(cert_path, cert_pem, 0o644)
    return DevCertificate(cert_path, key_path, hosts, not_after)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
