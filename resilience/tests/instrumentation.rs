//! Metrics (resilience4j-shaped), tracing events and span fields.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use telltale_core::correlation::scope;
use telltale_resilience::{Bulkhead, CircuitBreaker, SlidingWindow, State, Verdict};
use telltale_testkit::Capture;
use tracing::field::Empty;

/// One snapshot of the debugging recorder (which drains counters and gauges
/// on every snapshot, so each test phase reads one snapshot).
struct Phase(Vec<(metrics_util::CompositeKey, DebugValue)>);

impl Phase {
    fn take(snap: &Snapshotter) -> Self {
        Phase(
            snap.snapshot()
                .into_vec()
                .into_iter()
                .map(|(k, _, _, v)| (k, v))
                .collect(),
        )
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        self.0
            .iter()
            .find(|(k, _)| {
                let key = k.key();
                key.name() == name
                    && key.labels().count() == labels.len()
                    && labels.iter().all(|(l, v)| {
                        key.labels()
                            .any(|label| label.key() == *l && label.value() == *v)
                    })
            })
            .map(|(_, v)| v)
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.find(name, labels) {
            Some(DebugValue::Counter(n)) => *n,
            other => panic!("{name} {labels:?}: {other:?}"),
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.find(name, labels) {
            Some(DebugValue::Gauge(g)) => g.into_inner(),
            other => panic!("{name} {labels:?}: {other:?}"),
        }
    }

    fn state(&self, state: &str) -> f64 {
        self.gauge(
            "app_telltale_circuitbreaker_state",
            &[("name", "db"), ("state", state)],
        )
    }

    fn calls(&self, kind: &str) -> u64 {
        self.counter(
            "app_telltale_circuitbreaker_calls_total",
            &[("name", "db"), ("kind", kind)],
        )
    }

    fn transitions(&self, from: &str, to: &str) -> u64 {
        self.counter(
            "app_telltale_circuitbreaker_transitions_total",
            &[("name", "db"), ("from", from), ("to", to)],
        )
    }
}

#[tokio::test(start_paused = true)]
async fn breaker_metrics() {
    telltale_testkit::init();
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let b = metrics::with_local_recorder(&recorder, || {
        CircuitBreaker::builder("db")
            .metric_prefix("app")
            .sliding_window(SlidingWindow::Count(10))
            .minimum_calls(4)
            .slow_call_duration(Duration::from_millis(10))
            .wait_in_open(Duration::from_secs(5))
            .permitted_probes(1)
            .build()
            .unwrap()
    });
    let phase = Phase::take(&snap);
    assert_eq!(phase.state("closed"), 1.0);
    for s in [
        "open",
        "half_open",
        "forced_open",
        "disabled",
        "metrics_only",
    ] {
        assert_eq!(phase.state(s), 0.0, "{s}");
    }
    assert_eq!(
        phase.gauge(
            "app_telltale_circuitbreaker_failure_rate",
            &[("name", "db")]
        ),
        -1.0,
        "below the minimum calls"
    );

    let late = b.try_acquire().unwrap();
    b.try_acquire().unwrap().record(Verdict::Success);
    b.try_acquire().unwrap().record(Verdict::Ignore);
    let slow = b.try_acquire().unwrap();
    tokio::time::advance(Duration::from_millis(20)).await;
    slow.record(Verdict::Failure);
    for _ in 0..2 {
        b.try_acquire().unwrap().record(Verdict::Failure);
    }
    assert_eq!(b.state(), State::Open);
    assert!(b.try_acquire().is_err());
    late.record(Verdict::Failure);

    let phase = Phase::take(&snap);
    assert_eq!(
        phase.gauge(
            "app_telltale_circuitbreaker_failure_rate",
            &[("name", "db")]
        ),
        0.75
    );
    assert_eq!(
        phase.gauge(
            "app_telltale_circuitbreaker_slow_call_rate",
            &[("name", "db")]
        ),
        0.25
    );
    assert_eq!(phase.calls("successful"), 1);
    assert_eq!(phase.calls("failed"), 3);
    assert_eq!(phase.calls("slow"), 1);
    assert_eq!(phase.calls("ignored"), 1);
    assert_eq!(phase.calls("not_permitted"), 1);
    assert_eq!(phase.calls("late"), 1);
    assert_eq!(phase.state("closed"), 0.0);
    assert_eq!(phase.state("open"), 1.0);
    assert_eq!(phase.state("half_open"), 0.0);
    assert_eq!(phase.transitions("closed", "open"), 1);

    tokio::time::advance(Duration::from_secs(5)).await;
    b.try_acquire().unwrap().record(Verdict::Success);
    let phase = Phase::take(&snap);
    assert_eq!(phase.transitions("open", "half_open"), 1);
    assert_eq!(phase.transitions("half_open", "closed"), 1);
    assert_eq!(phase.state("closed"), 1.0);
    assert_eq!(phase.state("open"), 0.0);
}

/// The rate gauges are written only when a rate changes, yet always show
/// the rates of the current window: after a reset, after a window that
/// stayed the same, and after many threads settled calls at once.
#[test]
fn rate_gauges_follow_the_window() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let b = metrics::with_local_recorder(&recorder, || {
        CircuitBreaker::builder("db")
            .metric_prefix("app")
            .sliding_window(SlidingWindow::Count(2))
            .minimum_calls(2)
            .failure_rate_threshold(1.0)
            .build()
            .unwrap()
    });
    let rates = |phase: &Phase| {
        let l = [("name", "db")];
        (
            phase.gauge("app_telltale_circuitbreaker_failure_rate", &l),
            phase.gauge("app_telltale_circuitbreaker_slow_call_rate", &l),
        )
    };
    for _ in 0..2 {
        b.try_acquire().unwrap().record(Verdict::Success);
    }
    assert_eq!(rates(&Phase::take(&snap)), (0.0, 0.0));
    // The same window again and again: the gauges keep their value.
    for _ in 0..5 {
        b.try_acquire().unwrap().record(Verdict::Success);
    }
    b.try_acquire().unwrap().record(Verdict::Failure);
    assert_eq!(rates(&Phase::take(&snap)), (0.5, 0.0));
    b.reset();
    assert_eq!(rates(&Phase::take(&snap)), (-1.0, -1.0), "an empty window");
    // The rates come back to what they were before the reset: written again.
    for _ in 0..2 {
        b.try_acquire().unwrap().record(Verdict::Success);
    }
    assert_eq!(rates(&Phase::take(&snap)), (0.0, 0.0));

    // Four threads settle calls at once, with results changing the rates
    // all the time (metrics only: counted, never opened): the gauges end at
    // the rates of the final window.
    let b = metrics::with_local_recorder(&recorder, || {
        CircuitBreaker::builder("db")
            .metric_prefix("app")
            .sliding_window(SlidingWindow::Count(7))
            .minimum_calls(3)
            .initial_state(State::MetricsOnly)
            .build()
            .unwrap()
    });
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let b = &b;
            s.spawn(move || {
                for i in 0..2_000u32 {
                    let verdict = if (i * 7 + t) % 5 < 2 {
                        Verdict::Failure
                    } else {
                        Verdict::Success
                    };
                    b.try_acquire().unwrap().record(verdict);
                }
            });
        }
    });
    assert_eq!(b.state(), State::MetricsOnly, "counted, never opened");
    let (failure, slow) = b.rates().expect("a full window");
    let phase = Phase::take(&snap);
    assert_eq!(rates(&phase), (failure, slow));
}

#[tokio::test(start_paused = true)]
async fn bulkhead_metrics() {
    telltale_testkit::init();
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let b = metrics::with_local_recorder(&recorder, || {
        Bulkhead::builder("api")
            .max_concurrent(2)
            .max_wait(Duration::from_millis(50))
            .build()
            .unwrap()
    });
    let p1 = b.try_acquire().unwrap();
    let _p2 = b.acquire().await.unwrap();
    assert!(b.acquire().await.is_err());
    assert!(b.try_acquire().is_err());
    drop(p1);
    let phase = Phase::take(&snap);
    let l = [("name", "api")];
    assert_eq!(
        phase.gauge("telltale_bulkhead_max_allowed_concurrent_calls", &l),
        2.0
    );
    assert_eq!(
        phase.gauge("telltale_bulkhead_available_concurrent_calls", &l),
        1.0
    );
    assert_eq!(
        phase.counter("telltale_bulkhead_rejected_calls_total", &l),
        2
    );
    match phase.find("telltale_bulkhead_wait_duration_seconds", &l) {
        Some(DebugValue::Histogram(v)) => {
            // Both admitted calls, at once: every admitted call is
            // recorded, the rejected ones are not.
            let v: Vec<f64> = v.iter().map(|x| x.into_inner()).collect();
            assert_eq!(v, [0.0, 0.0]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn transitions_are_events_and_rejections_mark_the_span() {
    let capture = Capture::start();

    let b = CircuitBreaker::builder("payments")
        .sliding_window(SlidingWindow::Count(4))
        .minimum_calls(4)
        .build()
        .unwrap();
    b.try_acquire().unwrap().record(Verdict::Success);
    for _ in 0..2 {
        b.try_acquire().unwrap().record(Verdict::Failure);
    }
    scope("corr-7".parse().unwrap(), async {
        b.try_acquire().unwrap().record(Verdict::Failure);
    })
    .await;
    let span = tracing::info_span!(
        "request",
        resilience.circuit_breaker.name = Empty,
        resilience.circuit_breaker.state = Empty,
        resilience.rejected = Empty,
    );
    span.in_scope(|| assert!(b.try_acquire().is_err()));
    drop(span);
    b.reset();

    let out = capture.text();
    let opened = out
        .lines()
        .find(|l| l.contains("circuit breaker opened"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(opened.contains("WARN"), "{opened}");
    assert!(opened.contains("breaker=payments"), "{opened}");
    assert!(opened.contains("from=\"closed\""), "{opened}");
    assert!(opened.contains("to=\"open\""), "{opened}");
    assert!(
        opened.contains("failure rate 75.0% >= threshold 50.0%"),
        "{opened}"
    );
    assert!(opened.contains("failure_rate=0.75"), "{opened}");
    assert!(opened.contains("correlation_id=\"corr-7\""), "{opened}");
    let rejected = out
        .lines()
        .find(|l| l.contains("call not permitted"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        rejected.contains("resilience.circuit_breaker.name=\"payments\"")
            && rejected.contains("resilience.circuit_breaker.state=\"open\"")
            && rejected.contains("resilience.rejected=true"),
        "{rejected}"
    );
    let closed = out
        .lines()
        .find(|l| l.contains("circuit breaker state changed"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        closed.contains("INFO") && closed.contains("reason=manual"),
        "{closed}"
    );
}
