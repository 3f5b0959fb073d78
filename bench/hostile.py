#!/usr/bin/env python3
"""Hostile clients against the release herald, on loopback, each measured in one run:

  slow bodies   N connections each sending a signed-looking 1 MiB body but its last byte
                (server.body_timeout 30 s): herald's RSS while they hold on, and what a real
                signed callback gets meanwhile.
  idle          N connections that send half a request head, or nothing: how many herald still
                holds after server.header_timeout, and whether a callback is answered.
  scrapes       64 concurrent /metrics scrapers in a loop while callbacks are posted one by one:
                the callbacks' p50/p99, beside the same without scrapers, over Q queued jobs.

  python3 bench/hostile.py [HERALD_BIN]      # default target/release/herald
Stops by itself; sends only to 127.0.0.1.
"""
import hashlib, hmac, json, os, socket, statistics, subprocess, sys, tempfile, threading, time
import urllib.request

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/herald"
SECRET = "bench-secret"
FIXTURE = open("tests/fixtures/sentry/issue-created.json", "rb").read()


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port


def start(work, extra=""):
    port = free_port()
    config = f"""
[server]
listen = "127.0.0.1:{port}"
data_dir = "{work}/data"
body_limit = "1MiB"
{extra}
[sentry]
client_secrets = ["{SECRET}"]
[[targets]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{free_port()}/refused"
retry = ["1h"]
"""
    open(f"{work}/herald.toml", "w").write(config)
    proc = subprocess.Popen([BIN, "serve", "--config", f"{work}/herald.toml"],
                            stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "error"})
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1); break
        except Exception:
            time.sleep(0.05)
    return proc, port


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def callback(port, n):
    payload = json.loads(FIXTURE)
    payload["data"]["issue"]["id"] = str(10_000_000 + n)
    body = json.dumps(payload).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/hooks/sentry", data=body, headers={
        "Content-Type": "application/json", "Sentry-Hook-Resource": "issue",
        "Sentry-Hook-Signature": signature})
    started = time.perf_counter()
    try:
        status = urllib.request.urlopen(request, timeout=30).status
    except urllib.error.HTTPError as error:
        status = error.code
    except Exception:
        status = 0
    return status, (time.perf_counter() - started) * 1000


def slow_bodies(count):
    with tempfile.TemporaryDirectory() as work:
        proc, port = start(work)
        idle = rss_mib(proc.pid)
        held = []
        head = (f"POST /hooks/sentry HTTP/1.1\r\nHost: x\r\nSentry-Hook-Resource: issue\r\n"
                f"Sentry-Hook-Signature: 00\r\nContent-Length: {1 << 20}\r\n\r\n").encode()
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port)); s.sendall(head)
            held.append(s)
        for s in held:
            s.sendall(b" " * ((1 << 20) - 1))
        time.sleep(2)
        peak = rss_mib(proc.pid)
        status, ms = callback(port, 1)
        for s in held: s.close()
        proc.terminate(); proc.wait()
        print(f"slow bodies: {count} connections holding 1 MiB less a byte: RSS {idle:.0f} -> {peak:.0f} MiB; "
              f"a signed callback meanwhile: HTTP {status} in {ms:.0f} ms")


def idle_connections(count):
    with tempfile.TemporaryDirectory() as work:
        proc, port = start(work, 'header_timeout = "2s"')
        held = []
        for i in range(count):
            s = socket.create_connection(("127.0.0.1", port))
            if i % 2: s.sendall(b"POST /hooks/sentry HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        time.sleep(3)
        status, ms = callback(port, 2)
        still_open = 0
        for s in held:
            s.setblocking(False)
            try:
                still_open += 1 if s.recv(1) else 0
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
            s.close()
        proc.terminate(); proc.wait()
        print(f"idle: {count} silent or half-sent connections; after header_timeout (2 s) herald holds "
              f"{still_open}; a signed callback: HTTP {status} in {ms:.0f} ms")


def scrapes(queued):
    with tempfile.TemporaryDirectory() as work:
        proc, port = start(work)
        subprocess.run(["taskset", "-pc", "0", str(proc.pid)], stdout=subprocess.DEVNULL)
        for n in range(queued):
            callback(port, 100_000 + n)
        def latencies(n0):
            return sorted(callback(port, n0 + i)[1] for i in range(300))
        quiet = latencies(500_000)
        # 64 scrapers in a loop, from wrk on the other core (not from this process's threads,
        # whose lock would be measured instead of herald).
        wrk = subprocess.Popen(["taskset", "-c", "1", "wrk", "-t1", "-c64", "-d60s", f"http://127.0.0.1:{port}/metrics"],
                               stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        busy = latencies(600_000)
        wrk.terminate(); out = wrk.communicate()[0]
        rss = rss_mib(proc.pid)
        proc.terminate(); proc.wait()
        q = lambda xs, p: xs[int(len(xs) * p) - 1]
        print(f"scrapes: {queued} jobs queued; callbacks alone p50 {q(quiet, .5):.1f} / p99 {q(quiet, .99):.1f} ms; "
              f"with 64 scrapers in a loop p50 {q(busy, .5):.1f} / p99 {q(busy, .99):.1f} ms; RSS {rss:.0f} MiB")


slow_bodies(int(os.environ.get("SLOW", 300)))
idle_connections(int(os.environ.get("IDLE", 2000)))
scrapes(int(os.environ.get("QUEUED", 20000)))
