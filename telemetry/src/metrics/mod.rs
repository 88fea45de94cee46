//! RED metrics (rate, errors, duration) with prepared handles and a cardinality cap, and Prometheus exposition.
