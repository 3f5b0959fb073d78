#!/usr/bin/env python3
"""Writes a pool of signed Sentry `event_alert.triggered` callbacks: TOTAL distinct events spread
over ISSUES issues (event n belongs to issue n % ISSUES). Lines are `<signature>\t<compact JSON>`,
split into one file per load-generator thread (`<prefix>.0`, `<prefix>.1`, ...)."""
import hashlib
import hmac
import json
import sys

fixture, secret, prefix, total, issues, files = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
first_event = int(sys.argv[7]) if len(sys.argv) > 7 else 0  # event numbers start here
template = json.load(open(fixture))
outputs = [open(f"{prefix}.{i}", "w") for i in range(files)]
event = template["data"]["event"]
for n in range(first_event, first_event + total):
    issue = 8_000_000 + n % issues
    event["issue_id"] = str(issue)
    event["event_id"] = f"{n:032x}"
    event["title"] = f"TimeoutError: upstream {issue} did not answer"
    event["web_url"] = f"https://sentry.io/organizations/acme/issues/{issue}/events/{n:032x}/"
    body = json.dumps(template, separators=(",", ":"))
    signature = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    outputs[n % files].write(f"{signature}\t{body}\n")
for output in outputs:
    output.close()
