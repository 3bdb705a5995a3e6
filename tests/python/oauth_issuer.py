"""A tiny OpenID Connect-style issuer for MCP Router's external identity provider tests.

    oauth_issuer.py [--port 0]

Generates an RSA key at start and serves, on 127.0.0.1:
  /.well-known/openid-configuration   issuer and jwks_uri
  /jwks                               the public key as a JWKS
  POST /mint                          signs the JSON claims it is given (RS256, with `kid`);
                                      defaults: iss = this issuer, iat = now, exp = now + 300
Prints `issuer http://127.0.0.1:PORT` on stdout once it listens. Standard library plus
PyJWT and cryptography (both in the test virtualenv as dependencies of the MCP SDK).
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

KID = "test-key-1"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_JWK = {**json.loads(RSAAlgorithm.to_jwk(KEY.public_key())), "kid": KID, "use": "sig", "alg": "RS256"}


class Handler(BaseHTTPRequestHandler):
    issuer = ""

    def answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        if self.path == "/.well-known/openid-configuration":
            self.answer(200, {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks"})
        elif self.path == "/jwks":
            self.answer(200, {"keys": [PUBLIC_JWK]})
        else:
            self.answer(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/mint":
            return self.answer(404, {"error": "not found"})
        claims = json.loads(self.rfile.read(int(self.headers["content-length"])))
        now = int(time.time())
        claims = {"iss": self.issuer, "iat": now, "exp": now + 300, **claims}
        token = jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": KID})
        self.answer(200, {"token": token})

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    Handler.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"issuer {Handler.issuer}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
