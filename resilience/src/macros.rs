//! The crate's macros.

/// Plain `#[must_use]` builder setters, one per `doc name(field: Type);`:
/// `pub fn name(mut self, field: Type) -> Self` storing the value.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($field:ident: $ty:ty);)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $field: $ty) -> Self {
                self.$field = $field;
                self
            }
        )*
    };
}

pub(crate) use setters;

/// `builder`, `from_env` and `from_env_source` of a handle built by
/// `$builder` (the convention of `docs/ARCHITECTURE.md`): `from_env*` return
/// the built handle; `$vars` names the variables in the docs.
macro_rules! env_constructors {
    ($builder:ident, $vars:literal) => {
        #[doc = concat!("Starts a builder; see [`", stringify!($builder), "`].")]
        pub fn builder(name: impl Into<std::sync::Arc<str>>) -> $builder {
            $builder::new(name)
        }

        #[doc = concat!(
                    "Built from the `", $vars, "` variables of the process environment on top ",
                    "of the defaults; see [`env`](mod@env) for the variables and [`",
                    stringify!($builder), "::env`] to overlay them on settings made in code."
                )]
        pub fn from_env(name: impl Into<std::sync::Arc<str>>) -> Result<Self, crate::BuildError> {
            Self::from_env_source(&telltale_core::Env::process(), name)
        }

        /// Like [`from_env`](Self::from_env), reading from `env`.
        pub fn from_env_source<S: telltale_core::config::EnvSource>(
            env: &telltale_core::Env<S>,
            name: impl Into<std::sync::Arc<str>>,
        ) -> Result<Self, crate::BuildError> {
            Self::builder(name).env(env)?.build()
        }
    };
}

pub(crate) use env_constructors;

/// `metric_prefix`, `env` and `env_with_prefix` of a builder whose module has
/// an `env` module (`DEFAULT_PREFIX`, `apply`) and a `metric_prefix` field;
/// `$vars` and `$metric` name the variables and a metric in the docs.
macro_rules! env_setters {
    ($vars:literal, $metric:literal) => {
        #[doc = concat!(
                    "A prefix joined with `_` to every metric name (`app` makes `app_", $metric,
                    "`); see [`names`](crate::names). Defaults to none."
                )]
        pub fn metric_prefix(mut self, prefix: impl Into<std::sync::Arc<str>>) -> Self {
            self.metric_prefix = Some(prefix.into());
            self
        }

        #[doc = concat!(
                    "Overlays the `", $vars, "` variables set in `env` on this builder (unset ",
                    "ones keep the builder's value); see [`env`](super::env) for the variables."
                )]
        pub fn env<S: telltale_core::config::EnvSource>(
            self,
            env: &telltale_core::Env<S>,
        ) -> Result<Self, crate::BuildError> {
            self.env_with_prefix(env, super::env::DEFAULT_PREFIX)
        }

        /// Like [`env`](Self::env), reading the variables named `prefix` + the
        /// names of [`env`](super::env).
        pub fn env_with_prefix<S: telltale_core::config::EnvSource>(
            self,
            env: &telltale_core::Env<S>,
            prefix: &str,
        ) -> Result<Self, crate::BuildError> {
            Ok(super::env::apply(self, env, prefix)?)
        }
    };
}

pub(crate) use env_setters;
