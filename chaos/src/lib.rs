//! telltale-chaos (work in progress).
