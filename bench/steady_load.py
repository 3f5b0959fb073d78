#!/usr/bin/env python3
"""Posts signed callbacks from a pool at a steady rate over keep-alive connections and records,
per issue id, when the callback was sent if herald answered 202 (Unix microseconds). Usage:
    steady_load.py POOL_FILE HOST PORT RATE SECONDS CONNECTIONS OUT_JSON"""
import asyncio, json, sys, time

pool, host, port, rate, seconds, connections, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
lines = open(pool).read().splitlines()
total = min(len(lines), int(rate * seconds))
accepted = {}
failed = 0

async def worker(index):
    global failed
    reader, writer = await asyncio.open_connection(host, port)
    start = time.monotonic()
    for n in range(index, total, connections):
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        signature, body = lines[n].split("\t", 1)
        data = body.encode()
        request = (f"POST /hooks/sentry HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   f"Sentry-Hook-Resource: issue\r\nSentry-Hook-Signature: {signature}\r\n"
                   f"Content-Length: {len(data)}\r\n\r\n").encode() + data
        sent = int(time.time() * 1_000_000)
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        if head.startswith(b"HTTP/1.1 202"):
            issue = json.loads(body)["data"]["issue"]["id"]
            accepted[issue] = sent
        else:
            failed += 1
    writer.close()

async def main():
    await asyncio.gather(*(worker(i) for i in range(connections)))

started = time.monotonic()
asyncio.run(main())
elapsed = time.monotonic() - started
json.dump({"accepted": accepted, "failed": failed, "seconds": elapsed}, open(out, "w"))
