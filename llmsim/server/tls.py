"""HTTPS: the scenario's certificate files, or a self-signed certificate made at start-up."""

from __future__ import annotations

import datetime
import ipaddress
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ORGANIZATION = "llmsim"
VALIDITY = datetime.timedelta(days=3650)
KEY_BITS = 2048
"""Upstream makes RSA-4096 keys; 2048 bits is as accepted by clients and starts far faster."""


def self_signed_certificate(folder: Path, hosts: list[str]) -> tuple[Path, Path]:
    """Write a new self-signed certificate and its key into ``folder``; the certificate names
    ``hosts`` (DNS names or IP addresses), so that clients that verify it against itself as
    CA accept it. Returns (certificate file, key file)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "llmsim-cert.pem", folder / "llmsim-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def _names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def certificate_hosts(bind_host: str) -> list[str]:
    """The names a self-signed certificate covers: localhost, loopback, and the bound address
    when it is a specific one."""
    hosts = ["localhost", "127.0.0.1", "::1"]
    if bind_host not in ("0.0.0.0", "::", "", *hosts):
        hosts.append(bind_host)
    return hosts


def certificate_folder() -> Path:
    """A private folder for a generated certificate (it outlives the process: clients may
    want to read it as their CA)."""
    return Path(tempfile.mkdtemp(prefix="llmsim-tls-"))
