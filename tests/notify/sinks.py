"""Loopback servers for tests/stack_report.rs: an SMTP server (aiosmtpd)
that takes one user's login, and an HTTP server that takes webhook POSTs
on one path.

Usage: sinks.py OUT USER PASSWORD HOOK_PATH CERT KEY [plain]

The SMTP server offers STARTTLS with CERT (PEM, with KEY) and takes a
login only once the session is encrypted. With `plain`, it offers no
STARTTLS and takes a login in clear text, as a server would whose
STARTTLS offer a man in the middle stripped. Every message received is appended to OUT as one JSON line, decoded as a
mail reader would (headers, body) or as the webhook's JSON. Prints
"smtp PORT" and "http PORT", then serves until its stdin closes.
Both servers listen on 127.0.0.1 only.
"""

import email
import email.policy
import json
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

OUT, USER, PASSWORD, HOOK_PATH, CERT, KEY = sys.argv[1:7]
PLAIN = sys.argv[7:8] == ["plain"]
LOCK = threading.Lock()


def record(entry):
    with LOCK, open(OUT, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == USER
        and auth_data.password.decode() == PASSWORD
    )
    return AuthResult(success=ok, handled=False, auth_data=USER if ok else None)


class Mail:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        record(
            {
                "kind": "email",
                "login": session.auth_data if session.authenticated else None,
                "tls": session.ssl is not None,
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "headers": {k.lower(): str(v) for k, v in message.items()},
                "body": message.get_content(),
            }
        )
        return "250 OK"


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != HOOK_PATH:
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"no such hook")
            return
        record(
            {
                "kind": "webhook",
                "content_type": self.headers.get("Content-Type"),
                "json": json.loads(body),
            }
        )
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(CERT, KEY)
    smtp = Controller(
        Mail(),
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticate,
        tls_context=None if PLAIN else tls,
        # AUTH only after STARTTLS (aiosmtpd's default, said here), except
        # for the stripped server, which takes it in clear text.
        auth_require_tls=not PLAIN,
    )
    smtp.start()
    http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    print(f"smtp {smtp.port}", flush=True)
    print(f"http {http.server_address[1]}", flush=True)
    sys.stdin.read()
    http.shutdown()
    smtp.stop()


if __name__ == "__main__":
    main()
