//! HTTP/2 answers given before the request body was read: a 401 or 403 decided from the
//! headers, a 413 from `Content-Length`, a 404 or 405. Over HTTP/2 the unread rest of the
//! body would end the stream with a reset right behind the answer, and clients still
//! sending (curl, for one) then report a framing error instead of the answer. So the
//! request middleware ([`crate::build_app`]) keeps a handle on the body ([`Body::share`])
//! and, once the route has answered, reads and discards what the route left unread
//! ([`Body::discard_rest`]) before the answer goes out: the stream then ends normally.
//!
//! Discarding is bounded: at most twice the larger body limit and within `body_timeout_ms`;
//! a body declared larger than that is not read at all. Past the bound the answer still goes
//! out, followed by the reset HTTP/2 prescribes (`RST_STREAM NO_ERROR`). HTTP/1.1 needs none
//! of this: actix closes a connection whose body was left unread, after the answer.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::PayloadError;
use actix_web::http::{header, Version};
use actix_web::web::Bytes;
use actix_web::HttpMessage as _;
use futures_util::{Stream, StreamExt};

/// The request body, shared between the route (which reads what it needs) and the request
/// middleware (which discards the rest).
pub struct Body {
    payload: Rc<RefCell<Payload>>,
    /// The request's `Content-Length`, when it has a valid one.
    declared: Option<u64>,
}

/// What the route reads: the shared body, chunk by chunk.
struct RouteSide(Rc<RefCell<Payload>>);

impl Stream for RouteSide {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.borrow_mut().poll_next_unpin(cx)
    }
}

impl Body {
    /// For an HTTP/2 request, replaces its body by a shared one and returns the other handle;
    /// `None` for HTTP/1.x.
    pub fn share(req: &mut ServiceRequest) -> Option<Body> {
        if req.version() != Version::HTTP_2 {
            return None;
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let payload = Rc::new(RefCell::new(req.take_payload()));
        let route_side: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(RouteSide(payload.clone()));
        req.set_payload(Payload::from(route_side));
        Some(Body { payload, declared })
    }

    /// Reads and discards what the route left of the body, up to `most` bytes and within
    /// `timeout`; nothing when the body is declared larger than `most`.
    pub async fn discard_rest(self, most: u64, timeout: Duration) {
        if self.declared.is_some_and(|n| n > most) {
            return;
        }
        let drain = async {
            let mut discarded = 0u64;
            while discarded <= most {
                let next = futures_util::future::poll_fn(|cx| {
                    self.payload.borrow_mut().poll_next_unpin(cx)
                })
                .await;
                match next {
                    Some(Ok(chunk)) => discarded += chunk.len() as u64,
                    Some(Err(_)) | None => break,
                }
            }
        };
        let _ = actix_rt::time::timeout(timeout, drain).await;
    }
}
