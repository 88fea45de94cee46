//! One test's capture of tracing events and span recordings.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::dispatcher::DefaultGuard;
use tracing::field::{Field, Visit};
use tracing::span::{Id, Record};
use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Everything one capture saw.
#[derive(Default)]
struct Seen {
    events: Vec<CapturedEvent>,
    records: Vec<SpanRecord>,
    text: Vec<u8>,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Seen>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Seen> {
        // A panicking test thread must not hide what was captured.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Captures the tracing events and span recordings of the current thread
/// (and of whatever runs with [`Capture::dispatch`]) until dropped.
///
/// Every level is captured. Starting a capture calls [`init`](crate::init).
pub struct Capture {
    shared: Shared,
    dispatch: Dispatch,
    _guard: DefaultGuard,
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("events", &self.shared.lock().events.len())
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Starts capturing: installs the capture as this thread's default
    /// dispatcher until the returned value drops.
    #[must_use = "the capture stops when dropped"]
    pub fn start() -> Self {
        crate::init();
        let shared = Shared::default();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .without_time()
                    .with_ansi(false)
                    .with_writer(shared.clone()),
            )
            .with(Recorder(shared.clone()));
        let dispatch = Dispatch::new(subscriber);
        let guard = tracing::dispatcher::set_default(&dispatch);
        Capture {
            shared,
            dispatch,
            _guard: guard,
        }
    }

    /// The capture's dispatcher, for code that runs on other threads: spawned
    /// tasks (`tracing::instrument::WithSubscriber::with_subscriber`), runtime
    /// worker threads (`on_thread_start` + `tracing::dispatcher::set_default`).
    pub fn dispatch(&self) -> Dispatch {
        self.dispatch.clone()
    }

    /// The events seen so far, in order.
    pub fn events(&self) -> Vec<CapturedEvent> {
        self.shared.lock().events.clone()
    }

    /// The values recorded on spans after their creation (`Span::record`, and
    /// so every field declared `Empty` and filled in later), one per field
    /// and in order.
    pub fn records(&self) -> Vec<SpanRecord> {
        self.shared.lock().records.clone()
    }

    /// The events as `tracing_subscriber::fmt` writes them (no timestamps, no
    /// colors): `LEVEL span{fields}: target: message field=value …`.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.shared.lock().text).into_owned()
    }

    /// [`text`](Self::text), line by line.
    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }
}

/// One captured event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedEvent {
    level: Level,
    target: String,
    fields: Vec<(&'static str, String)>,
}

impl CapturedEvent {
    /// The event's level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// The event's target (by default the emitting module's path).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The message (the `message` field), if any.
    pub fn message(&self) -> Option<&str> {
        self.field("message")
    }

    /// The value of field `name`: strings as they are, everything else as
    /// its `Debug` (which `%value` fields make their `Display`).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All fields in declaration order, the message included.
    pub fn fields(&self) -> &[(&'static str, String)] {
        &self.fields
    }
}

impl fmt::Display for CapturedEvent {
    /// `LEVEL target: message field=value …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:", self.level, self.target)?;
        if let Some(message) = self.message() {
            write!(f, " {message}")?;
        }
        for (name, value) in self.fields.iter().filter(|(n, _)| *n != "message") {
            write!(f, " {name}={value}")?;
        }
        Ok(())
    }
}

/// One field value recorded on an existing span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanRecord {
    /// The span's name.
    pub span: &'static str,
    /// The field's name.
    pub field: &'static str,
    /// The value, formatted as in [`CapturedEvent::field`].
    pub value: String,
}

impl fmt::Display for SpanRecord {
    /// `span: field=value`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}={}", self.span, self.field, self.value)
    }
}

/// Collects `(name, value)` pairs.
struct Fields(Vec<(&'static str, String)>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push((field.name(), format!("{value:?}")));
    }
}

/// The layer that fills [`Seen::events`] and [`Seen::records`].
struct Recorder(Shared);

impl<S> tracing_subscriber::Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        let meta = event.metadata();
        self.0.lock().events.push(CapturedEvent {
            level: *meta.level(),
            target: meta.target().to_owned(),
            fields: fields.0,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).map_or("?", |s| s.name());
        let mut fields = Fields(Vec::new());
        values.record(&mut fields);
        self.0
            .lock()
            .records
            .extend(
                fields
                    .0
                    .into_iter()
                    .map(|(field, value)| SpanRecord { span, field, value }),
            );
    }
}

impl io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Shared {
    type Writer = Shared;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
