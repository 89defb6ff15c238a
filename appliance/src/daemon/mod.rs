//! The daemon, `stele serve`: one process per store that captures over HTTP
//! and answers only once what it captured is durable. [`server`] is its life
//! (lock, TLS, runtime, graceful stop), [`routes`] what each request does
//! (HTTP to the capture service to a status), [`listener`] how connections
//! are limited and timed out, [`metrics`] the store's Prometheus registry.

pub mod listener;
pub mod metrics;
pub mod routes;
pub mod server;

pub use server::run;
