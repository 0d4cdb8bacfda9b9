//! The Chaukas wire contract as Rust types.
//!
//! Every service speaks these generated messages and implements these generated service
//! traits, so the contract lives in exactly one place: `proto/` at the workspace root, which
//! must match the published `chaukas-spec-*` packages field for field (see `tests/contract`).

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

pub mod codec;

/// Messages shared by the client and server services: events, queries, capabilities.
pub mod common {
    /// Version 1 of the shared messages.
    pub mod v1 {
        tonic::include_proto!("chaukas.spec.common.v1");
    }
}

/// The service as the published client stubs name it (`ChaukasClientService`).
pub mod client {
    /// Version 1 of the client service.
    pub mod v1 {
        tonic::include_proto!("chaukas.spec.client.v1");
    }
}

/// The server-side service (`ChaukasServerService`), with statistics.
pub mod server {
    /// Version 1 of the server service.
    pub mod v1 {
        tonic::include_proto!("chaukas.spec.server.v1");
    }
}

/// Services between our own processes, not part of the public contract.
pub mod internal {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("chaukas.internal.v1");
    }
}

/// The compiled `FileDescriptorSet` of everything under `proto/`, encoded.
///
/// Kept so the contract can be checked against the published descriptors and so a future
/// gRPC reflection service can describe exactly what we serve.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/chaukas_descriptor.binpb"));

/// What this build of Chaukas Server really does, as `GetCapabilities` reports it.
///
/// One definition for every service that answers the RPC, so the gateway and the query
/// service can never advertise different things. A flag turns true only in the change that
/// implements and tests the feature behind it. `rbac_enforced`: API keys with scopes, bound to
/// tenants and projects, are required of every caller (a gateway not running with
/// `allow_unauthenticated`); the query service, reached only through gateways, says false.
/// `worm_enforced`: the ClickHouse users of the services that run all the time cannot
/// delete or rewrite (the gateway: every writer's and the query service's, as reported; the
/// query service: its own), so the only deletion path is `chaukas retention apply`.
/// `sealing`: stored events are sealed into their tenants' signed Merkle logs (docs/audit.md),
/// which is so unless a writer runs with `log.enabled = false`.
pub fn capabilities(
    rbac_enforced: bool,
    worm_enforced: bool,
    sealing: bool,
) -> common::v1::Capabilities {
    common::v1::Capabilities {
        worm_retention: worm_enforced,
        audit_proofs: sealing,
        distributed_query: false,
        rbac: rbac_enforced,
        sso: false,
        // Policy-decision and data-access events are stored losslessly and queryable by
        // type, tenant, session and text like every other event.
        policy_decisions: true,
        data_access_events: true,
    }
}
