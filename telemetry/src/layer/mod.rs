//! Server and client request layers: one record per request feeding the span and the RED metrics.
