//! Every answer reaches its client, even one given before the request's body was read.
//!
//! A server that closes a connection with bytes still unread in its socket makes the kernel send
//! a reset, and a client that is still writing its body (a plain blocking one: Python's urllib,
//! curl) then gets a connection error instead of the answer. So around every request, the
//! handler reads the body through a handle, and once it has answered, what the client still
//! sends is read and dropped before the answer goes out: the 401 of a caller without
//! credentials, the 413 of a body over the limit, a 404 or a 503, whichever handler gave it. A
//! handler that read the whole body leaves nothing to drain.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

/// The most of an unread body herald reads to let its client hear the answer, and for how long:
/// nothing of it is kept.
const DRAIN_MAX_BYTES: usize = 16 * 1024 * 1024;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

/// The middleware (see the module's doc). Not after a 408: that body did not arrive in time, and
/// is not waited for again.
pub(super) async fn drain_unread_bodies(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let handle = Handle(Arc::new(Mutex::new(Some(body))));
    let unread = handle.0.clone();
    let response = next
        .run(Request::from_parts(parts, Body::new(handle)))
        .await;
    if response.status() != StatusCode::REQUEST_TIMEOUT {
        let rest = lock(&unread).take();
        if let Some(rest) = rest {
            drain(rest).await;
        }
    }
    response
}

/// Reads and drops what is left of `body`, within the bounds above.
async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, async {
        let mut drained = 0;
        while let Some(Ok(frame)) = body.frame().await {
            drained += frame.data_ref().map_or(0, Bytes::len);
            if drained > DRAIN_MAX_BYTES {
                break;
            }
        }
    })
    .await;
}

/// The request's body as the handler sees it; the body itself stays where the middleware finds
/// it again once the handler is done with it.
struct Handle(Arc<Mutex<Option<Body>>>);

fn lock(body: &Mutex<Option<Body>>) -> MutexGuard<'_, Option<Body>> {
    // A handler that panicked mid-read leaves a body that can still be drained.
    body.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HttpBody for Handle {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match lock(&self.0).as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        lock(&self.0).as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.0)
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}
