use serde::{Deserialize, Serialize};

/// Everything the gateway reads from configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// The `[gateway]` section.
    pub gateway: GatewaySettings,
}

/// The `[gateway]` section (`CHAUKAS_GATEWAY__*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// gRPC listen address; 50051 is the port the Chaukas examples use.
    pub grpc_listen: String,
    /// HTTP listen address for the SDK's protobuf-over-HTTP API and health checks.
    pub http_listen: String,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            grpc_listen: "0.0.0.0:50051".into(),
            http_listen: "0.0.0.0:8080".into(),
        }
    }
}
