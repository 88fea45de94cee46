//! Request attributes shared by the server and client layers (method names,
//! host/port splitting and gRPC paths come from [`telltale_core`]): protocol
//! versions, host and port, client address behind trusted proxies,
//! query redaction and header capture.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Uri, Version, header};
use opentelemetry::trace::{SpanRef, TraceContextExt};
use opentelemetry::{Array, Key, KeyValue, StringValue, Value};
use telltale_core::http::split_host_port;

/// A string attribute with a static key.
pub(crate) fn text(key: &'static str, value: StringValue) -> KeyValue {
    KeyValue::new(Key::from_static_str(key), Value::String(value))
}

/// A string attribute with a static key and a copy of `value`, allocated
/// once at its length.
pub(crate) fn copy(key: &'static str, value: &str) -> KeyValue {
    text(key, StringValue::from(value.to_owned()))
}

/// The `network.protocol.version` value.
pub(crate) fn protocol_version(version: Version) -> Option<&'static str> {
    Some(match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => return None,
    })
}

/// `server.address` and `server.port` of a request a server received: from the
/// URI authority (HTTP/2 `:authority`, absolute-form HTTP/1) or the `Host` header.
pub(crate) fn server_host<'a>(
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> (Option<&'a str>, Option<u16>) {
    if let Some(authority) = uri.authority() {
        return (
            Some(
                authority
                    .host()
                    .trim_start_matches('[')
                    .trim_end_matches(']'),
            ),
            authority.port_u16(),
        );
    }
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if !host.is_empty() => {
            let (host, port) = split_host_port(host);
            (Some(host), port)
        }
        _ => (None, None),
    }
}

/// A network and prefix length (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Error returned when a trusted proxy is not an address or a network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid network {0:?}: expected an IP address or address/prefix such as 10.0.0.0/8")]
pub struct InvalidIpNet(String);

impl FromStr for IpNet {
    type Err = InvalidIpNet;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidIpNet(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(IpNet { addr, prefix })
    }
}

impl IpNet {
    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses match
    /// IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The `client.address` of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientAddr<'a> {
    /// The peer, or an address from a forwarding header.
    Ip(IpAddr),
    /// A forwarding header's node that is not an address (`unknown`, `_hidden`).
    Name(&'a str),
}

impl fmt::Display for ClientAddr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAddr::Ip(ip) => ip.fmt(f),
            ClientAddr::Name(name) => f.write_str(name),
        }
    }
}

/// Parses a forwarding node (`192.0.2.1`, `"[2001:db8::1]:4711"`, `198.51.100.7:80`).
fn parse_node(node: &str) -> ClientAddr<'_> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return ClientAddr::Ip(ip);
    }
    let (host, _) = split_host_port(node);
    match host.parse::<IpAddr>() {
        Ok(ip) => ClientAddr::Ip(ip),
        Err(_) => ClientAddr::Name(node),
    }
}

/// The client of a request: the peer, unless the peer is a trusted proxy, in which
/// case the nearest untrusted hop from `Forwarded` (preferred) or `X-Forwarded-For`.
pub(crate) fn client_address<'a>(
    peer: Option<IpAddr>,
    headers: &'a HeaderMap,
    trusted: &[IpNet],
) -> Option<ClientAddr<'a>> {
    let peer = peer?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return Some(ClientAddr::Ip(peer));
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all(header::FORWARDED) {
        let Ok(value) = value.to_str() else { continue };
        for element in value.split(',') {
            for pair in element.split(';') {
                if let Some((k, v)) = pair.split_once('=')
                    && k.trim().eq_ignore_ascii_case("for")
                {
                    hops.push(v);
                }
            }
        }
    }
    if hops.is_empty() {
        for value in headers.get_all("x-forwarded-for") {
            let Ok(value) = value.to_str() else { continue };
            hops.extend(value.split(',').filter(|h| !h.trim().is_empty()));
        }
    }
    let mut client = ClientAddr::Ip(peer);
    for hop in hops.iter().rev() {
        client = parse_node(hop);
        match client {
            ClientAddr::Ip(ip) if is_trusted(ip) => continue,
            _ => break,
        }
    }
    Some(client)
}

/// Query keys whose values are replaced by `REDACTED` by default.
pub const DEFAULT_REDACTED_QUERY_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "key",
    "auth",
    "authorization",
    "session",
    "sig",
    "signature",
    "x-goog-signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "awsaccesskeyid",
];

/// Replaces the values of sensitive query keys by `REDACTED`.
#[derive(Clone, Debug)]
pub(crate) struct Redactor {
    keys: Box<[Box<str>]>,
}

impl Redactor {
    pub(crate) fn new<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Redactor {
            keys: keys
                .into_iter()
                .map(|k| k.as_ref().to_ascii_lowercase().into_boxed_str())
                .collect(),
        }
    }

    fn is_sensitive(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k.eq_ignore_ascii_case(key))
    }

    /// The query with sensitive values redacted; borrowed when nothing was.
    pub(crate) fn redact<'a>(&self, query: &'a str) -> Cow<'a, str> {
        let needs = query.split('&').any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            !v.is_empty() && v != "REDACTED" && self.is_sensitive(k)
        });
        if !needs {
            return Cow::Borrowed(query);
        }
        let mut out = String::with_capacity(query.len());
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, _)) if self.is_sensitive(k) => {
                    out.push_str(k);
                    out.push_str("=REDACTED");
                }
                _ => out.push_str(pair),
            }
        }
        Cow::Owned(out)
    }

    /// `url.full` for a client request: credentials in the authority and
    /// sensitive query values redacted. A URI without scheme and authority
    /// (tonic sends path-only URIs) takes them from `origin`; without one
    /// there is no absolute URL, and `None` (the conventions define
    /// `url.full` as absolute: never a bare path).
    pub(crate) fn full_url(&self, uri: &Uri, origin: Option<&Uri>) -> Option<String> {
        let (scheme, authority) = match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => (scheme, authority),
            _ => {
                let origin = origin?;
                (origin.scheme_str()?, origin.authority()?)
            }
        };
        let mut out =
            String::with_capacity(uri.path().len() + uri.query().map_or(0, str::len) + 48);
        out.push_str(scheme);
        out.push_str("://");
        match authority.as_str().rsplit_once('@') {
            Some((_, host)) => {
                out.push_str("REDACTED:REDACTED@");
                out.push_str(host);
            }
            None => out.push_str(authority.as_str()),
        }
        out.push_str(uri.path());
        if let Some(q) = uri.query() {
            out.push('?');
            out.push_str(&self.redact(q));
        }
        Some(out)
    }
}

/// Request or response headers to record as `http.{request,response}.header.<name>`.
///
/// What a captured header costs per request is kept to what the attribute
/// itself needs: the attribute keys are built once, here (a clone is a
/// reference count), each value is copied once (cut to the cap first, and
/// decoded without a copy when it is UTF-8, as header values nearly always
/// are) into a list sized for it, and all of a request's headers reach the
/// OpenTelemetry span in one call, under one lock, once it has started.
#[derive(Clone, Debug)]
pub(crate) struct Capture {
    headers: Box<[(HeaderName, Key)]>,
    /// Longest value kept, in characters (each value of a header).
    max_len: usize,
}

impl Capture {
    pub(crate) fn new(prefix: &str, names: &[HeaderName], max_len: usize) -> Self {
        Capture {
            headers: names
                .iter()
                .map(|n| {
                    let key: Arc<str> = format!("{prefix}{}", n.as_str()).into();
                    (n.clone(), Key::from(key))
                })
                .collect(),
            max_len,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Sets the captured headers present in `headers` on `span`'s
    /// OpenTelemetry span, starting it if it has not started yet.
    pub(crate) fn record(&self, span: &tracing::Span, headers: &HeaderMap) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        if span.is_disabled() || self.is_empty() {
            return;
        }
        self.record_on(&span.context().span(), headers);
    }

    /// Sets the captured headers present in `headers` on a started
    /// OpenTelemetry span, in one call (nothing when it does not record).
    pub(crate) fn record_on(&self, span: &SpanRef<'_>, headers: &HeaderMap) {
        if self.is_empty() || !span.is_recording() {
            return;
        }
        span.set_attributes(self.attributes(headers));
    }

    /// Sets the captured headers present in `headers` on `span` before its
    /// OpenTelemetry span starts (so that the SDK's sampler sees them), one
    /// attribute at a time: the bridge offers no call for several.
    pub(crate) fn record_unstarted(&self, span: &tracing::Span, headers: &HeaderMap) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        if span.is_disabled() || self.is_empty() {
            return;
        }
        for kv in self.attributes(headers) {
            span.set_attribute(kv.key, kv.value);
        }
    }

    /// The captured headers present in `headers`, as string-array attributes.
    pub(crate) fn attributes<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> impl Iterator<Item = KeyValue> + 'a {
        self.headers.iter().filter_map(move |(name, key)| {
            let all = headers.get_all(name);
            let mut iter = all.iter();
            let first = iter.next()?;
            let values = match iter.next() {
                // Nearly always: one value, one list of one.
                None => vec![self.value(first)],
                Some(second) => {
                    let mut values = Vec::with_capacity(2 + iter.size_hint().0);
                    values.push(self.value(first));
                    values.push(self.value(second));
                    values.extend(iter.map(|v| self.value(v)));
                    values
                }
            };
            Some(KeyValue::new(
                key.clone(),
                Value::Array(Array::String(values)),
            ))
        })
    }

    /// One header value, cut to the cap, copied once.
    fn value(&self, value: &HeaderValue) -> StringValue {
        // Cut before decoding: at most 4 bytes per character.
        let bytes = value.as_bytes();
        let bytes = &bytes[..bytes.len().min(self.max_len.saturating_mul(4))];
        let text = match String::from_utf8_lossy(bytes) {
            Cow::Borrowed(text) => super::limits::cap(text, self.max_len).to_owned(),
            Cow::Owned(mut text) => {
                let kept = super::limits::cap(&text, self.max_len).len();
                text.truncate(kept);
                text
            }
        };
        StringValue::from(text)
    }
}

/// Parses header names for capture, lower-casing them.
pub(crate) fn header_names<I, S>(names: I) -> Result<Vec<HeaderName>, super::error::BuildError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    names
        .into_iter()
        .map(|n| {
            let n = n.as_ref().trim();
            HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).map_err(|source| {
                super::error::BuildError::HeaderName {
                    name: n.to_owned(),
                    source,
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port() {
        let uri: Uri = "http://[::1]:8080/x".parse().unwrap();
        assert_eq!(
            server_host(&uri, &HeaderMap::new()),
            (Some("::1"), Some(8080))
        );
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "api.test:3000".parse().unwrap());
        assert_eq!(
            server_host(&"/x".parse().unwrap(), &headers),
            (Some("api.test"), Some(3000))
        );
    }

    #[test]
    fn networks() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let one: IpNet = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nope".parse::<IpNet>().is_err());
    }

    #[test]
    fn forwarded_only_from_trusted_proxies() {
        let trusted = ["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.2, 10.0.0.7".parse().unwrap(),
        );
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let outsider: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_address(Some(local), &headers, &trusted),
            Some(ClientAddr::Ip("198.51.100.2".parse().unwrap()))
        );
        assert_eq!(
            client_address(Some(outsider), &headers, &trusted),
            Some(ClientAddr::Ip(outsider))
        );
        headers.insert(
            header::FORWARDED,
            "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            client_address(Some(local), &headers, &trusted),
            Some(ClientAddr::Ip("2001:db8:cafe::17".parse().unwrap()))
        );
        headers.insert(header::FORWARDED, "for=_hidden".parse().unwrap());
        assert_eq!(
            client_address(Some(local), &headers, &trusted),
            Some(ClientAddr::Name("_hidden"))
        );
        assert_eq!(client_address(None, &headers, &trusted), None);
    }

    #[test]
    fn redaction() {
        let r = Redactor::new(DEFAULT_REDACTED_QUERY_KEYS);
        assert!(matches!(r.redact("a=1&b=2"), Cow::Borrowed("a=1&b=2")));
        assert_eq!(
            r.redact("q=x&Token=abc&sig=1&x"),
            "q=x&Token=REDACTED&sig=REDACTED&x"
        );
        let uri: Uri = "https://u:p@h.test:8443/p?password=x&y=1".parse().unwrap();
        assert_eq!(
            r.full_url(&uri, None).as_deref(),
            Some("https://REDACTED:REDACTED@h.test:8443/p?password=REDACTED&y=1")
        );
        // A path-only URI: absolute from the origin, or nothing.
        let path: Uri = "/pkg.Svc/Call?token=t".parse().unwrap();
        assert_eq!(r.full_url(&path, None), None);
        let origin: Uri = "http://10.0.0.1:50051".parse().unwrap();
        assert_eq!(
            r.full_url(&path, Some(&origin)).as_deref(),
            Some("http://10.0.0.1:50051/pkg.Svc/Call?token=REDACTED")
        );
        // The request's own absolute URI wins over the origin.
        assert_eq!(
            r.full_url(&"http://a.test/x".parse().unwrap(), Some(&origin))
                .as_deref(),
            Some("http://a.test/x")
        );
    }

    #[test]
    fn captured_values_are_cut_decoded_and_in_order() {
        let names = header_names(["X-Note", "x-bin", "x-absent"]).unwrap();
        let capture = Capture::new("http.request.header.", &names, 3);
        let mut headers = HeaderMap::new();
        headers.append("x-note", HeaderValue::from_static("first"));
        headers.append("x-note", HeaderValue::from_static("2nd"));
        // Not UTF-8: the invalid byte becomes U+FFFD, then the cut applies
        // to characters.
        headers.append("x-bin", HeaderValue::from_bytes(b"a\xffbcd").unwrap());
        let got: Vec<(String, Vec<String>)> = capture
            .attributes(&headers)
            .map(|kv| match kv.value {
                Value::Array(Array::String(values)) => (
                    kv.key.as_str().to_owned(),
                    values.iter().map(|v| v.as_str().to_owned()).collect(),
                ),
                other => panic!("not a string array: {other:?}"),
            })
            .collect();
        let expected = [
            ("http.request.header.x-note", vec!["fir", "2nd"]),
            ("http.request.header.x-bin", vec!["a\u{fffd}b"]),
        ];
        assert_eq!(got.len(), expected.len(), "{got:?}");
        for ((key, values), (want_key, want)) in got.iter().zip(expected) {
            assert_eq!(key, want_key);
            assert_eq!(values, &want);
        }
    }
}
