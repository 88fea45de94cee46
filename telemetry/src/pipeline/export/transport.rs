//! The network side of OTLP export: one connector for both transports (TCP,
//! then rustls when the endpoint is `https://`) that remembers why the last
//! connection failed, so an export failure can be logged with its real cause.
//!
//! Written here rather than taken from hyper-rustls or tonic's TLS: both
//! choose TLS from the request's scheme and keep the handshake's error behind
//! `client error (Connect)` / `transport error`; telltale needs one TLS
//! configuration for gRPC and HTTP (system roots, custom CA, client
//! certificate) and the cause of a failed connection.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use telltale_core::BoxError;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::pipeline::settings::OtlpTls;

/// Why the last connection or request of one exporter failed, rendered.
#[derive(Clone, Debug, Default)]
pub(crate) struct LastCause(Arc<Mutex<Option<String>>>);

impl LastCause {
    /// Remembers `error` (its whole source chain, classified).
    pub(crate) fn set(&self, error: &(dyn StdError + 'static)) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(describe(error));
        }
    }

    /// The cause remembered since the last call, if any.
    pub(crate) fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// One line for an error and its sources, with the TLS verdict first when
/// the chain holds a rustls error ("the collector's certificate is not
/// trusted" rather than `invalid peer certificate: UnknownIssuer` deep in the
/// chain).
pub(crate) fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut verdict = None;
    let mut current = Some(error);
    let mut depth = 0;
    while let Some(e) = current {
        depth += 1;
        if depth > 16 {
            break;
        }
        if verdict.is_none() {
            verdict = tls_verdict(e);
        }
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        // An io::Error's `source()` skips the error it wraps: look at it.
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) if e.source().is_none() => Some(inner as &(dyn StdError + 'static)),
            _ => e.source(),
        };
    }
    let chain = parts.join(": ");
    match verdict {
        Some(v) => format!("{v} ({chain})"),
        None => chain,
    }
}

#[cfg(feature = "tls")]
fn tls_verdict(e: &(dyn StdError + 'static)) -> Option<&'static str> {
    use rustls::{AlertDescription, CertificateError, Error};
    let e = e.downcast_ref::<Error>().or_else(|| {
        e.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Error>())
    })?;
    Some(match e {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the collector's TLS certificate is not trusted (unknown issuer: set \
             OTEL_EXPORTER_OTLP_CERTIFICATE to the CA that signed it)"
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "the collector's TLS certificate is not valid for the endpoint's host name"
        }
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "the collector's TLS certificate has expired"
        }
        Error::InvalidCertificate(_) => "the collector's TLS certificate is not trusted",
        Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::HandshakeFailure,
        ) => "the collector refused the TLS handshake (does it require a client certificate?)",
        _ => "TLS handshake with the collector failed",
    })
}

#[cfg(not(feature = "tls"))]
fn tls_verdict(_: &(dyn StdError + 'static)) -> Option<&'static str> {
    None
}

/// The stream a [`Connector`] yields.
#[cfg(feature = "tls")]
pub(crate) type Io = hyper_rustls::MaybeHttpsStream<TokioIo<TcpStream>>;
/// The stream a [`Connector`] yields.
#[cfg(not(feature = "tls"))]
pub(crate) type Io = TokioIo<TcpStream>;

#[cfg(feature = "tls")]
#[derive(Clone)]
struct Tls {
    connector: tokio_rustls::TlsConnector,
    server_name: rustls_pki_types::ServerName<'static>,
}

/// TCP to the endpoint's host and port, then TLS when the endpoint is
/// `https://` (whatever the scheme of the URI it is called with: tonic is
/// given `http://` so that it does not try TLS of its own). Failures are
/// remembered in its [`LastCause`].
#[derive(Clone)]
pub(crate) struct Connector {
    http: HttpConnector,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
    cause: LastCause,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector for `endpoint`; `alpn` is the protocol offered over TLS
    /// (`h2` for gRPC, `http/1.1` for HTTP).
    pub(crate) fn new(
        endpoint: &Uri,
        tls: &OtlpTls,
        alpn: &[u8],
        cause: LastCause,
    ) -> Result<Self, BoxError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = endpoint.scheme_str() == Some("https");
        #[cfg(feature = "tls")]
        let tls = if https {
            let host = endpoint
                .host()
                .ok_or("the endpoint has no host")?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let server_name = rustls_pki_types::ServerName::try_from(host)?;
            let mut config = super::tls::client_config(tls)?;
            config.alpn_protocols = vec![alpn.to_vec()];
            Some(Tls {
                connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
                server_name,
            })
        } else {
            None
        };
        #[cfg(not(feature = "tls"))]
        {
            let _ = (tls, alpn);
            if https {
                return Err(
                    "https:// endpoints need the `tls` feature of telltale-telemetry".into(),
                );
            }
        }
        Ok(Connector {
            http,
            #[cfg(feature = "tls")]
            tls,
            cause,
        })
    }
}

impl Service<Uri> for Connector {
    type Response = Io;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Io, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connect = self.http.call(uri);
        let cause = self.cause.clone();
        #[cfg(feature = "tls")]
        let tls = self.tls.clone();
        Box::pin(async move {
            let result: Result<Io, BoxError> = async {
                let tcp = connect.await?;
                #[cfg(feature = "tls")]
                {
                    match tls {
                        Some(tls) => {
                            let stream = tls
                                .connector
                                .connect(tls.server_name, TokioIo::new(tcp))
                                .await?;
                            Ok(hyper_rustls::MaybeHttpsStream::Https(TokioIo::new(stream)))
                        }
                        None => Ok(hyper_rustls::MaybeHttpsStream::Http(tcp)),
                    }
                }
                #[cfg(not(feature = "tls"))]
                {
                    Ok(tcp)
                }
            }
            .await;
            if let Err(e) = &result {
                cause.set(&**e);
            }
            result
        })
    }
}

/// The HTTP client of OTLP/HTTP export: opentelemetry-http's hyper client
/// over a [`Connector`], remembering why a request failed (opentelemetry-otlp
/// reports every failed request as `network error`).
#[derive(Debug)]
pub(crate) struct HttpClient {
    inner: opentelemetry_http::hyper::HyperClient<Connector>,
    cause: LastCause,
    timeout: std::time::Duration,
}

impl HttpClient {
    pub(crate) fn new(connector: Connector, timeout: std::time::Duration) -> Self {
        HttpClient {
            cause: connector.cause.clone(),
            inner: opentelemetry_http::hyper::HyperClient::new(connector, timeout, None),
            timeout,
        }
    }
}

impl opentelemetry_http::HttpClient for HttpClient {
    // The expansion of `#[async_trait]`, which the trait is declared with.
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: http::Request<bytes::Bytes>,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError>>
                + Send
                + 'async_trait,
        >,
    >
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let result = self.inner.send_bytes(request).await;
            if let Err(e) = &result {
                if e.is::<tokio::time::error::Elapsed>() {
                    if let Ok(mut slot) = self.cause.0.lock() {
                        *slot = Some(format!("no answer within {:?}", self.timeout));
                    }
                } else if self.cause.0.lock().is_ok_and(|slot| slot.is_none()) {
                    // A connection failure was already described by the
                    // connector; anything else is described here.
                    self.cause.set(&**e);
                }
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_joins_the_chain_without_repeats() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        assert_eq!(describe(&e), "client error (Connect): Connection refused");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn untrusted_certificates_say_so() {
        let e = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let text = describe(&e);
        assert!(
            text.starts_with("the collector's TLS certificate is not trusted"),
            "{text}"
        );
        assert!(text.contains("UnknownIssuer"), "{text}");
    }
}
