use super::*;
use crate::metrics::prometheus_builder;
use crate::metrics::{OTHER_METHOD, method_label};
use metrics_exporter_prometheus::PrometheusHandle;

fn setup(kind: Kind, builder: crate::metrics::RedConfigBuilder) -> (RedMetrics, PrometheusHandle) {
    let config = builder.build().unwrap();
    let recorder = prometheus_builder(&config).build_recorder();
    let handle = recorder.handle();
    let metrics = RedMetrics::new(kind, &config.with_recorder(Arc::new(recorder)));
    (metrics, handle)
}

/// Lines of the exposition for `name` (samples only), sorted.
fn series(text: &str, name: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

#[test]
fn semconv_http_server_labels_and_buckets() {
    let (m, h) = setup(Kind::HttpServer, RedConfig::builder());
    m.start(&Method::GET, Scheme::Https).finish(
        Some("/users/{id}"),
        Some(StatusCode::OK),
        None,
        None,
    );
    m.start(&Method::from_bytes(b"PURGE").unwrap(), Scheme::Http)
        .finish(
            None,
            Some(StatusCode::SERVICE_UNAVAILABLE),
            None,
            Some("503"),
        );
    m.start(&Method::POST, Scheme::Http)
        .finish(Some("/orders"), None, None, Some("cancelled"));
    let text = h.render();
    assert!(
        text.contains("# TYPE http_server_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(
            "# HELP http_server_request_duration_seconds Duration of HTTP server requests."
        ),
        "{text}"
    );
    assert_eq!(
        series(&text, "http_server_request_duration_seconds_count"),
        [
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/users/{id}",http_response_status_code="200",url_scheme="https"} 1"#,
            r#"http_server_request_duration_seconds_count{http_request_method="POST",http_route="/orders",error_type="cancelled",url_scheme="http"} 1"#,
            r#"http_server_request_duration_seconds_count{http_request_method="_OTHER",http_response_status_code="503",error_type="503",url_scheme="http"} 1"#,
        ]
    );
    // Explicit semconv buckets, 14 boundaries plus +Inf, per series.
    let buckets = series(&text, "http_server_request_duration_seconds_bucket");
    assert_eq!(buckets.len(), 3 * 15);
    for le in ["0.005", "0.075", "7.5", "10", "+Inf"] {
        assert!(
            text.contains(&format!(r#"url_scheme="https",le="{le}"}} 1"#)),
            "{le}: {text}"
        );
    }
    assert_eq!(
        series(&text, "http_server_active_requests"),
        [
            r#"http_server_active_requests{http_request_method="GET",url_scheme="https"} 0"#,
            r#"http_server_active_requests{http_request_method="POST",url_scheme="http"} 0"#,
            r#"http_server_active_requests{http_request_method="_OTHER",url_scheme="http"} 0"#,
        ]
    );
    assert!(!text.contains(OVERFLOW_METRIC), "{text}");
}

#[test]
fn active_gauge_counts_in_flight_and_returns_to_zero_when_dropped() {
    let (m, h) = setup(Kind::HttpServer, RedConfig::builder());
    let a = m.start(&Method::GET, Scheme::Http);
    let b = m.start(&Method::GET, Scheme::Http);
    let c = m.start(&Method::GET, Scheme::Http);
    let gauge = |h: &PrometheusHandle| series(&h.render(), "http_server_active_requests");
    assert_eq!(
        gauge(&h),
        [r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 3"#]
    );
    drop(a); // cancelled without finish: gauge down, nothing recorded
    let took = b.finish(Some("/x"), Some(StatusCode::OK), None, None);
    assert!(took < Duration::from_secs(60));
    assert_eq!(
        gauge(&h),
        [r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 1"#]
    );
    drop(c);
    assert_eq!(
        gauge(&h),
        [r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 0"#]
    );
    let text = h.render();
    assert_eq!(
        series(&text, "http_server_request_duration_seconds_count"),
        [
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/x",http_response_status_code="200",url_scheme="http"} 1"#
        ]
    );
    // Many threads, a third of them dropping unfinished.
    std::thread::scope(|s| {
        for t in 0..8 {
            let m = m.clone();
            s.spawn(move || {
                for i in 0..1000 {
                    let f = m.start(&Method::GET, Scheme::Http);
                    if (i + t) % 3 != 0 {
                        f.finish(Some("/x"), Some(StatusCode::OK), None, None);
                    }
                }
            });
        }
    });
    assert_eq!(
        gauge(&h),
        [r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 0"#]
    );
}

#[test]
fn finish_with_and_outcome_use_the_given_duration_and_classification() {
    let (m, h) = setup(Kind::HttpServer, RedConfig::builder());
    m.start(&Method::GET, Scheme::Http).finish_with(
        Duration::from_millis(300),
        Some("/slow"),
        Some(StatusCode::OK),
        None,
        None,
    );
    let outcome = Outcome::Response {
        status: StatusCode::BAD_GATEWAY,
        grpc: None,
    };
    m.start(&Method::GET, Scheme::Http)
        .finish_outcome(Some("/slow"), &outcome);
    let text = h.render();
    assert!(text.contains(r#"http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/slow",http_response_status_code="200",url_scheme="http",le="0.25"} 0"#), "{text}");
    assert!(text.contains(r#"http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/slow",http_response_status_code="200",url_scheme="http",le="0.5"} 1"#), "{text}");
    assert!(text.contains(r#"http_server_request_duration_seconds_sum{http_request_method="GET",http_route="/slow",http_response_status_code="200",url_scheme="http"} 0.3"#), "{text}");
    assert!(text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/slow",http_response_status_code="502",error_type="502",url_scheme="http"} 1"#), "{text}");
}

#[test]
fn semconv_client_labels() {
    let (m, h) = setup(Kind::HttpClient, RedConfig::builder());
    let f = m.start_client(
        &Method::GET,
        Scheme::Https,
        Some("api.example.com"),
        Some(443),
    );
    assert!(h.render().contains(r#"http_client_active_requests{http_request_method="GET",server_address="api.example.com",server_port="443"} 1"#));
    f.finish(None, Some(StatusCode::NOT_FOUND), None, Some("404"));
    let text = h.render();
    assert_eq!(
        series(&text, "http_client_request_duration_seconds_count"),
        [
            r#"http_client_request_duration_seconds_count{http_request_method="GET",server_address="api.example.com",server_port="443",http_response_status_code="404",error_type="404"} 1"#
        ]
    );
    assert!(text.contains(r#"http_client_active_requests{http_request_method="GET",server_address="api.example.com",server_port="443"} 0"#), "{text}");
}

#[test]
fn semconv_rpc_labels_split_the_route() {
    let (m, h) = setup(Kind::RpcServer, RedConfig::builder());
    m.start(&Method::POST, Scheme::Http).finish(
        Some("/helloworld.Greeter/SayHello"),
        Some(StatusCode::OK),
        Some(GrpcCode::Ok),
        None,
    );
    m.start(&Method::POST, Scheme::Http).finish(
        Some("/helloworld.Greeter/SayHello"),
        Some(StatusCode::OK),
        Some(GrpcCode::Unavailable),
        Some("UNAVAILABLE"),
    );
    let (c, hc) = setup(Kind::RpcClient, RedConfig::builder());
    c.start_client(&Method::POST, Scheme::Http, Some("10.0.0.1"), Some(50051))
        .finish(
            Some("/helloworld.Greeter/SayHello"),
            None,
            Some(GrpcCode::NotFound),
            Some("NOT_FOUND"),
        );
    let text = h.render();
    assert_eq!(
        series(&text, "rpc_server_call_duration_seconds_count"),
        [
            r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="helloworld.Greeter",rpc_method="SayHello",rpc_grpc_status_code="0"} 1"#,
            r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="helloworld.Greeter",rpc_method="SayHello",rpc_grpc_status_code="14",error_type="UNAVAILABLE"} 1"#,
        ]
    );
    assert!(!text.contains("active"), "no RPC gauge: {text}");
    assert_eq!(
        series(&hc.render(), "rpc_client_call_duration_seconds_count"),
        [
            r#"rpc_client_call_duration_seconds_count{rpc_system="grpc",rpc_service="helloworld.Greeter",rpc_method="SayHello",rpc_grpc_status_code="5",error_type="NOT_FOUND",server_address="10.0.0.1",server_port="50051"} 1"#
        ]
    );
}

#[test]
fn classic_naming() {
    let (m, h) = setup(
        Kind::HttpServer,
        RedConfig::builder().naming(Naming::Classic),
    );
    for status in [
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::INTERNAL_SERVER_ERROR,
    ] {
        m.start(&Method::GET, Scheme::Https)
            .finish(Some("/a"), Some(status), None, Some("500"));
    }
    let keep = m.start(&Method::GET, Scheme::Https);
    let text = h.render();
    assert_eq!(
        series(&text, "http_requests_total"),
        [
            r#"http_requests_total{method="GET",endpoint="/a",code="200"} 2"#,
            r#"http_requests_total{method="GET",endpoint="/a",code="500"} 1"#,
        ]
    );
    assert_eq!(
        series(&text, "http_request_duration_seconds_count"),
        [r#"http_request_duration_seconds_count{method="GET",endpoint="/a"} 3"#]
    );
    assert!(
        text.contains("# TYPE http_request_duration_seconds histogram"),
        "{text}"
    );
    assert_eq!(
        series(&text, "http_requests_in_flight"),
        [r#"http_requests_in_flight{method="GET"} 1"#]
    );
    drop(keep);

    let (g, hg) = setup(
        Kind::RpcServer,
        RedConfig::builder().naming(Naming::Classic),
    );
    g.start(&Method::POST, Scheme::Http).finish(
        Some("/pkg.Svc/Get"),
        None,
        Some(GrpcCode::Internal),
        Some("INTERNAL"),
    );
    let text = hg.render();
    assert_eq!(
        series(&text, "grpc_server_handled_total"),
        [
            r#"grpc_server_handled_total{grpc_service="pkg.Svc",grpc_method="Get",grpc_code="INTERNAL"} 1"#
        ]
    );
    assert!(
        text.contains("# TYPE grpc_server_handling_seconds histogram"),
        "{text}"
    );
}

#[test]
fn prefix_applies_to_names_and_buckets() {
    let (m, h) = setup(Kind::HttpServer, RedConfig::builder().prefix("shop"));
    m.start(&Method::GET, Scheme::Http)
        .finish(Some("/"), Some(StatusCode::OK), None, None);
    let text = h.render();
    assert!(
        text.contains("# TYPE shop_http_server_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(text.contains("shop_http_server_active_requests{"), "{text}");
}

/// A small deterministic generator, so the test needs no extra crate.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn cardinality_is_capped_with_an_overflow_label_and_counter() {
    let cap = 50;
    let (m, h) = setup(Kind::HttpServer, RedConfig::builder().max_label_sets(cap));
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    let mut after_cap = None;
    let total = 100_000;
    for i in 0..total {
        let route = format!("/r/{:x}", next(&mut rng));
        let status = if i % 10 == 0 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        let err = (i % 10 == 0).then_some("500");
        m.start(&Method::GET, Scheme::Http)
            .finish(Some(&route), Some(status), None, err);
        if i == 1000 {
            after_cap = Some(h.render());
        }
    }
    let text = h.render();
    let count_lines = series(&text, "http_server_request_duration_seconds_count");
    let before = series(
        after_cap.as_deref().unwrap(),
        "http_server_request_duration_seconds_count",
    );
    // Same series as right after the cap was hit: nothing new appeared.
    let names = |v: &[String]| {
        v.iter()
            .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&count_lines), names(&before));
    assert_eq!(count_lines.len(), cap + 2, "{count_lines:#?}");
    assert_eq!(m.label_sets(), cap + 2);
    assert!(text.contains(
        r#"http_route="__overflow__",http_response_status_code="200",url_scheme="http"} "#
    ));
    assert!(text.contains(r#"http_route="__overflow__",http_response_status_code="500",error_type="500",url_scheme="http"} "#));
    // Every request is counted somewhere; the overflow counter says how many were folded.
    let sum: u64 = count_lines
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert_eq!(sum, total);
    let overflow = series(&text, OVERFLOW_METRIC);
    assert_eq!(overflow.len(), 1, "{text}");
    assert_eq!(
        overflow[0],
        format!(
            r#"{OVERFLOW_METRIC}{{metric="http_server_request_duration_seconds"}} {}"#,
            total - cap as u64
        )
    );
    assert!(text.contains(&format!("# TYPE {OVERFLOW_METRIC} counter")));
}

/// Requests repeating a route and label set (found next to their route after
/// the first one) are counted like the first, overflow sets and overflow
/// counter included, and so are more label sets under one route than it keeps
/// at hand.
#[test]
fn repeated_label_sets_count_like_the_first() {
    let (m, h) = setup(Kind::HttpServer, RedConfig::builder().max_label_sets(2));
    for _ in 0..3 {
        for code in [200u16, 201, 202] {
            let s = StatusCode::from_u16(code).unwrap();
            m.start(&Method::GET, Scheme::Http)
                .finish(Some("/a"), Some(s), None, None);
        }
    }
    let text = h.render();
    assert_eq!(
        series(&text, "http_server_request_duration_seconds_count"),
        [
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/a",http_response_status_code="200",url_scheme="http"} 3"#,
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/a",http_response_status_code="201",url_scheme="http"} 3"#,
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="__overflow__",http_response_status_code="202",url_scheme="http"} 3"#,
        ]
    );
    assert_eq!(
        series(&text, OVERFLOW_METRIC),
        [format!(
            r#"{OVERFLOW_METRIC}{{metric="http_server_request_duration_seconds"}} 3"#
        )]
    );

    let (m, h) = setup(Kind::HttpServer, RedConfig::builder());
    let codes = 200u16..220;
    for _ in 0..3 {
        for code in codes.clone() {
            let s = StatusCode::from_u16(code).unwrap();
            m.start(&Method::GET, Scheme::Http)
                .finish(Some("/b"), Some(s), None, None);
        }
    }
    let lines = series(&h.render(), "http_server_request_duration_seconds_count");
    assert_eq!(lines.len(), codes.len(), "{lines:#?}");
    assert!(lines.iter().all(|l| l.ends_with("} 3")), "{lines:#?}");
}

#[test]
fn overflow_sets_are_bounded_too() {
    // Cap 2, reserve 2: one folded overflow set, then only the catch-all.
    let (m, h) = setup(Kind::HttpServer, RedConfig::builder().max_label_sets(2));
    for code in 200..600u16 {
        let s = StatusCode::from_u16(code).unwrap();
        m.start(&Method::GET, Scheme::Http)
            .finish(Some("/a"), Some(s), None, None);
        m.start(&Method::PUT, Scheme::Http)
            .finish(None, Some(s), None, None);
    }
    let text = h.render();
    let lines = series(&text, "http_server_request_duration_seconds_count");
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert_eq!(m.label_sets(), 4);
    assert!(lines.iter().any(|l| l.starts_with(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="__overflow__",http_response_status_code="201",url_scheme="http"} 1"#)), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with(r#"http_server_request_duration_seconds_count{http_request_method="_OTHER",http_route="__overflow__",url_scheme="http"}"#)), "{lines:#?}");
    let sum: u64 = lines
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert_eq!(sum, 800);
}

#[test]
fn client_addresses_are_capped() {
    let (m, h) = setup(Kind::HttpClient, RedConfig::builder().max_label_sets(3));
    for i in 0..100 {
        let host = format!("h{i}.example");
        m.start_client(&Method::GET, Scheme::Http, Some(&host), Some(80))
            .finish(None, Some(StatusCode::OK), None, None);
    }
    let text = h.render();
    assert_eq!(
        series(&text, "http_client_request_duration_seconds_count").len(),
        4,
        "{text}"
    );
    assert_eq!(
        series(&text, "http_client_active_requests").len(),
        4,
        "{text}"
    );
    assert!(text.contains(r#"server_address="__overflow__""#), "{text}");
}

#[test]
fn binds_to_the_current_recorder_without_a_fixed_one() {
    let config = RedConfig::default();
    let recorder = prometheus_builder(&config).build_recorder();
    let m = RedMetrics::new(Kind::HttpServer, &config);
    metrics::with_local_recorder(&recorder, || {
        m.start(&Method::GET, Scheme::Http)
            .finish(Some("/l"), Some(StatusCode::OK), None, None);
    });
    // The handles stay bound after the scope ends.
    m.start(&Method::GET, Scheme::Http)
        .finish(Some("/l"), Some(StatusCode::OK), None, None);
    let text = recorder.handle().render();
    assert!(text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/l",http_response_status_code="200",url_scheme="http"} 2"#), "{text}");
}

#[test]
fn method_labels() {
    for (m, l) in [
        (Method::GET, "GET"),
        (Method::PATCH, "PATCH"),
        (Method::CONNECT, "CONNECT"),
    ] {
        assert_eq!(method_label(&m), l);
    }
    assert_eq!(
        method_label(&Method::from_bytes(b"get").unwrap()),
        OTHER_METHOD
    );
}
