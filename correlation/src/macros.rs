//! What the server and client layers and builders share, written once.

/// Builder setters that store their argument in a field:
/// `/// docs` `name(arg: Type) => field;`.
macro_rules! setters {
    ($( $(#[$doc:meta])* $name:ident($arg:ident: $ty:ty) => $field:ident; )*) => {$(
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, $arg: $ty) -> Self {
            self.$field = $arg;
            self
        }
    )*};
}

/// The layer struct (one `Arc<Shared>`, `Shared` having a `header` field),
/// with `new`, `builder`, `from_env`, `from_env_source`, `header`, `Default`
/// and `Layer`, built by `$builder` (which has `Default`, `env` and `build`)
/// and making `$service`.
macro_rules! layer_common {
    (
        $(#[$doc:meta])*
        pub struct $layer:ident => $builder:ident, $service:ident;
        $(#[$new_doc:meta])*
        fn new;
    ) => {
        $(#[$doc])*
        ///
        /// Cheap to clone (one `Arc`).
        #[derive(Clone, Debug)]
        pub struct $layer {
            pub(crate) shared: std::sync::Arc<Shared>,
        }

        impl $layer {
            $(#[$new_doc])*
            /// Reads no environment variable.
            pub fn new() -> Self {
                $builder::default()
                    .build()
                    .expect("the default configuration is valid")
            }

            /// A builder starting from the defaults.
            pub fn builder() -> $builder {
                $builder::default()
            }

            #[doc = concat!(
                "The layer from the defaults and the process environment; see [`",
                stringify!($builder),
                "::env`] for the variables."
            )]
            pub fn from_env() -> Result<Self, $crate::BuildError> {
                Self::from_env_source(&telltale_core::config::Env::process())
            }

            #[doc = concat!(
                "The layer from the defaults and the variables of `env`; see [`",
                stringify!($builder),
                "::env`]."
            )]
            pub fn from_env_source<S: telltale_core::config::EnvSource>(
                env: &telltale_core::config::Env<S>,
            ) -> Result<Self, $crate::BuildError> {
                $builder::default().env(env)?.build()
            }

            /// The header this layer writes (for the server layer, also the
            /// first one it reads).
            pub fn header(&self) -> &http::HeaderName {
                &self.shared.header
            }
        }

        impl Default for $layer {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<S> tower_layer::Layer<S> for $layer {
            type Service = $service<S>;

            fn layer(&self, inner: S) -> Self::Service {
                $service {
                    inner,
                    shared: std::sync::Arc::clone(&self.shared),
                }
            }
        }
    };
}
