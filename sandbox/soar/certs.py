"""Self-signed TLS material for the local SOAR emulator (REST and STOMP share one certificate)."""
import datetime
import ipaddress
import os
import shutil
import subprocess
from collections import namedtuple

CertPaths = namedtuple("CertPaths", "cert key")

CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"


def make_self_signed(folder, *, common_name="localhost", days=3):
    """Write cert.pem and key.pem (SAN DNS:localhost, IP:127.0.0.1) into folder; return CertPaths.

    Uses the ``cryptography`` package when it is importable, else the ``openssl`` command.
    """
    os.makedirs(folder, exist_ok=True)
    cert_path = os.path.join(folder, CERT_NAME)
    key_path = os.path.join(folder, KEY_NAME)
    try:
        _with_cryptography(cert_path, key_path, common_name, days)
    except ImportError:
        _with_openssl(cert_path, key_path, common_name, days)
    os.chmod(key_path, 0o600)
    return CertPaths(cert_path, key_path)


def _with_cryptography(cert_path, key_path, common_name, days):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with open(key_path, "wb") as handle:
        handle.write(key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()))
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))


def _with_openssl(cert_path, key_path, common_name, days):
    openssl = shutil.which("openssl")
    if not openssl:
        raise RuntimeError("neither the 'cryptography' package nor the 'openssl' command is available")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key_path, "-out", cert_path, "-days", str(days),
         "-subj", f"/CN={common_name}",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def server_context(paths):
    """An ssl.SSLContext for a server using the given CertPaths."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(paths.cert, paths.key)
    return ctx
