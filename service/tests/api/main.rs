//! Integration tests: the real application in-process on an ephemeral port, and the real
//! binary started with a chosen environment.

#![allow(clippy::unwrap_used)]

mod binary;
mod closure;
mod config_errors;
mod fail_closed;
mod greeting;
mod healthcheck;
mod helpers;
mod info;
mod limits;
mod logging;
mod metrics;
mod probe_port;
mod probes;
mod readiness_switch;
mod secrets;
mod shutdown;
mod signals;
