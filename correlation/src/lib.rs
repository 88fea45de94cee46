//! telltale-correlation (work in progress).
