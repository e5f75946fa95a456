"""Debian's ActiveMQ (package ``activemq``) as the sandbox broker, for fidelity checks (soar-runtime.md §8).

It listens with one ``stomp+ssl`` connector on 127.0.0.1, the sandbox certificate and two users (the
app's API key and SOAR's login). It has none of the built-in broker's test controls except ``inject``.
"""
import os
import shutil
import signal
import socket
import subprocess
import time
from xml.sax.saxutils import quoteattr

ACTIVEMQ_HOME = "/usr/share/activemq"
ACTIVEMQ_JAR = os.path.join(ACTIVEMQ_HOME, "bin", "activemq.jar")
KEYSTORE_PASSWORD = "changeit"

_XML = """<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
                           http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="sandbox" useJmx="false"
          persistent="false" dataDirectory={data}>
    <plugins>
      <simpleAuthenticationPlugin>
        <users>
{users}
        </users>
      </simpleAuthenticationPlugin>
    </plugins>
    <sslContext>
      <sslContext keyStore={keystore} keyStoreType="PKCS12" keyStorePassword="{password}"/>
    </sslContext>
    <transportConnectors>
      <transportConnector name="stomp+ssl" uri="stomp+ssl://127.0.0.1:{port}?transport.hbGracePeriodMultiplier=1.5"/>
    </transportConnectors>
  </broker>
</beans>
"""

_LOG4J = """rootLogger.level=WARN
rootLogger.appenderRef.console.ref=Console
appender.console.type=Console
appender.console.name=Console
appender.console.layout.type=PatternLayout
appender.console.layout.pattern=%d %5p | %m%n
"""


def available():
    """True when ActiveMQ and a java runtime are installed."""
    return os.path.exists(ACTIVEMQ_JAR) and shutil.which("java") is not None


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _make_keystore(cert, path):
    """PKCS12 keystore of the sandbox certificate and key (openssl, else cryptography)."""
    openssl = shutil.which("openssl")
    if openssl:
        subprocess.run([openssl, "pkcs12", "-export", "-in", cert.cert, "-inkey", cert.key, "-out", path,
                        "-name", "broker", "-passout", "pass:" + KEYSTORE_PASSWORD],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    with open(cert.key, "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), None)
    with open(cert.cert, "rb") as handle:
        certificate = x509.load_pem_x509_certificate(handle.read())
    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder()
                  .kdf_rounds(2048).key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                  .hmac_hash(hashes.SHA1()).build(KEYSTORE_PASSWORD.encode()))
    with open(path, "wb") as handle:
        handle.write(pkcs12.serialize_key_and_certificates(b"broker", key, certificate, None, encryption))


class ActiveMQBroker:
    """ActiveMQ in its own process group, with an instance folder under ``workdir``."""

    def __init__(self, cert, workdir, *, port=0, users=None, java_heap="256M"):
        self.cert = cert
        self.workdir = os.path.abspath(workdir)
        self.port = port or None
        self.users = dict(users or {"emu-key-id": "emu-key-secret", "soar": "soar-secret"})
        self.java_heap = java_heap
        self.process = None
        self.log_path = os.path.join(self.workdir, "activemq.log")
        self._log = None

    def _write_instance(self):
        conf = os.path.join(self.workdir, "conf")
        data = os.path.join(self.workdir, "data")
        os.makedirs(conf, exist_ok=True)
        os.makedirs(data, exist_ok=True)
        keystore = os.path.join(conf, "broker.p12")
        if not os.path.exists(keystore):
            _make_keystore(self.cert, keystore)
        users = "\n".join(f'          <authenticationUser username={quoteattr(login)} '
                          f'password={quoteattr(passcode)} groups="users"/>'
                          for login, passcode in self.users.items())
        with open(os.path.join(conf, "activemq.xml"), "w", encoding="utf-8") as handle:
            handle.write(_XML.format(data=quoteattr(data), users=users,
                                     keystore=quoteattr("file:" + keystore),
                                     password=KEYSTORE_PASSWORD, port=self.port))
        with open(os.path.join(conf, "log4j2.properties"), "w", encoding="utf-8") as handle:
            handle.write(_LOG4J)
        return conf, data

    def start(self, timeout=90.0):
        if not available():
            raise RuntimeError("ActiveMQ is not installed (apt-get install --no-install-recommends activemq)")
        if self.process is not None and self.process.poll() is None:
            return self
        self.port = self.port or _free_port()
        conf, data = self._write_instance()
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            ["java", "-Xms" + self.java_heap, "-Xmx" + self.java_heap,
             "-Dactivemq.home=" + ACTIVEMQ_HOME, "-Dactivemq.base=" + self.workdir, "-Dactivemq.conf=" + conf,
             "-Dactivemq.data=" + data,
             "-Dlog4j2.configurationFile=" + os.path.join(conf, "log4j2.properties"),
             "-jar", ACTIVEMQ_JAR, "start", "xbean:file:" + os.path.join(conf, "activemq.xml")],
            cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("ActiveMQ exited with "
                                   f"{self.process.returncode}:\n{self.log_text()[-4000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"ActiveMQ did not listen on {self.port} within "
                           f"{timeout}s:\n{self.log_text()[-4000:]}")

    def stop(self, timeout=15.0):
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def inject(self, destination, body, headers=None, login="soar"):
        """Send a message as another client would (a short-lived stomp.py connection)."""
        import stomp
        conn = stomp.Connection12([("127.0.0.1", self.port)], reconnect_attempts_max=1, timeout=10)
        conn.set_ssl(for_hosts=[("127.0.0.1", self.port)])
        conn.connect(login, self.users[login], wait=True)
        try:
            conn.send(destination, body, headers=dict(headers or {}))
        finally:
            conn.disconnect()
