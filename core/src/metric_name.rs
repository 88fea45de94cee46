//! The one rule for metric names (see `docs/ARCHITECTURE.md`, "Metric names").
//!
//! A name is the configured prefix (none by default) joined with exactly one
//! `_` to the base name. telltale's own metrics have base names
//! `telltale_<component>_<what>`; RED metrics have the base names of their
//! scheme.
//!
//! ```
//! use telltale_core::metric_name::full;
//!
//! assert_eq!(full(None, "telltale_correlation_ids_generated_total"), "telltale_correlation_ids_generated_total");
//! assert_eq!(full(Some("myapp"), "http_requests_total"), "myapp_http_requests_total");
//! assert_eq!(full(Some("myapp_"), "http_requests_total"), "myapp_http_requests_total");
//! assert_eq!(full(Some(""), "http_requests_total"), "http_requests_total");
//! ```

/// The full name of the metric `base` under `prefix`: `base` when there is
/// no prefix (`None`, empty, or only underscores), else the prefix without its
/// trailing underscores, one `_`, and `base`.
pub fn full(prefix: Option<&str>, base: &str) -> String {
    match prefix.map(|p| p.trim_end_matches('_')) {
        None | Some("") => base.to_owned(),
        Some(p) => {
            let mut name = String::with_capacity(p.len() + 1 + base.len());
            name.push_str(p);
            name.push('_');
            name.push_str(base);
            name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::full;

    #[test]
    fn exactly_one_underscore() {
        assert_eq!(full(None, "x_total"), "x_total");
        assert_eq!(full(Some(""), "x_total"), "x_total");
        assert_eq!(full(Some("_"), "x_total"), "x_total");
        assert_eq!(full(Some("app"), "x_total"), "app_x_total");
        assert_eq!(full(Some("app_"), "x_total"), "app_x_total");
        assert_eq!(full(Some("app__"), "x_total"), "app_x_total");
        assert_eq!(full(Some("my_app"), "x_total"), "my_app_x_total");
    }
}
