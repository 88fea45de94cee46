//! Building the label sets of a new series (cold path): which labels each
//! [`Kind`] has under each [`Naming`], and their values.

use http::StatusCode;
use metrics::{Gauge, Key, Label};
use telltale_core::{GrpcCode, status_str};

use super::config::{Kind, Naming};
use super::names::OVERFLOW;
use super::red::{Series, Shared};
use super::storage::{GRPC_NONE, ID_NONE, ID_OVERFLOW, LabelValues, SeriesKey};
use telltale_core::http::METHOD_LABELS as METHODS;

impl Shared {
    fn route_value(key: &SeriesKey, v: &LabelValues<'_>) -> Option<String> {
        match key.route {
            ID_NONE => None,
            ID_OVERFLOW => Some(OVERFLOW.to_owned()),
            _ => v.route.map(str::to_owned),
        }
    }

    fn addr_value(&self, key: &SeriesKey, v: &LabelValues<'_>) -> Option<String> {
        match key.addr {
            ID_NONE => None,
            ID_OVERFLOW => Some(OVERFLOW.to_owned()),
            id => v
                .addr
                .map(str::to_owned)
                .or_else(|| self.addrs.name(id).map(|a| a.to_string())),
        }
    }

    /// `/pkg.Service/Method` split into service and method.
    fn split_rpc(route: Option<String>) -> (Option<String>, Option<String>) {
        let Some(route) = route else {
            return (None, None);
        };
        if route == OVERFLOW {
            return (Some(route), None);
        }
        let trimmed = route.strip_prefix('/').unwrap_or(&route);
        match trimmed.rsplit_once('/') {
            Some((service, method)) if !service.is_empty() && !method.is_empty() => {
                (Some(service.to_owned()), Some(method.to_owned()))
            }
            _ => (Some(trimmed.to_owned()), None),
        }
    }

    /// Builds the label sets and registers the handles for a new series (cold path).
    pub(super) fn create_series(&self, key: &SeriesKey, v: &LabelValues<'_>) -> Series {
        self.describe();
        let method = METHODS[key.method as usize];
        let status = (key.status != 0)
            .then(|| StatusCode::from_u16(key.status).ok())
            .flatten()
            .map(status_str);
        let grpc = (key.grpc != GRPC_NONE)
            .then(|| GrpcCode::from_i32(i32::from(key.grpc)))
            .flatten();
        let route = Self::route_value(key, v);
        let addr = self.addr_value(key, v);
        let port = key.port.map(|p| p.to_string());
        let mut hist: Vec<Label> = Vec::with_capacity(6);
        let mut counter: Vec<Label> = Vec::with_capacity(4);
        fn push(labels: &mut Vec<Label>, k: &'static str, v: Option<impl Into<String>>) {
            if let Some(v) = v {
                labels.push(Label::new(k, v.into()));
            }
        }
        match (self.naming, self.kind) {
            (Naming::OpenTelemetry, Kind::HttpServer) => {
                push(&mut hist, "http_request_method", Some(method));
                push(&mut hist, "http_route", route);
                push(&mut hist, "http_response_status_code", status);
                push(&mut hist, "error_type", key.error);
                push(&mut hist, "url_scheme", Some(key.scheme.as_str()));
            }
            (Naming::OpenTelemetry, Kind::HttpClient) => {
                push(&mut hist, "http_request_method", Some(method));
                push(&mut hist, "server_address", addr);
                push(&mut hist, "server_port", port);
                push(&mut hist, "url_template", route);
                push(&mut hist, "http_response_status_code", status);
                push(&mut hist, "error_type", key.error);
            }
            (Naming::OpenTelemetry, Kind::RpcServer | Kind::RpcClient) => {
                let (service, rpc_method) = Self::split_rpc(route);
                push(&mut hist, "rpc_system", Some("grpc"));
                push(&mut hist, "rpc_service", service);
                push(&mut hist, "rpc_method", rpc_method);
                push(
                    &mut hist,
                    "rpc_grpc_status_code",
                    grpc.map(GrpcCode::as_str),
                );
                push(&mut hist, "error_type", key.error);
                push(&mut hist, "server_address", addr);
                push(&mut hist, "server_port", port);
            }
            (Naming::Classic, Kind::HttpServer) => {
                push(&mut hist, "method", Some(method));
                push(&mut hist, "endpoint", route);
                counter.clone_from(&hist);
                push(&mut counter, "code", status);
            }
            (Naming::Classic, Kind::HttpClient) => {
                let host = match (addr, port) {
                    (Some(a), Some(p)) => Some(format!("{a}:{p}")),
                    (a, _) => a,
                };
                push(&mut hist, "method", Some(method));
                push(&mut hist, "host", host);
                push(&mut hist, "endpoint", route);
                counter.clone_from(&hist);
                push(&mut counter, "code", status);
            }
            (Naming::Classic, Kind::RpcServer | Kind::RpcClient) => {
                let (service, rpc_method) = Self::split_rpc(route);
                push(&mut hist, "grpc_service", service);
                push(&mut hist, "grpc_method", rpc_method);
                if self.kind == Kind::RpcClient {
                    let host = match (addr, port) {
                        (Some(a), Some(p)) => Some(format!("{a}:{p}")),
                        (a, _) => a,
                    };
                    push(&mut hist, "host", host);
                }
                counter.clone_from(&hist);
                push(&mut counter, "grpc_code", grpc.map(GrpcCode::name));
            }
        }
        let hist_key = Key::from_parts(self.names.histogram.clone(), hist);
        let counter_key = self
            .names
            .counter
            .as_ref()
            .map(|name| Key::from_parts(name.clone(), counter));
        let meta = Self::metadata();
        let exemplars = Some(super::exemplars::series(
            hist_key.name(),
            hist_key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned())),
            &self.buckets,
        ));
        self.with_recorder(|r| Series {
            histogram: r.register_histogram(&hist_key, &meta),
            counter: counter_key.map(|k| r.register_counter(&k, &meta)),
            exemplars,
        })
    }

    pub(super) fn create_gauge(&self, key: &SeriesKey, v: &LabelValues<'_>) -> Gauge {
        self.describe();
        let Some(name) = &self.names.gauge else {
            return Gauge::noop();
        };
        let method = METHODS[key.method as usize];
        let addr = self.addr_value(key, v);
        let mut labels = Vec::with_capacity(4);
        match (self.naming, self.kind.is_client()) {
            (Naming::OpenTelemetry, false) => {
                labels.push(Label::new("http_request_method", method));
                labels.push(Label::new("url_scheme", key.scheme.as_str()));
            }
            (Naming::OpenTelemetry, true) => {
                labels.push(Label::new("http_request_method", method));
                if let Some(a) = addr {
                    labels.push(Label::new("server_address", a));
                }
                if let Some(p) = key.port {
                    labels.push(Label::new("server_port", p.to_string()));
                }
            }
            (Naming::Classic, false) => labels.push(Label::new("method", method)),
            (Naming::Classic, true) => {
                labels.push(Label::new("method", method));
                let host = match (addr, key.port) {
                    (Some(a), Some(p)) => Some(format!("{a}:{p}")),
                    (a, _) => a,
                };
                if let Some(h) = host {
                    labels.push(Label::new("host", h));
                }
            }
        }
        let key = Key::from_parts(name.clone(), labels);
        self.with_recorder(|r| r.register_gauge(&key, &Self::metadata()))
    }
}
