//! [`env_vars!`](crate::env_vars): how every `env` module declares its
//! variables.

/// Declares the environment variables of an `env` module: one `pub const`
/// per variable, `VARS` with all of them, and
/// `is_configured(&Env<S>) -> bool`, whether any of them is set (a value that
/// is not UTF-8 counts as set; parsing it later reports it).
///
/// - `NAME;` declares `pub const NAME: &str = "NAME"`; `NAME = "VALUE";` (any
///   `&str` expression) gives it another value. Doc comments go before each.
/// - `@also [path, ...]` ends the list with variables declared elsewhere that
///   the component reads too: they are in `VARS` and `is_configured`.
/// - `@not_configuring [NAME, ...]` names declared variables that are in
///   `VARS` but whose being set alone does not configure the component.
///
/// ```
/// mod env {
///     telltale_core::env_vars! {
///         /// `APP_TIMEOUT`: the request timeout.
///         TIMEOUT = "APP_TIMEOUT";
///         /// The deployment environment.
///         APP_ENV;
///         @also [telltale_core::resource::VAR]
///         @not_configuring [APP_ENV]
///     }
/// }
///
/// use telltale_core::config::Env;
///
/// assert_eq!(env::TIMEOUT, "APP_TIMEOUT");
/// assert_eq!(env::VARS, ["APP_TIMEOUT", "APP_ENV", "OTEL_RESOURCE_ATTRIBUTES"]);
/// assert!(env::is_configured(&Env::from_pairs([("APP_TIMEOUT", "2s")])));
/// assert!(env::is_configured(&Env::from_pairs([("OTEL_RESOURCE_ATTRIBUTES", "a=b")])));
/// assert!(!env::is_configured(&Env::from_pairs([("APP_ENV", "prod"), ("APP_TIMEOUT", " ")])));
/// ```
///
/// A family read under a configurable prefix starts with
/// `@prefix DEFAULT_PREFIX = "...";`: the constants are suffixes (`VARS` too),
/// and `is_configured` asks for `DEFAULT_PREFIX` + each of them:
///
/// ```
/// mod env {
///     telltale_core::env_vars! {
///         /// The prefix the builder reads unless given another.
///         @prefix DEFAULT_PREFIX = "APP_POOL_";
///         /// `SIZE`: the pool size.
///         SIZE;
///     }
/// }
///
/// use telltale_core::config::Env;
///
/// assert_eq!(env::VARS, ["SIZE"]);
/// assert!(env::is_configured(&Env::from_pairs([("APP_POOL_SIZE", "8")])));
/// assert!(!env::is_configured(&Env::from_pairs([("SIZE", "8")])));
/// ```
#[macro_export]
macro_rules! env_vars {
    (@value $name:ident) => { ::core::stringify!($name) };
    (@value $name:ident, $value:expr) => { $value };
    (
        $(#[$prefix_doc:meta])*
        @prefix $prefix:ident = $prefix_value:expr;
        $($(#[$doc:meta])* $name:ident $(= $value:expr)?;)*
    ) => {
        $(#[$prefix_doc])*
        pub const $prefix: &str = $prefix_value;

        $(
            $(#[$doc])*
            pub const $name: &str = $crate::env_vars!(@value $name $(, $value)?);
        )*

        #[doc = ::core::concat!(
            "Every variable this module's component reads, without [`",
            ::core::stringify!($prefix),
            "`]."
        )]
        pub const VARS: &[&str] = &[$($name,)*];

        #[doc = ::core::concat!(
            "Whether any of [`VARS`], under [`",
            ::core::stringify!($prefix),
            "`], is set in `env` (a value that is not UTF-8 counts as set)."
        )]
        pub fn is_configured<S: $crate::config::EnvSource>(
            env: &$crate::config::Env<S>,
        ) -> bool {
            VARS.iter().any(|name| {
                env.any_set(&[[$prefix, name].concat().as_str()])
                    .unwrap_or(true)
            })
        }
    };
    (
        $($(#[$doc:meta])* $name:ident $(= $value:expr)?;)*
        $(@also [$($extra:path),* $(,)?])?
        $(@not_configuring [$($passive:ident),* $(,)?])?
    ) => {
        $(
            $(#[$doc])*
            pub const $name: &str = $crate::env_vars!(@value $name $(, $value)?);
        )*

        /// Every variable this module's component reads.
        pub const VARS: &[&str] = &[$($name,)* $($($extra,)*)?];

        /// Whether any of [`VARS`] is set in `env` (a value that is not
        /// UTF-8 counts as set).
        pub fn is_configured<S: $crate::config::EnvSource>(
            env: &$crate::config::Env<S>,
        ) -> bool {
            const NOT_CONFIGURING: &[&str] = &[$($($passive,)*)?];
            VARS.iter()
                .filter(|name| !NOT_CONFIGURING.contains(*name))
                .any(|name| env.any_set(&[*name]).unwrap_or(true))
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, Env, EnvSource, ParseError};

    #[allow(unreachable_pub)]
    mod plain {
        crate::env_vars! {
            /// A.
            A = "X_A";
            B;
            @also [super::OTHER]
            @not_configuring [B]
        }
    }

    #[allow(unreachable_pub)]
    mod prefixed {
        crate::env_vars! {
            @prefix DEFAULT_PREFIX = "P_";
            A;
        }
    }

    const OTHER: &str = "X_OTHER";

    /// `X_A` and `P_A` are set but not UTF-8.
    struct NotUtf8;

    impl EnvSource for NotUtf8 {
        fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
            if name == "X_A" || name == "P_A" {
                Err(ConfigError::new(
                    name.to_owned(),
                    "\u{FFFD}",
                    ParseError::new(1, "valid UTF-8"),
                ))
            } else {
                Ok(None)
            }
        }
    }

    #[test]
    fn declares_and_asks() {
        assert_eq!(plain::VARS, ["X_A", "B", "X_OTHER"]);
        assert!(plain::is_configured(&Env::from_pairs([(OTHER, "1")])));
        assert!(!plain::is_configured(&Env::from_pairs([("B", "1")])));
        assert!(plain::is_configured(&Env::new(NotUtf8)));
        assert_eq!(prefixed::DEFAULT_PREFIX, "P_");
        assert_eq!(prefixed::VARS, ["A"]);
        assert!(prefixed::is_configured(&Env::from_pairs([("P_A", "1")])));
        assert!(!prefixed::is_configured(&Env::from_pairs([("A", "1")])));
        assert!(prefixed::is_configured(&Env::new(NotUtf8)));
    }
}
