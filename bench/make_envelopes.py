#!/usr/bin/env python3
"""Writes a pool of distinct SDK envelopes for bench/sdk.sh: the Flask error sentry-python sent
(tests/fixtures/sentry-sdk/003-default-flask.envelope) with a new event id each, spread over
ISSUES issues (the exception type is numbered). One envelope a line, its newlines written as
\\x01 (the wrk script puts them back); one file per load-generator thread (`<prefix>.N`).
"""
import json
import sys

fixture, prefix, total, files, issues = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
text = open(fixture, "rb").read().decode()
header_line, item_line, event_line = text.split("\n")[:3]
header = json.loads(header_line)
event = json.loads(event_line)
outputs = [open(f"{prefix}.{i}", "w") for i in range(files)]
for n in range(total):
    header["event_id"] = f"{n:032x}"
    event["event_id"] = header["event_id"]
    event["exception"]["values"][-1]["type"] = f"ZeroDivisionError{n % issues}"
    payload = json.dumps(event, separators=(",", ":"))
    item = json.dumps({"type": "event", "content_type": "application/json", "length": len(payload.encode())})
    envelope = "\n".join([json.dumps(header, separators=(",", ":")), item, payload]) + "\n"
    outputs[n % files].write(envelope.replace("\n", "\x01") + "\n")
for output in outputs:
    output.close()
