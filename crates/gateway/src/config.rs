use chaukas_bus::NatsConfig;
use serde::{Deserialize, Serialize};

/// Everything the gateway reads from configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// The `[gateway]` section (`CHAUKAS_GATEWAY__*`).
    pub gateway: GatewaySettings,
    /// The shared `[nats]` section (`CHAUKAS_NATS__*`).
    pub nats: NatsConfig,
}

/// The `[gateway]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// gRPC listen address; 50051 is the port the Chaukas examples use.
    pub grpc_listen: String,
    /// HTTP listen address for the SDK's protobuf-over-HTTP API, health and metrics.
    pub http_listen: String,
    /// OTLP/gRPC's usual port: the same gRPC services as `grpc_listen` (the OTLP
    /// TraceService among them). Empty: not opened.
    pub otlp_grpc_listen: String,
    /// OTLP/HTTP's usual port: the same routes as `http_listen` (`POST /v1/traces` among
    /// them). Empty: not opened.
    pub otlp_http_listen: String,
    /// Most memory one OTLP export may take once decoded and mapped, as estimated from its
    /// encoded bytes before decoding (docs/otlp.md); a larger one is refused with 413 /
    /// RESOURCE_EXHAUSTED. It is paid from `max_body_budget_bytes`, so it must fit in it.
    pub max_otlp_decoded_bytes: usize,
    /// Most events one batch request may carry; a larger batch is refused whole.
    pub max_batch_events: usize,
    /// Largest encoded event accepted; big LLM payloads fit, a runaway blob does not.
    pub max_event_bytes: usize,
    /// Largest request body (gRPC message) accepted.
    pub max_request_bytes: usize,
    /// Bytes of accepted-but-unacknowledged events held at once; past it requests are
    /// shed with UNAVAILABLE ("high memory usage") so memory stays flat under overload.
    pub max_inflight_bytes: usize,
    /// How long to wait for JetStream to acknowledge before answering UNAVAILABLE.
    pub publish_timeout_ms: u64,
    /// The query service QueryEvents and GetEventStats are forwarded to.
    pub query_endpoint: String,
    /// The query service's `query.internal_token`, sent with every forwarded read.
    pub query_token: String,
    /// Longest a forwarded query may take before the gateway answers DEADLINE_EXCEEDED.
    pub query_timeout_ms: u64,
    /// Bytes of request bodies held at once, all requests together; each body frame costs
    /// three times its size (receive buffer and decoded copy) plus 64 bytes. Past it requests are refused with
    /// UNAVAILABLE / 503 and a retry hint before more of them is read.
    pub max_body_budget_bytes: usize,
    /// Open connections on both listeners together; more are closed at once.
    pub max_connections: usize,
    /// HTTP/1: time a client has to send a request's headers (also how long an idle
    /// keep-alive connection stays open).
    pub header_read_timeout_ms: u64,
    /// HTTP: time a client has to send a whole request body.
    pub body_timeout_ms: u64,
    /// gRPC: longest a call may take from its headers to its answer.
    pub request_timeout_ms: u64,
    /// gRPC: concurrent calls (HTTP/2 streams) on one connection.
    pub max_concurrent_streams: u32,
    /// Largest read request (QueryEvents, GetEventStats) body: they are small filters.
    pub max_read_request_bytes: usize,
    /// Live tails (`GET /v1/tail`) this gateway serves at once; more are refused with 429.
    /// Each holds a connection and polls the query service every 200 ms.
    pub max_tails: usize,
    /// Live tails one tenant may hold on this gateway, so one tenant cannot take them all.
    pub max_tails_per_tenant: usize,
    /// Let requests without an API key through, to any tenant: for a laptop (`make up` turns
    /// it on), never for a shared deployment. Keys that are sent are still checked.
    pub allow_unauthenticated: bool,
}

impl GatewaySettings {
    /// Every listener on a free loopback port: for tests and benchmarks that run many
    /// gateways on one machine.
    pub fn listen_on_free_loopback_ports(&mut self) {
        for address in [
            &mut self.grpc_listen,
            &mut self.http_listen,
            &mut self.otlp_grpc_listen,
            &mut self.otlp_http_listen,
        ] {
            "127.0.0.1:0".clone_into(address);
        }
    }
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            grpc_listen: "0.0.0.0:50051".into(),
            http_listen: "0.0.0.0:8080".into(),
            otlp_grpc_listen: "0.0.0.0:4317".into(),
            otlp_http_listen: "0.0.0.0:4318".into(),
            max_otlp_decoded_bytes: 128 * 1024 * 1024,
            max_batch_events: 1_000,
            max_event_bytes: 512 * 1024,
            max_request_bytes: 16 * 1024 * 1024,
            max_inflight_bytes: 256 * 1024 * 1024,
            publish_timeout_ms: 5_000,
            query_endpoint: "http://127.0.0.1:50052".into(),
            query_token: chaukas_common::internal::LOCAL_TOKEN.into(),
            query_timeout_ms: 30_000,
            max_body_budget_bytes: 256 * 1024 * 1024,
            max_connections: 4_096,
            header_read_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            request_timeout_ms: 60_000,
            max_concurrent_streams: 128,
            max_read_request_bytes: 1024 * 1024,
            max_tails: 256,
            max_tails_per_tenant: 32,
            allow_unauthenticated: false,
        }
    }
}
