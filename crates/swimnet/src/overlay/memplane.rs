//! In-memory data plane for tests.
