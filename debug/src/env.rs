//! The debug surface's environment variables.
//!
//! ```
//! use telltale_core::config::Env;
//! use telltale_debug::env;
//!
//! assert!(env::is_configured(&Env::from_pairs([(env::ADDR, "127.0.0.1:0")])));
//! assert_eq!(env::DEFAULT_ADDR.to_string(), "127.0.0.1:9797");
//! ```

telltale_core::env_vars! {
    /// `TELLTALE_DEBUG_ADDR`: the address [`DebugSurface::serve`](crate::DebugSurface::serve)
    /// binds, an IP address and a port (default [`DEFAULT_ADDR`],
    /// `127.0.0.1:9797`). A non-loopback address needs [`ALLOW_REMOTE`].
    ADDR = "TELLTALE_DEBUG_ADDR";
    /// `TELLTALE_DEBUG_ALLOW_REMOTE`: `true` allows [`ADDR`] to be an
    /// address other than loopback (default `false`).
    ALLOW_REMOTE = "TELLTALE_DEBUG_ALLOW_REMOTE";
    /// `TELLTALE_DEBUG_TOKEN`: the token the mutating endpoints (chaos
    /// pause, resume, kill) require; without it the surface is read-only.
    /// 16 to 256 visible ASCII characters.
    TOKEN = "TELLTALE_DEBUG_TOKEN";
}

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use telltale_core::config::{ConfigError, Env, EnvSource, ParseError};

/// The address served unless configured: `127.0.0.1:9797`.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9797);
/// The shortest [`TOKEN`], in characters.
pub const MIN_TOKEN_LEN: usize = 16;
/// The longest [`TOKEN`], in characters.
pub const MAX_TOKEN_LEN: usize = 256;

const TOKEN_EXPECTED: &str = "16 to 256 visible ASCII characters (no spaces)";

/// Checks a token: [`MIN_TOKEN_LEN`] to [`MAX_TOKEN_LEN`] visible ASCII
/// characters.
pub(crate) fn check_token(v: &str) -> Result<(), ParseError> {
    if let Some(i) = v.bytes().position(|b| !b.is_ascii_graphic()) {
        return Err(ParseError::new(i + 1, TOKEN_EXPECTED));
    }
    if (MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&v.len()) {
        Ok(())
    } else {
        Err(ParseError::new(1, TOKEN_EXPECTED))
    }
}

/// What the variables say; `None` where unset.
pub(crate) struct Settings {
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) allow_remote: Option<bool>,
    pub(crate) token: Option<String>,
}

pub(crate) fn read<S: EnvSource>(env: &Env<S>) -> Result<Settings, ConfigError> {
    let allow_remote = env.boolean(ALLOW_REMOTE)?;
    let remote_ok = allow_remote.unwrap_or(false);
    let addr = env.parse(ADDR, |v| {
        let addr: SocketAddr = v.parse().map_err(|_| {
            ParseError::new(
                1,
                "an IP address and a port, such as 127.0.0.1:9797 or [::1]:9797",
            )
        })?;
        if !addr.ip().is_loopback() && !remote_ok {
            return Err(ParseError::new(
                1,
                "a loopback address (127.0.0.0/8 or ::1); set TELLTALE_DEBUG_ALLOW_REMOTE=true to serve on another",
            ));
        }
        Ok(addr)
    })?;
    let token = env.parse(TOKEN, |v| check_token(v).map(|()| v.to_owned()))?;
    Ok(Settings {
        addr,
        allow_remote,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(pairs: &[(&str, &str)]) -> String {
        match read(&Env::from_pairs(pairs.iter().copied())) {
            Ok(_) => panic!("accepted {pairs:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_variable_is_validated_and_named() {
        let e = err(&[(ADDR, "0.0.0.0:9797")]);
        assert!(
            e.contains("TELLTALE_DEBUG_ADDR")
                && e.contains("0.0.0.0:9797")
                && e.contains("loopback"),
            "{e}"
        );
        let e = err(&[(ADDR, "localhost")]);
        assert!(
            e.contains("TELLTALE_DEBUG_ADDR") && e.contains("IP address and a port"),
            "{e}"
        );
        let e = err(&[(ADDR, "127.0.0.1:99999")]);
        assert!(e.contains("TELLTALE_DEBUG_ADDR"), "{e}");
        let e = err(&[(ALLOW_REMOTE, "maybe")]);
        assert!(
            e.contains("TELLTALE_DEBUG_ALLOW_REMOTE") && e.contains("maybe"),
            "{e}"
        );
        let e = err(&[(TOKEN, "short")]);
        assert!(
            e.contains("TELLTALE_DEBUG_TOKEN") && e.contains("16 to 256"),
            "{e}"
        );
        let e = err(&[(TOKEN, "0123456789abcdef\u{7}x")]);
        assert!(e.contains("TELLTALE_DEBUG_TOKEN"), "{e}");
        let e = err(&[(TOKEN, &"x".repeat(257))]);
        assert!(e.contains("TELLTALE_DEBUG_TOKEN"), "{e}");

        let ok = read(&Env::from_pairs([
            (ADDR, "0.0.0.0:0"),
            (ALLOW_REMOTE, "true"),
            (TOKEN, "0123456789abcdef"),
        ]))
        .unwrap();
        assert_eq!(ok.addr.unwrap().to_string(), "0.0.0.0:0");
        assert_eq!(ok.token.as_deref(), Some("0123456789abcdef"));
        let ok = read(&Env::from_pairs([(ADDR, "[::1]:0")])).unwrap();
        assert!(ok.addr.unwrap().ip().is_loopback());
        assert!(read(&Env::from_pairs([(ADDR, "127.8.9.10:1")])).is_ok());
    }
}
