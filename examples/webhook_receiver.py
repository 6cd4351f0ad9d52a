"""A receiver for the platform's webhooks: it checks each delivery's Standard Webhooks signature
with the official `standardwebhooks` library, refuses forged, altered or stale ones, and handles
each event once although deliveries are at least once (a retry carries the same `webhook-id`).

    pip install standardwebhooks
    python examples/webhook_receiver.py --secret whsec_... --port 8001

Register its URL (`POST /webhooks/endpoints` with `{"url": "http://127.0.0.1:8001/hooks"}`) and
start it with the `secret` of that answer. It prints each event it handles as one JSON line and
each delivery it refuses on stderr. Only the standard library and `standardwebhooks` are needed.
docs/webhooks-receiver.md explains the steps.
"""

import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY_BYTES = 1024 * 1024
"""A campaign event is a few kilobytes; a larger body is refused unread."""


class Receiver(ThreadingHTTPServer):
    """Verifies with one endpoint secret. During a secret rotation the platform signs with the
    new and the old secret for a grace period, so a receiver holding either one verifies."""

    def __init__(self, address: tuple[str, int], secret: str) -> None:
        super().__init__(address, DeliveryHandler)
        self.webhook = Webhook(secret)
        # Handled webhook-ids. Kept in memory here; a real receiver stores them with the effect
        # of the event (a unique key in its database), so a restart forgets none.
        self.handled: set[str] = set()
        self.lock = threading.Lock()

    def handle_event(self, webhook_id: str, payload: dict[str, Any]) -> None:
        """What the event is for; here it is printed. `payload` is `{type, timestamp, data}`:
        `data` is the CampaignEvent (or CampaignInsight) as `campaign-events` carries it."""
        data = payload.get("data", {})
        current = data.get("current") or {}
        line = {
            "webhookId": webhook_id,
            "type": payload.get("type"),
            "campaignId": data.get("campaignId"),
            "version": data.get("version"),
            "status": current.get("status", data.get("status")),
        }
        print(json.dumps(line), flush=True)


class DeliveryHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            self.answer(413, "body too large")
            return
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            # Checks the signature over id, timestamp and the exact bytes received, and that
            # the timestamp is within five minutes (a replayed old delivery fails).
            payload = self.server.webhook.verify(body, headers)
        except (WebhookVerificationError, ValueError) as exc:
            # 4xx (other than 408, 410 and 429) is final: the platform does not retry it.
            print(f"refused {headers.get('webhook-id')!r}: {exc}", file=sys.stderr, flush=True)
            self.answer(400, "invalid signature")
            return
        webhook_id = headers["webhook-id"]
        with self.server.lock:
            if webhook_id in self.server.handled:
                self.answer(204)  # a retry of a delivery already handled: acknowledge it again
                return
            # Handled before it is remembered: if handling raises, the 500 makes the platform
            # send it again later.
            self.server.handle_event(webhook_id, payload)
            self.server.handled.add(webhook_id)
        self.answer(204)

    def answer(self, status: int, message: str = "") -> None:
        body = message.encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the events and the refusals are the output."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--secret",
        default=os.environ.get("WEBHOOK_SECRET"),
        help="the endpoint's whsec_ secret (default: $WEBHOOK_SECRET)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("--secret (or WEBHOOK_SECRET) is required")
    server = Receiver((args.host, args.port), args.secret)
    print(f"listening on http://{args.host}:{server.server_port}/", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
