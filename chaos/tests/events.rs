//! Tests that count tracing events and span records. They live in their own
//! test binary: tracing caches each callsite's interest on first use, and a
//! concurrent first use from another test thread (every test arms injectors and
//! so hits the same callsites) can cache it as `never` for this thread's
//! subscriber, losing the event.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use telltale_chaos::{ChaosLayer, Injector, Status};
use tower::{Service, ServiceBuilder, service_fn};

fn injector(rules: &str) -> Injector {
    Injector::builder()
        .rules(rules.parse().unwrap())
        .build()
        .unwrap()
}

fn ok_service(
    body: &'static [u8],
) -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone {
    service_fn(move |_req: Request<()>| async move {
        Ok(Response::new(Full::new(Bytes::from_static(body))))
    })
}

fn get(path: &str) -> Request<()> {
    Request::get(path).body(()).unwrap()
}

#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<String>>>);

struct Visitor<'a>(&'a mut Vec<String>);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push(format!("{}={:?}", field.name(), value));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push(format!("{}={}", field.name(), value));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.push(format!("{}={}", field.name(), value));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = vec![format!("event:{}", event.metadata().target())];
        event.record(&mut Visitor(&mut fields));
        self.0.lock().unwrap().push(fields.join(" "));
    }
    fn on_record(
        &self,
        _: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = vec!["span:".to_owned()];
        values.record(&mut Visitor(&mut fields));
        self.0.lock().unwrap().push(fields.join(" "));
    }
}

#[test]
fn faults_are_tagged_on_the_span_and_in_one_event() {
    use tracing_subscriber::layer::SubscriberExt;
    let seen = Seen::default();
    let subscriber = tracing_subscriber::registry().with(seen.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    // Parallel tests install per-thread subscribers: recompute callsite
    // interest so none stays cached as `never` from a concurrent thread.
    tracing::callsite::rebuild_interest_cache();
    let inj = injector("in /a: delay(1ms) + status(503)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut svc = ServiceBuilder::new()
            .layer(ChaosLayer::inbound(&inj))
            .service(ok_service(b""));
        let span = tracing::info_span!(
            "request",
            chaos.injected = tracing::field::Empty,
            chaos.rule = tracing::field::Empty,
            chaos.fault = tracing::field::Empty
        );
        let fut = span.in_scope(|| svc.call(get("/a")));
        assert_eq!(fut.await.unwrap().status(), 503);
        span.in_scope(|| svc.call(get("/b")));
    });
    let seen = seen.0.lock().unwrap().clone();
    let injected: Vec<&String> = seen
        .iter()
        .filter(|s| s.contains("chaos fault injected"))
        .collect();
    assert_eq!(injected.len(), 1, "{seen:#?}");
    assert!(
        injected[0].contains("chaos.injected=true")
            && injected[0].contains("chaos.rule=1.1")
            && injected[0].contains("chaos.fault=delay+status")
            && injected[0].contains("direction=in"),
        "{injected:?}"
    );
    let span: Vec<&String> = seen.iter().filter(|s| s.starts_with("span:")).collect();
    assert_eq!(
        span,
        [
            "span: chaos.injected=true",
            "span: chaos.rule=1.1",
            "span: chaos.fault=delay+status"
        ],
        "{seen:#?}"
    );
}

#[test]
fn arming_and_refusing_are_logged_loudly() {
    use telltale_core::config::Env;
    use tracing_subscriber::layer::SubscriberExt;
    let seen = Seen::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(seen.clone()));
    // Parallel tests install per-thread subscribers: recompute callsite
    // interest so none stays cached as `never` from a concurrent thread.
    tracing::callsite::rebuild_interest_cache();
    let refused = Injector::from_env_source(&Env::from_pairs([
        ("TELLTALE_CHAOS", "in: abort"),
        ("TELLTALE_ENV", "production"),
        ("TELLTALE_CHAOS_ALLOW_ENVS", "dev,staging"),
    ]))
    .unwrap();
    assert_eq!(refused.status(), Status::Refused);
    let armed = Injector::from_env_source(&Env::from_pairs([
        ("TELLTALE_CHAOS", "in: abort"),
        ("TELLTALE_ENV", "dev"),
    ]))
    .unwrap();
    assert_eq!(armed.status(), Status::Armed);
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(
        seen[0].contains("chaos REFUSED to arm")
            && seen[0].contains("\"production\" is not in the allow-list [dev, staging]"),
        "{}",
        seen[0]
    );
    assert!(
        seen[1].contains("chaos ARMED") && seen[1].contains("rules=in: abort"),
        "{}",
        seen[1]
    );
}
