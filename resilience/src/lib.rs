//! telltale-resilience (work in progress).
