"""The flaky webhook receiver, run as its own process so it can be killed -9 and restarted:
`python -m chaos.receiver --port P --secret whsec_... --record deliveries.jsonl`.

Every POST is verified with the official `standardwebhooks` library (a bad signature is a 400 and
is recorded as such). A verified delivery is then, at random, answered 500, held past the
platform's timeout, or accepted: only an accepted one is appended to the record file (written
before the 204 leaves, so a kill never loses an acknowledged delivery).
"""

import argparse
import asyncio
import os
import random
from typing import IO

import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class FlakyReceiver:
    def __init__(
        self, secret: str, record: IO[bytes], *, fail_rate: float, hang_rate: float, hang: float
    ) -> None:
        self.webhook = Webhook(secret)
        self.record = record
        self.fail_rate = fail_rate
        self.hang_rate = hang_rate
        self.hang = hang
        self.rng = random.Random(os.getpid())

    def _write(self, entry: dict[str, object]) -> None:
        self.record.write(orjson.dumps(entry) + b"\n")
        self.record.flush()

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = dict(request.headers)
        webhook_id = headers.get("webhook-id", "")
        try:
            self.webhook.verify(raw, headers)
        except WebhookVerificationError:
            self._write({"kind": "bad_signature", "webhookId": webhook_id})
            return web.Response(status=400)
        roll = self.rng.random()
        if roll < self.fail_rate:
            return web.Response(status=500)
        if roll < self.fail_rate + self.hang_rate:
            await asyncio.sleep(self.hang)  # past the platform's timeout: it must retry
            return web.Response(status=504)
        data = orjson.loads(raw).get("data", {})
        self._write(
            {
                "kind": "delivered",
                "webhookId": webhook_id,
                "campaignId": data.get("campaignId"),
                "version": data.get("version"),
                "type": data.get("type"),
            }
        )
        return web.Response(status=204)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chaos.receiver", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--record", required=True, help="JSONL file the deliveries are added to")
    parser.add_argument("--fail-rate", type=float, default=0.2)
    parser.add_argument("--hang-rate", type=float, default=0.05)
    parser.add_argument("--hang", type=float, default=3.0, help="seconds a held answer waits")
    args = parser.parse_args()
    with open(args.record, "ab") as record:
        receiver = FlakyReceiver(
            args.secret, record, fail_rate=args.fail_rate, hang_rate=args.hang_rate, hang=args.hang
        )
        app = web.Application()
        app.router.add_post("/{tail:.*}", receiver.handle)
        web.run_app(app, host="127.0.0.1", port=args.port, print=None, handle_signals=True)


if __name__ == "__main__":
    main()
