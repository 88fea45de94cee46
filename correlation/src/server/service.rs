use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, Request, Response};
use telltale_core::correlation::{self, CorrelationId, InvalidCorrelationId};
use telltale_core::grpc::is_grpc;
use tower_service::Service;

use super::ResponseBody;
use super::future::{Refusal, ResponseFuture};
use super::layer::Shared;
use crate::metrics::Generated;

/// Middleware that gives every request a [`CorrelationId`]: see the
/// [module docs](super).
#[derive(Clone, Debug)]
pub struct CorrelationService<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S> CorrelationService<S> {
    telltale_core::inner_service_accessors!();
}

/// What the request's headers say.
enum Incoming<'a> {
    /// An acceptable ID; `alias` is the alias header it came from, `None`
    /// when it came from the primary header.
    Accepted {
        id: CorrelationId,
        alias: Option<&'a HeaderName>,
    },
    /// No configured header is present.
    Missing,
    /// The first present header held an unacceptable value.
    Rejected {
        header: &'a HeaderName,
        rejection: InvalidCorrelationId,
        len: usize,
    },
    /// Incoming IDs are not trusted.
    Untrusted,
}

impl Shared {
    fn read<'a>(&'a self, headers: &HeaderMap) -> Incoming<'a> {
        if !self.trust_incoming {
            return Incoming::Untrusted;
        }
        let names = std::iter::once(&self.header).chain(self.aliases.iter());
        for (i, name) in names.enumerate() {
            if let Some(value) = headers.get(name) {
                let len = value.len();
                return match self.rule.accept(value.clone()) {
                    Ok(id) => Incoming::Accepted {
                        id,
                        alias: (i > 0).then_some(name),
                    },
                    Err(rejection) => Incoming::Rejected {
                        header: name,
                        rejection,
                        len,
                    },
                };
            }
        }
        Incoming::Missing
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CorrelationService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        let mut from_alias = None;
        let (id, write_header) = match shared.read(req.headers()) {
            Incoming::Accepted { id, alias } => {
                from_alias = alias;
                (id, alias.is_some())
            }
            Incoming::Missing => {
                if shared.require {
                    return ResponseFuture::refused(Refusal {
                        grpc: is_grpc(req.headers()),
                        message: shared.missing_message.clone(),
                    });
                }
                shared.counters.generated(Generated::Missing);
                (CorrelationId::generate(), true)
            }
            Incoming::Rejected {
                header,
                rejection,
                len,
            } => {
                shared.counters.rejected(&rejection);
                // Never the value itself: only where, how long, and why.
                tracing::debug!(
                    header = header.as_str(),
                    len,
                    reason = rejection.reason(),
                    %rejection,
                    "incoming correlation ID rejected"
                );
                if shared.require {
                    return ResponseFuture::refused(Refusal {
                        grpc: is_grpc(req.headers()),
                        message: format!("invalid {header} header: {rejection}\n").into(),
                    });
                }
                shared.counters.generated(Generated::Rejected);
                (CorrelationId::generate(), true)
            }
            Incoming::Untrusted => {
                shared.counters.generated(Generated::Untrusted);
                (CorrelationId::generate(), true)
            }
        };
        if write_header {
            // The handler reads the ID the server settled on, also from the
            // primary header (a rejected value there is overwritten).
            req.headers_mut()
                .insert(&shared.header, id.to_header_value());
        }
        req.extensions_mut().insert(id.clone());
        tracing::Span::current().record("correlation_id", id.as_str());
        // For an outer layer with no span to record it on.
        correlation::announce(&id);

        // Echoed in the primary header, and in the alias the caller used.
        let echo = shared
            .echo
            .then(|| (shared.header.clone(), from_alias.cloned()));
        let inner = &mut self.inner;
        ResponseFuture::scoped(id, echo, || inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::server::CorrelationLayer;

    /// Answers with what the inner service saw in `call` (synchronously) and
    /// in its future: `header|extension|current in call|current in future`.
    fn inner() -> impl Service<
        Request<Empty<Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        let text = |id: Option<CorrelationId>| id.map(|i| i.to_string()).unwrap_or_default();
        service_fn(move |req: Request<Empty<Bytes>>| {
            let header = req
                .headers()
                .get("x-correlation-id")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            let ext = text(req.extensions().get::<CorrelationId>().cloned());
            let in_call = text(correlation::current());
            async move {
                let in_future = text(correlation::current());
                let body = format!("{header}|{ext}|{in_call}|{in_future}");
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            }
        })
    }

    async fn send(layer: &CorrelationLayer, headers: &[(&str, &[u8])]) -> (Response<()>, String) {
        let mut req = Request::new(Empty::new());
        for (k, v) in headers {
            req.headers_mut().append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(v).unwrap(),
            );
        }
        let res = layer.layer(inner()).oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            Response::from_parts(parts, ()),
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_id_is_everywhere_the_inner_service_looks() {
        let layer = CorrelationLayer::builder()
            .alias("x-request-id")
            .build()
            .unwrap();
        let (res, body) = send(&layer, &[("x-request-id", b"alias-1")]).await;
        assert_eq!(body, "alias-1|alias-1|alias-1|alias-1");
        assert_eq!(res.headers()["x-correlation-id"], "alias-1");
        assert_eq!(res.headers()["x-request-id"], "alias-1");

        // The default layer reads x-request-id too; the primary header wins.
        let default = CorrelationLayer::new();
        let (res, body) = send(&default, &[("x-request-id", b"lb-7")]).await;
        assert_eq!(body, "lb-7|lb-7|lb-7|lb-7");
        assert_eq!(res.headers()["x-request-id"], "lb-7");
        assert_eq!(res.headers()["x-correlation-id"], "lb-7");
        let (res, body) = send(
            &default,
            &[("x-request-id", b"lb-8"), ("x-correlation-id", b"ours-8")],
        )
        .await;
        assert_eq!(body, "ours-8|ours-8|ours-8|ours-8");
        assert_eq!(res.headers()["x-correlation-id"], "ours-8");
        assert!(res.headers().get("x-request-id").is_none());

        // A rejected primary value is overwritten on the request.
        let (res, body) = send(&layer, &[("x-correlation-id", b"no spaces")]).await;
        let id = res.headers()["x-correlation-id"].to_str().unwrap();
        assert_eq!(body, [id; 4].join("|"));
        assert!(!body.contains("no spaces"));

        // No ID outside the request.
        assert_eq!(correlation::current(), None);
    }

    #[tokio::test]
    async fn refusals_say_why_without_calling_the_service() {
        let layer = CorrelationLayer::builder()
            .require_header(true)
            .build()
            .unwrap();
        let (res, body) = send(&layer, &[]).await;
        assert_eq!(res.status(), 400);
        assert_eq!(
            body,
            "missing required header x-correlation-id (or x-request-id)\n"
        );
        let (res, body) = send(&layer, &[("x-correlation-id", b"")]).await;
        assert_eq!(res.status(), 400);
        assert_eq!(body, "invalid x-correlation-id header: empty\n");
        let (res, body) = send(
            &layer,
            &[
                ("x-correlation-id", b""),
                ("content-type", b"application/grpc+proto"),
            ],
        )
        .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["grpc-status"], "3");
        assert_eq!(
            res.headers()["grpc-message"],
            "invalid x-correlation-id header: empty"
        );
        assert_eq!(body, "");
    }
}
