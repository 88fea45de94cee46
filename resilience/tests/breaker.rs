//! Breaker behaviour through the public API, with tokio's paused clock.

use std::future::pending;
use std::time::Duration;

use telltale_core::correlation::{CorrelationId, scope};
use telltale_resilience::{
    AbandonedPolicy, BreakerEvent, CircuitBreaker, CircuitBreakerBuilder, Error, Reason,
    SlidingWindow, State, Verdict,
};
use tokio::time::{advance, sleep};

fn builder() -> CircuitBreakerBuilder {
    CircuitBreaker::builder("test")
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(4)
        .failure_rate_threshold(0.5)
        .wait_in_open(Duration::from_secs(10))
        .permitted_probes(2)
        .probe_deadline(Duration::from_secs(5))
}

async fn fail(b: &CircuitBreaker) {
    let _ = b.call(async { Err::<(), _>("boom") }).await;
}

async fn succeed(b: &CircuitBreaker) -> Result<(), Error> {
    b.call(async { Ok::<_, std::io::Error>(()) }).await
}

#[tokio::test(start_paused = true)]
async fn opens_waits_probes_and_closes() {
    let b = builder().build().unwrap();
    for _ in 0..3 {
        fail(&b).await;
    }
    assert_eq!(b.state(), State::Closed, "below the minimum calls");
    fail(&b).await;
    assert_eq!(b.state(), State::Open);

    let Err(Error::Open(open)) = succeed(&b).await else {
        panic!("expected a rejection")
    };
    assert_eq!(&*open.name, "test");
    assert_eq!(open.retry_after, Some(Duration::from_secs(10)));

    advance(Duration::from_secs(4)).await;
    let Err(Error::Open(open)) = succeed(&b).await else {
        panic!("still open")
    };
    assert_eq!(open.retry_after, Some(Duration::from_secs(6)));

    advance(Duration::from_secs(6)).await;
    let p1 = b.try_acquire().unwrap();
    assert!(p1.is_probe());
    assert_eq!(b.state(), State::HalfOpen);
    let p2 = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err(), "only two probes");
    p1.record(Verdict::Success);
    assert_eq!(b.state(), State::HalfOpen, "waits for every probe");
    p2.record(Verdict::Success);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().calls, 0, "a closed window starts empty");
}

#[tokio::test(start_paused = true)]
async fn failed_probes_reopen_with_backoff() {
    let b = builder()
        .permitted_probes(1)
        .wait_backoff(2.0, Duration::from_secs(25))
        .build()
        .unwrap();
    for _ in 0..4 {
        fail(&b).await;
    }
    let mut expected = [10, 20, 25, 25].into_iter();
    let mut wait = expected.next().unwrap();
    for next in expected {
        let Err(Error::Open(open)) = succeed(&b).await else {
            panic!()
        };
        assert_eq!(open.retry_after, Some(Duration::from_secs(wait)));
        advance(Duration::from_secs(wait)).await;
        fail(&b).await; // the probe fails
        assert_eq!(b.state(), State::Open);
        wait = next;
    }
    let Err(Error::Open(open)) = succeed(&b).await else {
        panic!()
    };
    assert_eq!(open.retry_after, Some(Duration::from_secs(25)));
    // A success closes and resets the backoff.
    advance(Duration::from_secs(25)).await;
    succeed(&b).await.unwrap();
    assert_eq!(b.state(), State::Closed);
    for _ in 0..4 {
        fail(&b).await;
    }
    let Err(Error::Open(open)) = succeed(&b).await else {
        panic!()
    };
    assert_eq!(open.retry_after, Some(Duration::from_secs(10)));
}

#[tokio::test(start_paused = true)]
async fn jitter_stays_in_bounds() {
    let b = builder().wait_jitter(0.5).build().unwrap();
    for _ in 0..4 {
        fail(&b).await;
    }
    let Err(Error::Open(open)) = succeed(&b).await else {
        panic!()
    };
    let d = open.retry_after.unwrap();
    assert!(
        d >= Duration::from_secs(5) && d <= Duration::from_secs(15),
        "{d:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_the_breaker() {
    let b = builder()
        .slow_call_duration(Duration::from_millis(100))
        .slow_call_rate_threshold(0.75)
        .build()
        .unwrap();
    let mut events = b.subscribe();
    for _ in 0..4 {
        b.call(async {
            sleep(Duration::from_millis(150)).await;
            Ok::<_, std::io::Error>(())
        })
        .await
        .unwrap();
    }
    assert_eq!(b.state(), State::Open);
    let BreakerEvent::StateTransition {
        from, to, reason, ..
    } = events.recv().await.unwrap()
    else {
        panic!()
    };
    assert_eq!((from, to), (State::Closed, State::Open));
    assert!(
        matches!(reason, Reason::SlowCallRate { rate, .. } if rate == 1.0),
        "{reason:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_failures() {
    let b = builder()
        .sliding_window(SlidingWindow::Time {
            duration: Duration::from_secs(10),
            buckets: 10,
        })
        .build()
        .unwrap();
    for _ in 0..3 {
        fail(&b).await;
    }
    advance(Duration::from_secs(11)).await;
    succeed(&b).await.unwrap();
    assert_eq!(b.snapshot().calls, 1, "old failures left the window");
    fail(&b).await;
    fail(&b).await;
    assert_eq!(
        b.state(),
        State::Closed,
        "2 of 3 in the window: below minimum"
    );
    fail(&b).await;
    assert_eq!(b.state(), State::Open, "3 failures of 4 calls");
}

#[tokio::test(start_paused = true)]
async fn probe_that_never_returns_cannot_wedge() {
    let b = builder().permitted_probes(1).build().unwrap();
    for _ in 0..4 {
        fail(&b).await;
    }
    advance(Duration::from_secs(10)).await;
    let stuck = b.try_acquire().unwrap();
    assert!(stuck.is_probe());
    let Err(open) = b.try_acquire() else { panic!() };
    assert_eq!(open.state, State::HalfOpen);
    assert_eq!(open.retry_after, Some(Duration::from_secs(5)));
    advance(Duration::from_secs(5)).await;
    // The deadline passed: re-open, then probe again after the wait.
    let Err(open) = b.try_acquire() else { panic!() };
    assert_eq!(open.state, State::Open);
    assert_eq!(b.state(), State::Open);
    advance(Duration::from_secs(10)).await;
    let probe = b.try_acquire().unwrap();
    // The stuck probe's late success changes nothing.
    stuck.record(Verdict::Success);
    assert_eq!(b.state(), State::HalfOpen);
    probe.record(Verdict::Success);
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn late_results_do_not_move_the_state() {
    let b = builder().permitted_probes(1).build().unwrap();
    // Admitted while closed, finishing much later.
    let early_success = b.try_acquire().unwrap();
    let early_failures: Vec<_> = (0..4).map(|_| b.try_acquire().unwrap()).collect();
    for _ in 0..4 {
        fail(&b).await;
    }
    assert_eq!(b.state(), State::Open);
    // Late failures admitted while closed cannot extend or re-trigger anything.
    for p in early_failures {
        p.record(Verdict::Failure);
    }
    advance(Duration::from_secs(10)).await;
    let probe = b.try_acquire().unwrap();
    // A late success cannot close the half-open breaker.
    early_success.record(Verdict::Success);
    assert_eq!(b.state(), State::HalfOpen);
    probe.record(Verdict::Success);
    assert_eq!(b.state(), State::Closed);
    // A result from the first closed generation does not count in this one.
    let old = b.try_acquire().unwrap();
    b.reset();
    old.record(Verdict::Failure);
    assert_eq!(b.snapshot().calls, 0);
}

#[tokio::test(start_paused = true)]
async fn dropped_probe_gives_its_place_back() {
    let b = builder().permitted_probes(1).build().unwrap();
    for _ in 0..4 {
        fail(&b).await;
    }
    advance(Duration::from_secs(10)).await;
    let call = b.call(pending::<Result<(), std::io::Error>>());
    assert!(b.try_acquire().is_err(), "the pending call holds the probe");
    drop(call);
    let probe = b.try_acquire().expect("the probe slot was released");
    probe.record(Verdict::Success);
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn abandoned_policy_failure_counts_drops() {
    let b = builder()
        .abandoned(AbandonedPolicy::Failure)
        .build()
        .unwrap();
    for _ in 0..4 {
        drop(b.call(pending::<Result<(), std::io::Error>>()));
    }
    assert_eq!(b.state(), State::Open);

    let b = builder()
        .abandoned(AbandonedPolicy::FailureAfter(Duration::from_secs(1)))
        .build()
        .unwrap();
    for _ in 0..4 {
        drop(b.call(pending::<Result<(), std::io::Error>>()));
    }
    assert_eq!(b.snapshot().calls, 0, "early drops are ignored");
    for _ in 0..4 {
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            b.call(pending::<Result<(), std::io::Error>>()),
        )
        .await;
        assert!(r.is_err());
    }
    assert_eq!(b.state(), State::Open, "drops after 1s count as failures");
}

#[tokio::test(start_paused = true)]
async fn manual_control() {
    let b = builder().build().unwrap();
    b.force_open();
    let Err(Error::Open(open)) = succeed(&b).await else {
        panic!()
    };
    assert_eq!(open.state, State::ForcedOpen);
    assert_eq!(open.retry_after, None);
    advance(Duration::from_secs(3600)).await;
    assert!(succeed(&b).await.is_err(), "forced open stays open");

    b.disable();
    for _ in 0..20 {
        fail(&b).await;
    }
    assert_eq!(b.state(), State::Disabled);
    assert_eq!(b.snapshot().calls, 0);

    b.metrics_only();
    for _ in 0..20 {
        fail(&b).await;
    }
    assert_eq!(b.state(), State::MetricsOnly);
    assert_eq!(b.snapshot().failed, 10);

    b.reset();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().calls, 0);
    succeed(&b).await.unwrap();

    b.transition_to(State::Open);
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn classifier_and_ignored_results() {
    let b = builder().build().unwrap();
    for _ in 0..10 {
        let r = b
            .call_with(async { Err::<(), _>(std::io::Error::other("404")) }, |_| {
                Verdict::Ignore
            })
            .await;
        assert!(matches!(r, Err(Error::Inner(_))));
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().calls, 0);
}

#[tokio::test(start_paused = true)]
async fn events_and_correlation_id_of_the_tripping_call() {
    let b = builder().build().unwrap();
    let mut events = b.subscribe();
    for _ in 0..3 {
        fail(&b).await;
    }
    let id: CorrelationId = "trip-42".parse().unwrap();
    scope(id, fail(&b)).await;
    let BreakerEvent::StateTransition {
        name,
        from,
        to,
        reason,
        correlation_id,
        ..
    } = events.recv().await.unwrap()
    else {
        panic!()
    };
    assert_eq!(&*name, "test");
    assert_eq!((from, to), (State::Closed, State::Open));
    assert!(matches!(reason, Reason::FailureRate { rate, .. } if rate == 1.0));
    assert_eq!(correlation_id.unwrap().as_str(), "trip-42");
    let _ = succeed(&b).await;
    let BreakerEvent::Rejected {
        state, retry_after, ..
    } = events.recv().await.unwrap()
    else {
        panic!()
    };
    assert_eq!(state, State::Open);
    assert!(retry_after.is_some());
}
