//! Runs `examples/reqwest_client.rs` (the README's reqwest example) and
//! checks what it prints: the correlation ID and `traceparent` reached the
//! backend, the backend's SERVER span is a child of the reqwest CLIENT span,
//! the host's breaker opened on a 5xx and then refused without sending, and
//! the client RED metrics count every call.
//!
//! Its own test binary: the example installs telemetry and the Prometheus
//! recorder globally.
#![cfg(feature = "reqwest")]

#[allow(dead_code)]
#[path = "../examples/reqwest_client.rs"]
mod example;

#[tokio::test]
async fn the_reqwest_example_shows_one_trace_an_open_breaker_and_the_metrics() {
    let lines = example::run().await.unwrap();
    let text = lines.join("\n");
    let backend = lines[0]
        .strip_prefix("backend saw x-correlation-id=order-1 traceparent=00-")
        .unwrap_or_else(|| panic!("{text}"));
    let (trace_id, rest) = backend.split_once('-').unwrap();
    let (parent, flags) = rest.split_once('-').unwrap();
    assert_eq!(flags, "01", "{text}");

    let client = format!("span Client GET trace {trace_id} id {parent} parent -");
    assert!(lines.contains(&client), "{text}");
    let server = lines
        .iter()
        .find(|l| l.starts_with(&format!("span Server GET /data trace {trace_id} ")))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(server.ends_with(&format!(" parent {parent}")), "{text}");

    let flaky: Vec<&String> = lines.iter().filter(|l| l.starts_with("/flaky")).collect();
    assert_eq!(flaky.len(), 3, "{text}");
    assert_eq!(flaky[0], "/flaky answered 503 Service Unavailable");
    for refused in &flaky[1..] {
        assert!(
            refused.starts_with(
                "/flaky refused, not sent: circuit breaker `backend/127.0.0.1` is open"
            ),
            "{text}"
        );
    }

    let counts: Vec<(&str, &str)> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("http_client_request_duration_seconds_count{"))
        .filter_map(|l| l.rsplit_once("} "))
        .collect();
    let count = |needle: &str| {
        counts
            .iter()
            .find(|(labels, _)| labels.ends_with(needle))
            .map(|(_, n)| *n)
    };
    assert_eq!(
        count("http_response_status_code=\"200\""),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        count("http_response_status_code=\"503\",error_type=\"503\""),
        Some("1"),
        "{text}"
    );
    assert_eq!(count(",error_type=\"circuit_open\""), Some("2"), "{text}");
}
