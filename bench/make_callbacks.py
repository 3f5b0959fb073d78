#!/usr/bin/env python3
"""Writes a pool of distinct, signed Sentry `issue.created` callbacks for the intake benchmark.

Each line is `<signature>\t<compact JSON body>`; the body is the issue-created fixture with a
unique issue id, short id, title and timestamps, so no two callbacks are the same. The pool is
split into one file per load-generator thread (`<prefix>.0`, `<prefix>.1`, ...).
"""
import hashlib
import hmac
import json
import sys

fixture, secret, prefix, total, files = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
template = json.load(open(fixture))
outputs = [open(f"{prefix}.{i}", "w") for i in range(files)]
for n in range(total):
    payload = json.loads(json.dumps(template))
    issue = payload["data"]["issue"]
    issue["id"] = str(7_000_000_000 + n)
    issue["shortId"] = f"BENCH-{n}"
    issue["title"] = f"ValueError: benchmark callback {n}"
    issue["web_url"] = f"https://example-org.sentry.io/issues/{7_000_000_000 + n}/"
    body = json.dumps(payload, separators=(",", ":"))  # compact and ASCII-only, as Sentry sends
    signature = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    outputs[n % files].write(f"{signature}\t{body}\n")
for output in outputs:
    output.close()
