"""Verifies pagesync's events with the official Standard Webhooks library.

Usage: verify_events.py SECRET FILE, where FILE holds a JSON array of
{"headers": {name: value}, "body": "<the exact body, as text>"}. Exits 0 when every
event verifies (and a tampered copy of each does not), else 1 with the reason.
"""

import json
import sys

from standardwebhooks import Webhook, WebhookVerificationError


def main() -> int:
    secret, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        events = json.load(f)
    if not events:
        print("no events to verify")
        return 1
    hook = Webhook(secret)
    for event in events:
        body = event["body"].encode("utf-8")
        payload = hook.verify(body, event["headers"])
        if not isinstance(payload, dict) or "type" not in payload:
            print(f"verified but not an event: {payload!r}")
            return 1
        try:
            hook.verify(body + b" ", event["headers"])
        except WebhookVerificationError:
            pass
        else:
            print("a tampered body verified")
            return 1
    print(f"{len(events)} events verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
