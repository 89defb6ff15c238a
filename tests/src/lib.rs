//! Shared helpers for Stele integration tests live in the test files themselves.
