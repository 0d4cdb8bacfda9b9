//! Pieces every Chaukas service needs and none should re-implement: layered configuration,
//! telemetry (logs, OTLP traces), health endpoints and the shutdown signal that drains a
//! service.

pub mod config;
pub mod errors;
pub mod health;
pub mod internal;
pub mod shutdown;
pub mod telemetry;
