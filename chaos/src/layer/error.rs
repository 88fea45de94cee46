use std::fmt;
use std::sync::Arc;

/// The error of an injected `abort` or `reset`: the server drops the connection
/// (hyper closes it when the service fails), the client sees a connection error.
/// Its [`source`](std::error::Error::source) is an `io::Error` of kind
/// `ConnectionAborted` or `ConnectionReset`.
#[derive(Debug)]
pub struct InjectedFault {
    rule: Arc<str>,
    io: std::io::Error,
}

impl InjectedFault {
    pub(crate) fn new(rule: Arc<str>, kind: std::io::ErrorKind) -> Self {
        InjectedFault {
            rule,
            io: std::io::Error::new(kind, "injected by telltale chaos"),
        }
    }

    /// The rule that injected it.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// `ConnectionAborted` or `ConnectionReset`.
    pub fn kind(&self) -> std::io::ErrorKind {
        self.io.kind()
    }
}

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.io.kind() == std::io::ErrorKind::ConnectionReset {
            "reset"
        } else {
            "abort"
        };
        write!(f, "chaos: connection {what} injected by rule {}", self.rule)
    }
}

impl std::error::Error for InjectedFault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.io)
    }
}

/// The body error of an injected `truncate`.
#[derive(Debug)]
pub struct BodyTruncated {
    pub(crate) rule: Arc<str>,
    pub(crate) after: u64,
}

impl BodyTruncated {
    /// The rule that injected it.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// Bytes let through before the cut.
    pub fn after(&self) -> u64 {
        self.after
    }
}

impl fmt::Display for BodyTruncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chaos: response body truncated after {} bytes by rule {}",
            self.after, self.rule
        )
    }
}

impl std::error::Error for BodyTruncated {}
