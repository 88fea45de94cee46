//! `install_prometheus` installs the global recorder (this test binary's only
//! global): RED metrics created afterwards land there, as histograms with buckets.

use http::{Method, StatusCode};
use telltale_telemetry::metrics::{
    Kind, Naming, RedConfig, RedMetrics, Scheme, install_prometheus,
};

#[test]
fn install_prometheus_sets_the_global_recorder_with_buckets_for_every_kind() {
    let config = RedConfig::default();
    let handle = install_prometheus(&config).expect("first install");
    assert!(
        install_prometheus(&config).is_err(),
        "a second global recorder is refused"
    );

    for kind in [
        Kind::HttpServer,
        Kind::HttpClient,
        Kind::RpcServer,
        Kind::RpcClient,
    ] {
        for naming in [Naming::OpenTelemetry, Naming::Classic] {
            let m = RedMetrics::new(kind, &RedConfig::builder().naming(naming).build().unwrap());
            m.start_client(&Method::GET, Scheme::Http, Some("db"), Some(5432))
                .finish(
                    Some("/pkg.Svc/Get"),
                    Some(StatusCode::OK),
                    Some(telltale_core::GrpcCode::Ok),
                    None,
                );
        }
    }
    let text = handle.render();
    for name in [
        "http_server_request_duration_seconds",
        "http_client_request_duration_seconds",
        "rpc_server_call_duration_seconds",
        "rpc_client_call_duration_seconds",
        "http_request_duration_seconds",
        "grpc_server_handling_seconds",
        "grpc_client_handling_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} histogram")),
            "{name}:\n{text}"
        );
        assert!(
            text.contains(&format!("{name}_bucket{{")),
            "{name}:\n{text}"
        );
    }
    assert!(!text.contains("summary"), "{text}");
    assert!(!text.contains("quantile="), "{text}");
}
