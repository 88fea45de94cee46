//! Span names (`GET /users/{id}`, `pkg.Service/Method`) built once per
//! route and reused, so that a request's span name costs no allocation.
//!
//! OpenTelemetry takes a span name as `Cow<'static, str>`: a name joined from
//! the method and the route would otherwise be a new `String` per request.
//! Names are route templates (the router's, or an allow-listed or vouched
//! gRPC method), so there are few of them; each distinct name is built once
//! and kept for the life of the process (leaked to get the `'static`
//! lifetime the span name needs). The table is bounded ([`MAX_NAMES`] names
//! of at most [`MAX_NAME_LEN`] bytes, so at most 256 KiB): past the bound, a
//! name is built per request as before. Written by hand because interning
//! crates either never bound what they keep or do not hand out `'static`
//! strings, and the lookup must not allocate (it borrows the route).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};

/// Distinct names kept at most, over the process.
const MAX_NAMES: usize = 1024;
/// Longer names are not kept.
const MAX_NAME_LEN: usize = 256;

/// The names of one route, by prefix (the method, or `""` for gRPC).
type Table = HashMap<Box<str>, Vec<(&'static str, &'static str)>, foldhash::fast::RandomState>;

struct Names {
    table: Table,
    len: usize,
}

impl Names {
    /// The kept name for `prefix` and `route`, if any.
    fn find(&self, prefix: &'static str, route: &str) -> Option<&'static str> {
        self.table
            .get(route)
            .and_then(|kept| kept.iter().find(|(p, _)| *p == prefix))
            .map(|(_, name)| *name)
    }
}

fn names() -> &'static RwLock<Names> {
    static NAMES: OnceLock<RwLock<Names>> = OnceLock::new();
    NAMES.get_or_init(|| {
        RwLock::new(Names {
            table: HashMap::default(),
            len: 0,
        })
    })
}

/// The name for `prefix` (a static string: an HTTP method, or `""` for gRPC)
/// and `route`, which `build` makes when it is not kept yet.
pub(crate) fn name(
    prefix: &'static str,
    route: &str,
    build: impl FnOnce() -> String,
) -> Cow<'static, str> {
    let lock = names();
    {
        let names = lock.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = names.find(prefix, route) {
            return Cow::Borrowed(found);
        }
        if names.len >= MAX_NAMES {
            return Cow::Owned(build());
        }
    }
    let built = build();
    if built.len() > MAX_NAME_LEN {
        return Cow::Owned(built);
    }
    let mut names = lock.write().unwrap_or_else(PoisonError::into_inner);
    // Another request may have kept it meanwhile.
    if let Some(found) = names.find(prefix, route) {
        return Cow::Borrowed(found);
    }
    if names.len >= MAX_NAMES {
        return Cow::Owned(built);
    }
    let kept: &'static str = Box::leak(built.into_boxed_str());
    names.len += 1;
    names
        .table
        .entry(route.into())
        .or_default()
        .push((prefix, kept));
    Cow::Borrowed(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_built_once_per_prefix_and_route() {
        let first = name("GET", "/names-test/{id}", || {
            "GET /names-test/{id}".to_owned()
        });
        assert!(matches!(first, Cow::Borrowed("GET /names-test/{id}")));
        let again = name("GET", "/names-test/{id}", || unreachable!("kept"));
        assert_eq!(again, "GET /names-test/{id}");
        let post = name("POST", "/names-test/{id}", || {
            "POST /names-test/{id}".to_owned()
        });
        assert_eq!(post, "POST /names-test/{id}");
        let grpc = name("", "/pkg.S/M", || "pkg.S/M".to_owned());
        assert_eq!(grpc, "pkg.S/M");
    }

    #[test]
    fn long_names_are_built_each_time() {
        let route = format!("/{}", "x".repeat(MAX_NAME_LEN));
        let long = name("GET", &route, || format!("GET {route}"));
        assert!(matches!(long, Cow::Owned(_)));
        assert_eq!(long, format!("GET {route}"));
    }
}
