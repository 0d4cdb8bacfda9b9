//! The audit log's read side (docs/audit.md), for gateways to serve over HTTP: the verifier
//! key, a tenant's latest signed checkpoint, C2SP tiles and entry bundles, and proofs.
//!
//! Everything is bounded by the tenant's latest checkpoint: no tile, leaf or proof beyond
//! what has been signed is served, and each request reads a bounded number of tiles. A
//! tenant's log requests share its read slots with its queries.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chaukas_audit::proof::{NodeRecorder, NodeSource, consistency_proof, inclusion_proof};
use chaukas_audit::tiles::{TileSet, tiles_for};
use chaukas_audit::{Checkpoint, TileId, TileResource, TlogProof, VerifierKey};
use chaukas_common::errors::ServiceError as _;
use chaukas_proto::internal::v1::audit_log_service_server::AuditLogService;
use chaukas_proto::internal::v1::{LogResourceRequest, LogResourceResponse};
use chaukas_store::log as stored_log;
use tonic::{Request, Response, Status};

use crate::QueryError;
use crate::guardrails::TenantReads;

/// Tiles and entry bundles never change once served: cache them for a day.
const IMMUTABLE_SECS: u32 = 86_400;
const TEXT: &str = "text/plain; charset=utf-8";
const OCTETS: &str = "application/octet-stream";

/// Serves log resources from ClickHouse.
#[derive(Clone)]
pub struct LogReader {
    clickhouse: clickhouse::Client,
    log_name: String,
    verifiers: Arc<Vec<VerifierKey>>,
    reads: Arc<TenantReads>,
}

impl LogReader {
    /// A reader of log `log_name`, whose checkpoints `verifiers` check.
    pub fn new(
        clickhouse: clickhouse::Client,
        log_name: String,
        verifiers: Vec<VerifierKey>,
        reads: Arc<TenantReads>,
    ) -> Self {
        Self {
            clickhouse,
            log_name,
            verifiers: Arc::new(verifiers),
            reads,
        }
    }

    async fn resource(&self, tenant: &str, path: &str) -> Result<LogResourceResponse, QueryError> {
        if path == "key" {
            return self.key();
        }
        if tenant.is_empty() {
            return Err(QueryError::invalid("a tenant is required"));
        }
        let _slot = self.reads.start(tenant)?;
        let (checkpoint, note) = self.checkpoint(tenant).await?;
        if path == "checkpoint" {
            return Ok(text(note, 0));
        }
        if let Some(tile_path) = path.strip_prefix("tile/") {
            let resource = TileResource::parse(tile_path)
                .map_err(|error| QueryError::invalid(error.to_string()))?;
            return self.tile(tenant, resource, checkpoint.size).await;
        }
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["proof", index] => self.proof(tenant, number(index)?, checkpoint, note).await,
            ["consistency", old, new] => {
                self.consistency(tenant, number(old)?, number(new)?, checkpoint.size)
                    .await
            }
            _ => Err(QueryError::NotFound(format!(
                "no log resource {path:?}: use key, checkpoint, tile/<L>/<N>[.p/<W>], \
                 tile/entries/<N>[.p/<W>], proof/<index> or consistency/<old>/<new>"
            ))),
        }
    }

    fn key(&self) -> Result<LogResourceResponse, QueryError> {
        if self.verifiers.is_empty() {
            return Err(QueryError::NotFound(
                "this deployment has no log key configured (log.signing_key_file)".into(),
            ));
        }
        let keys: String = self
            .verifiers
            .iter()
            .map(|key| format!("{key}\n"))
            .collect();
        Ok(text(keys, 300))
    }

    /// The tenant's latest checkpoint, checked against our own keys before it is served.
    async fn checkpoint(&self, tenant: &str) -> Result<(Checkpoint, String), QueryError> {
        let row = stored_log::latest_checkpoint(&self.clickhouse, tenant)
            .await?
            .ok_or_else(|| {
                QueryError::NotFound(format!("tenant {tenant:?} has no signed checkpoint yet"))
            })?;
        let origin = chaukas_audit::origin(&self.log_name, tenant);
        let checkpoint = Checkpoint::open(&row.note, &self.verifiers, &origin)
            .map_err(|error| QueryError::Corrupt(format!("stored checkpoint: {error}")))?;
        Ok((checkpoint, row.note))
    }

    async fn tile(
        &self,
        tenant: &str,
        resource: TileResource,
        size: u64,
    ) -> Result<LogResourceResponse, QueryError> {
        let (TileResource::Hashes(wanted) | TileResource::Entries(wanted)) = resource;
        let within = TileId::in_tree(wanted.level, wanted.index, size)
            .is_some_and(|existing| existing.width >= wanted.width);
        if !within {
            return Err(QueryError::NotFound(format!(
                "the tree of the latest checkpoint (size {size}) has no such tile"
            )));
        }
        let body = match resource {
            TileResource::Hashes(tile) => stored_log::tile(&self.clickhouse, tenant, tile)
                .await?
                .concat(),
            TileResource::Entries(tile) => {
                let start = tile.index * 256;
                let leaves = stored_log::leaves(
                    &self.clickhouse,
                    tenant,
                    start,
                    start + u64::from(tile.width),
                )
                .await?;
                let mut bundle = Vec::with_capacity(leaves.len() * 34);
                for leaf in leaves {
                    bundle.extend_from_slice(&32u16.to_be_bytes());
                    bundle.extend_from_slice(&leaf.content_hash);
                }
                bundle
            }
        };
        Ok(LogResourceResponse {
            content_type: OCTETS.into(),
            body,
            max_age_secs: IMMUTABLE_SECS,
        })
    }

    /// Fetches the tiles that `prove` needs at tree size `size`, then runs it on them.
    async fn with_tiles<T>(
        &self,
        tenant: &str,
        size: u64,
        prove: impl Fn(&mut dyn NodeSource) -> Result<T, chaukas_audit::ProofError>,
    ) -> Result<T, QueryError> {
        let mut recorder = NodeRecorder::default();
        prove(&mut recorder).map_err(|error| QueryError::invalid(error.to_string()))?;
        let mut set = TileSet::default();
        for tile in tiles_for(size, &recorder.wanted) {
            let hashes = stored_log::tile(&self.clickhouse, tenant, tile).await?;
            set.insert(tile, hashes);
        }
        prove(&mut set).map_err(|error| QueryError::Corrupt(error.to_string()))
    }

    async fn proof(
        &self,
        tenant: &str,
        index: u64,
        checkpoint: Checkpoint,
        note: String,
    ) -> Result<LogResourceResponse, QueryError> {
        if index >= checkpoint.size {
            return Err(QueryError::NotFound(format!(
                "leaf {index} is not in the latest checkpoint (size {}); retry shortly",
                checkpoint.size
            )));
        }
        let size = checkpoint.size;
        let path = self
            .with_tiles(tenant, size, |source| inclusion_proof(source, index, size))
            .await?;
        let proof = TlogProof {
            index,
            path,
            checkpoint: note,
        };
        Ok(text(proof.to_text(), 0))
    }

    async fn consistency(
        &self,
        tenant: &str,
        old: u64,
        new: u64,
        size: u64,
    ) -> Result<LogResourceResponse, QueryError> {
        if old == 0 || old > new || new > size {
            return Err(QueryError::invalid(format!(
                "need 0 < old size ≤ new size ≤ {size} (the latest checkpoint); got {old} and {new}"
            )));
        }
        let proof = self
            .with_tiles(tenant, new, |source| consistency_proof(source, old, new))
            .await?;
        let body: String = proof
            .iter()
            .map(|hash| format!("{}\n", BASE64.encode(hash)))
            .collect();
        Ok(text(body, IMMUTABLE_SECS))
    }
}

fn number(text: &str) -> Result<u64, QueryError> {
    chaukas_audit::parse_decimal(text)
        .ok_or_else(|| QueryError::invalid(format!("{text:?} is not a decimal number")))
}

fn text(body: String, max_age_secs: u32) -> LogResourceResponse {
    LogResourceResponse {
        content_type: TEXT.into(),
        body: body.into_bytes(),
        max_age_secs,
    }
}

#[tonic::async_trait]
impl AuditLogService for LogReader {
    async fn get_log_resource(
        &self,
        request: Request<LogResourceRequest>,
    ) -> Result<Response<LogResourceResponse>, Status> {
        let request = request.into_inner();
        self.resource(&request.tenant_id, &request.path)
            .await
            .map(Response::new)
            .map_err(|error| error.to_status())
    }
}
