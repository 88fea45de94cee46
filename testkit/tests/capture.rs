//! The capture sees exactly its thread's events, whatever other threads did
//! to the callsites first.

use std::sync::{Arc, Barrier};

use telltale_testkit::{Capture, SpanRecord};
use tracing::Level;
use tracing::field::Empty;

fn shared_callsite(n: u32) {
    tracing::debug!(n, "shared callsite");
}

/// Without the global dispatcher this fails every time: with one registered
/// dispatcher, `tracing-core` computes the interest of a new callsite from
/// the registering thread's default (none here), caches `never`, and the
/// capture never sees the event.
#[test]
fn a_callsite_first_hit_on_a_thread_without_subscriber_is_still_captured() {
    let capture = Capture::start();
    std::thread::spawn(|| shared_callsite(1)).join().unwrap();
    shared_callsite(2);
    let events = capture.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].field("n"), Some("2"));
}

/// A thread whose own subscriber filters the level out does not hide the
/// callsite from the capture either (it would cache `never` the same way).
#[test]
fn a_less_verbose_subscriber_elsewhere_does_not_hide_events() {
    let capture = Capture::start();
    std::thread::spawn(|| {
        let info_only = tracing_subscriber::fmt()
            .with_max_level(Level::INFO)
            .with_writer(std::io::sink)
            .finish();
        let _guard = telltale_testkit::set_default(info_only);
        tracing::debug!("filtered out there");
    })
    .join()
    .unwrap();
    for _ in 0..2 {
        tracing::debug!("filtered out there");
    }
    assert_eq!(capture.events().len(), 2);
}

#[test]
fn concurrent_captures_see_only_their_own_thread() {
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                // Half capture, half emit into nothing.
                let capture = (i % 2 == 0).then(Capture::start);
                for n in 0..50 {
                    tracing::trace!(thread = i, n, "busy");
                }
                if let Some(capture) = capture {
                    let events = capture.events();
                    assert_eq!(events.len(), 50, "thread {i}");
                    let mine = i.to_string();
                    assert!(events.iter().all(|e| e.field("thread") == Some(&*mine)));
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn events_lines_and_span_records() {
    let capture = Capture::start();
    let span = tracing::info_span!("request", state = Empty, rejected = Empty);
    span.in_scope(|| {
        span.record("state", "open");
        span.record("rejected", true);
        tracing::warn!(breaker = "db", rate = 0.75, "circuit breaker opened");
    });
    let events = capture.events();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.level(), Level::WARN);
    assert_eq!(event.target(), module_path!());
    assert_eq!(event.message(), Some("circuit breaker opened"));
    assert_eq!(event.field("breaker"), Some("db"));
    assert_eq!(event.field("rate"), Some("0.75"));
    assert_eq!(
        event.to_string(),
        format!(
            "WARN {}: circuit breaker opened breaker=db rate=0.75",
            module_path!()
        )
    );
    assert_eq!(
        capture.records(),
        [
            SpanRecord {
                span: "request",
                field: "state",
                value: "open".into()
            },
            SpanRecord {
                span: "request",
                field: "rejected",
                value: "true".into()
            },
        ]
    );
    let lines = capture.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("WARN")
            && lines[0].contains("request{state=\"open\" rejected=true}")
            && lines[0].contains("circuit breaker opened breaker=\"db\" rate=0.75"),
        "{lines:?}"
    );
}

#[test]
fn the_dispatch_reaches_other_threads() {
    let capture = Capture::start();
    let dispatch = capture.dispatch();
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || tracing::info!("from a worker"));
    })
    .join()
    .unwrap();
    assert_eq!(capture.events()[0].message(), Some("from a worker"));
}
