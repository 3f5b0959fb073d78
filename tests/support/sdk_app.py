"""A small app using the real sentry-sdk against herald: the DSN is argv[1]. It does what a Flask
shop's code does: an exception caught and captured, a message, a logged error, and an unhandled
error in a Flask route, each with the secrets sentry-python sends by default (frame variables,
source lines, a query string, breadcrumb data).

argv[2] "gzip" sends gzip instead of brotli; "storm" sends five messages and nothing else (to
meet herald's per-project quota), then prints how many the SDK dropped. argv[3], if given, is
the release (else shop@1.4.2)."""
import logging
import sys

import sentry_sdk
from flask import Flask

mode = sys.argv[2] if len(sys.argv) > 2 else ""
sentry_sdk.init(
    dsn=sys.argv[1],
    release=sys.argv[3] if len(sys.argv) > 3 else "shop@1.4.2",
    environment="production",
    server_name="web-1",
    _experiments={"transport_compression_algo": "gzip"} if mode == "gzip" else {},
)
if mode == "storm":
    import time

    for n in range(5):
        sentry_sdk.capture_message(f"storm {n}")
        sentry_sdk.flush(timeout=10)
        time.sleep(0.2)
    print("sent")
    sys.exit(0)
sentry_sdk.add_breadcrumb(category="auth", message="user logged in", data={"email": "alice@example.com"})


def charge(order_id):
    card_number = "4111111111111111"  # noqa: F841 (a frame variable the SDK sends)
    api_token = "tok_live_secret"  # noqa: F841
    return {"order": order_id}["missing"]


try:
    charge(7)
except KeyError:
    sentry_sdk.capture_exception()

sentry_sdk.capture_message("Payment provider timeout for order 7")
logging.getLogger("shop.payments").error("Charge failed for order %s", 7)

app = Flask(__name__)


@app.route("/checkout/<order_id>")
def checkout(order_id):
    password = "hunter2"  # noqa: F841
    return str(1 / (int(order_id) - int(order_id)))


app.test_client().get("/checkout/7?coupon=SPRING&token=abc")
sentry_sdk.flush(timeout=10)
print("sent")
