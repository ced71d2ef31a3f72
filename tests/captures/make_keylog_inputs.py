"""How the key-log inputs of CASES.md's "Key logs and decryption" section were made.

OpenSSL 3.0 s_server (and s_client, or Python's ssl as the client where OpenSSL's command line cannot turn
extended_master_secret off) on loopback, recorded with dumpcap; throwaway keys and certificate, made first:

    openssl req -x509 -newkey rsa:2048 -nodes -keyout server.key -out server.crt -days 3650 -subj /CN=keys.lab.test
    python3 make_keylog_inputs.py rsa renego gap session early && python3 make_keylog_inputs.py post

Needs root (dumpcap on lo), tshark, editcap and mergecap. Writes into ./out.
"""

import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
OUT.mkdir(exist_ok=True)
CERT, KEY = HERE / "server.crt", HERE / "server.key"


def wait_accept(server) -> None:
    while True:
        line = server.stdout.readline()
        if not line:
            raise SystemExit("s_server ended")
        if line.startswith(b"ACCEPT"):
            return


class Dumpcap:
    def __init__(self, name: str, port: int) -> None:
        self.path = OUT / name
        self.proc = subprocess.Popen(["dumpcap", "-q", "-P", "-i", "lo", "-f", f"tcp port {port}", "-w", str(self.path)],
                                     stderr=subprocess.PIPE)
        time.sleep(1.5)

    def stop(self) -> None:
        time.sleep(0.5)
        self.proc.terminate()
        self.proc.wait()


def s_server(port: int, *args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    p = subprocess.Popen(["openssl", "s_server", "-accept", str(port), "-cert", str(CERT), "-key", str(KEY),
                          "-naccept", "1", *args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         cwd=HERE)
    return p


def python_client(port: int, request: bytes, keylog: Path, ciphers: str, no_ems: bool) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers)
    if no_ems:
        ctx.options |= 1         # SSL_OP_NO_EXTENDED_MASTER_SECRET (OpenSSL 3.0: SSL_OP_BIT(0))
    ctx.keylog_filename = str(keylog)
    with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw) as tls:
        tls.sendall(request)
        data = b""
        while True:
            try:
                chunk = tls.recv(65536)
            except (ssl.SSLEOFError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
    return data


def rsa_case(name: str, port: int, ciphers: str, no_ems: bool) -> None:
    keylog = OUT / f"{name}.keylog"
    keylog.unlink(missing_ok=True)
    cap = Dumpcap(f"{name}.pcap", port)
    server = s_server(port, "-no_tls1_3", "-cipher", ciphers, "-WWW")
    wait_accept(server)
    got = python_client(port, b"GET /hello.txt HTTP/1.0\r\n\r\n", keylog, ciphers, no_ems)
    server.wait(timeout=10)
    cap.stop()
    print(name, len(got), got[:40])


def openssl_pair(name: str, port: int, server_args: list[str], client_args: list[str], script) -> None:
    keylog = OUT / f"{name}.keylog"
    keylog.unlink(missing_ok=True)
    cap = Dumpcap(f"{name}.pcap", port)
    server = s_server(port, *server_args, stdin=subprocess.PIPE)
    wait_accept(server)
    client = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-keylogfile", str(keylog),
                               *client_args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    time.sleep(1)
    script(server, client)
    for p in (client, server):
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    cap.stop()
    print(name, "done")


def say(proc: subprocess.Popen, text: str, pause: float = 0.5) -> None:
    proc.stdin.write(text.encode())
    proc.stdin.flush()
    time.sleep(pause)


def renego_script(server, client) -> None:
    say(client, "client: before the renegotiation\n")
    say(server, "server: before the renegotiation\n")
    say(server, "r\n", 1.5)                      # s_server: SSL_renegotiate, a HelloRequest to the client
    say(client, "client: after the renegotiation\n")
    say(server, "server: after the renegotiation\n")
    say(client, "Q\n")                           # s_client: close


def www_fetch(name: str, port: int, server_args: list[str], client_args: list[str], path: str) -> None:
    keylog = OUT / f"{name}.keylog"
    keylog.unlink(missing_ok=True)
    cap = Dumpcap(f"{name}.pcap", port)
    server = s_server(port, *server_args, "-WWW")
    wait_accept(server)
    client = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-keylogfile", str(keylog),
                             "-quiet", "-ign_eof", *client_args],
                            input=f"GET /{path} HTTP/1.0\r\n\r\n".encode(), capture_output=True, timeout=20)
    server.wait(timeout=10)
    cap.stop()
    print(name, len(client.stdout))


if __name__ == "__main__":
    which = sys.argv[1:]
    (HERE / "hello.txt").write_text("hello from the RSA key exchange lab input\n" * 3)
    body = "".join(f"line {i:04d}: the quick brown fox jumps over the lazy dog\n" for i in range(100))
    (HERE / "page.txt").write_text(body)
    if "rsa" in which:
        rsa_case("gen_tls12_rsa_noems", 14501, "AES128-GCM-SHA256", True)
        rsa_case("gen_tls12_rsa_sha384_ems", 14502, "AES256-GCM-SHA384", False)
    if "renego" in which:
        openssl_pair("gen_tls12_renego_server_chacha", 14503,
                     ["-no_tls1_3", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"], ["-no_tls1_3"], renego_script)
    if "gap" in which:
        www_fetch("gen_tls13_gap_full", 14504, ["-ciphersuites", "TLS_AES_128_GCM_SHA256", "-max_send_frag", "512"],
                  [], "page.txt")
        www_fetch("gen_tls12_chacha_gap_full", 14505, ["-no_tls1_3", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305",
                                                       "-max_send_frag", "512"], [], "page.txt")
    if "session" in which:
        www_fetch("gen_session_id", 14506, ["-no_tls1_3", "-no_ticket", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
                  [], "hello.txt")
        www_fetch("gen_tls13_for_quirks", 14507, ["-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"], [], "hello.txt")


def early_data() -> None:
    """TLS 1.3 0-RTT: a first connection gets a session ticket, the second resumes with it and sends early data."""
    port = 14508
    for name in ("gen_tls13_early_data.keylog", "sess.pem"):
        (OUT / name).unlink(missing_ok=True)
    (OUT / "early.txt").write_bytes(b"early: sent before the ServerHello (0-RTT)\n")
    cap = Dumpcap("gen_tls13_early_data.pcap", port)
    server = s_server(port, "-early_data", "-naccept", "2", stdin=subprocess.PIPE)
    wait_accept(server)
    base = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-keylogfile",
            str(OUT / "gen_tls13_early_data.keylog")]
    first = subprocess.Popen(base + ["-sess_out", str(OUT / "sess.pem")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1)
    say(first, "first connection: gets a session ticket\n")
    say(first, "Q\n")
    first.wait(timeout=10)
    time.sleep(0.5)
    second = subprocess.Popen(base + ["-sess_in", str(OUT / "sess.pem"), "-early_data", str(OUT / "early.txt")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1)
    say(second, "second connection: after the handshake\n")
    say(server, "server: hello\n")
    say(second, "Q\n")
    second.wait(timeout=10)
    server.kill()
    cap.stop()


def tshark_field(pcap: Path, name: str, display_filter: str) -> str:
    out = subprocess.run(["tshark", "-r", str(pcap), "-Y", display_filter, "-T", "fields", "-e", name],
                         capture_output=True, text=True, check=True).stdout.split()
    [value] = out
    return value


def pre_master_lines() -> None:
    """The RSA-label and PMS_CLIENT_RANDOM key logs: the pre-master secret, decrypted from the
    ClientKeyExchange with the throwaway server key (what NSS writes for RSA key exchange)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    key = serialization.load_pem_private_key(KEY.read_bytes(), None)
    for name, label in (("gen_tls12_rsa_noems", "RSA"), ("gen_tls12_rsa_sha384_ems", "PMS_CLIENT_RANDOM")):
        pcap = OUT / f"{name}.pcap"
        encrypted = tshark_field(pcap, "tls.handshake.epms", "tls.handshake.type==16")
        client_random = tshark_field(pcap, "tls.handshake.random", "tls.handshake.type==1")
        pms = key.decrypt(bytes.fromhex(encrypted), padding.PKCS1v15())
        ident = encrypted[:16] if label == "RSA" else client_random
        (OUT / f"{name}.pms.txt").write_text("# the pre-master secret, decrypted from the ClientKeyExchange with "
                                             f"the throwaway server key\n{label} {ident} {pms.hex()}\n")


def drops() -> None:
    """Records lost on the wire: whole server records dropped with editcap (one per segment here)."""
    subprocess.run(["editcap", "-F", "pcap", str(OUT / "gen_tls13_gap_full.pcap"), str(OUT / "gen_tls13_gap.pcap"), "17"],
                   check=True)
    subprocess.run(["editcap", "-F", "pcap", str(OUT / "gen_tls12_chacha_gap_full.pcap"), str(OUT / "gen_tls12_chacha_gap.pcap"),
                    "15-16"], check=True)


def quirks() -> None:
    """One capture of two connections (TLS 1.2 with a session id, TLS 1.3) and a key log for them bent every
    way key logs are bent in the wild; the clean key log beside it is what tshark is given."""
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(OUT / "gen_keylog_quirks.pcap"),
                    str(OUT / "gen_session_id.pcap"), str(OUT / "gen_tls13_for_quirks.pcap")], check=True)
    lines = {}
    for name in ("gen_session_id.keylog", "gen_tls13_for_quirks.keylog"):
        for line in (OUT / name).read_text().splitlines():
            if not line.startswith("#"):
                label, client_random, secret = line.split()
                lines[label] = (client_random, secret)
    client_random, master = lines["CLIENT_RANDOM"]
    session_id = tshark_field(OUT / "gen_session_id.pcap", "tls.handshake.session_id", "tls.handshake.type==2")

    def entry(label: str) -> str:
        return f"{label} {lines[label][0]} {lines[label][1]}"

    text = [
        "\ufeff" + entry("CLIENT_HANDSHAKE_TRAFFIC_SECRET"),                     # 1: a BOM, then an entry
        "# written by hand from two OpenSSL key logs: every way a key log is bent in the wild",
        "",
        entry("SERVER_HANDSHAKE_TRAFFIC_SECRET") + entry("CLIENT_TRAFFIC_SECRET_0"),   # 4: run together
        "   " + entry("SERVER_TRAFFIC_SECRET_0") + " " + entry("EXPORTER_SECRET") + "   ",   # 5: two on a line
        f"RSA Session-ID:{session_id} Master-Key:{master}",                     # 6: Wireshark's old format
        f"client_random {client_random} {master}",                               # 7: lower case
        f"CLIENT_RANDOM {client_random[:-2]} {master}",                          # 8: a 31-byte client random
        f"CLIENT_RANDOM {client_random} {'zz' * 48}",                            # 9: not hex
        "SSLKEYLOGFILE=/tmp/keys.txt",                                           # 10: not an entry
        "",
    ]
    (OUT / "keylog_quirks.txt").write_text("\r\n".join(text), newline="")
    (OUT / "keylog_quirks_clean.txt").write_text((OUT / "gen_session_id.keylog").read_text()
                                                 + (OUT / "gen_tls13_for_quirks.keylog").read_text())


if __name__ == "__main__" and "early" in sys.argv[1:]:
    early_data()

if __name__ == "__main__" and "post" in sys.argv[1:]:
    pre_master_lines()
    drops()
    quirks()
