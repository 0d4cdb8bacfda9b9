//! The chaos workload: senders that record every send and every acknowledgement, and
//! resend keys, identically and with changed content, inside and after the bus's duplicate
//! window.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chaukas_proto::common::v1::Event;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use chaukas_testkit::fault_proxy::SplitMix64;
use tonic::transport::Endpoint;

use crate::batch_request;
use crate::corpus::simple_event;

/// Events per request.
const PER_BATCH: usize = 20;
/// Tenants the keys are spread over (and so shards).
const TENANTS: u64 = 5;
/// Pause between a sender's requests.
const PACE: Duration = Duration::from_millis(15);
/// Longest a request may take before the sender counts it as not acknowledged.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the history knows of one key.
#[derive(Debug, Default, Clone)]
pub struct KeyRecord {
    /// Every content version sent (0 is the original; resends with changed content are
    /// sent only after the original was acknowledged).
    pub versions: BTreeSet<u32>,
    /// Whether the original was acknowledged: then it must be what is stored.
    pub original_acked: bool,
}

/// Every key sent in a run, by (tenant, event id).
pub type History = HashMap<(String, String), KeyRecord>;

/// What the senders did.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests sent.
    pub requests: u64,
    /// Requests acknowledged.
    pub acked_requests: u64,
    /// Events in acknowledged requests.
    pub acked_events: u64,
    /// Resends with the same content.
    pub identical_resends: u64,
    /// Resends with changed content.
    pub changed_resends: u64,
}

fn event(key: &(String, String), version: u32) -> Event {
    Event {
        agent_name: format!("v{version}"),
        ..simple_event(&key.0, &key.1)
    }
}

/// One sender: sends until `until`, returns its history and tally.
pub async fn send(gateway: SocketAddr, sender: u64, seed: u64, until: Instant) -> (History, Tally) {
    let channel = Endpoint::from_shared(format!("http://{gateway}"))
        .expect("gateway url")
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy();
    let mut client = ChaukasServerServiceClient::new(channel);
    let mut rng = SplitMix64(seed ^ (sender + 1).wrapping_mul(0x5851_F42D_4C95_7F2D));
    let mut history = History::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut failed: Vec<Vec<((String, String), u32)>> = Vec::new();
    let mut tally = Tally::default();
    let mut next_key = 0u64;
    while Instant::now() < until {
        let batch = if !failed.is_empty() && rng.below(2) == 0 {
            tally.identical_resends += 1;
            failed.swap_remove(usize::try_from(rng.below(failed.len() as u64)).expect("small"))
        } else {
            compose(
                &mut rng,
                &mut keys,
                &mut next_key,
                &history,
                sender,
                &mut tally,
            )
        };
        for (key, version) in &batch {
            history
                .entry(key.clone())
                .or_default()
                .versions
                .insert(*version);
        }
        let request = batch_request(batch.iter().map(|(key, v)| event(key, *v)).collect());
        tally.requests += 1;
        let answer =
            tokio::time::timeout(REQUEST_TIMEOUT, client.ingest_event_batch(request)).await;
        match answer {
            Ok(Ok(response)) if response.get_ref().accepted_count as usize == batch.len() => {
                tally.acked_requests += 1;
                tally.acked_events += batch.len() as u64;
                for (key, version) in &batch {
                    let record = history.get_mut(key).expect("recorded above");
                    record.original_acked |= *version == 0;
                }
            }
            Ok(Ok(response)) => panic!("valid events refused: {:?}", response.get_ref()),
            _ => failed.push(batch),
        }
        tokio::time::sleep(PACE).await;
    }
    (history, tally)
}

/// A request's keys: mostly new ones; some resends of acknowledged keys, identical or
/// changed, some within a second of the ack (inside the duplicate window) and some later.
fn compose(
    rng: &mut SplitMix64,
    keys: &mut Vec<(String, String)>,
    next_key: &mut u64,
    history: &History,
    sender: u64,
    tally: &mut Tally,
) -> Vec<((String, String), u32)> {
    let mut batch: Vec<((String, String), u32)> = Vec::with_capacity(PER_BATCH);
    while batch.len() < PER_BATCH {
        let roll = rng.below(100);
        let old = (!keys.is_empty() && roll < 30)
            .then(|| keys[usize::try_from(rng.below(keys.len() as u64)).expect("small")].clone())
            .filter(|key| batch.iter().all(|(taken, _)| taken != key))
            .filter(|key| history.get(key).is_some_and(|record| record.original_acked));
        match old {
            Some(key) if roll < 15 => {
                tally.identical_resends += 1;
                batch.push((key, 0));
            }
            Some(key) => {
                let record = &history[&key];
                let next = record.versions.last().copied().unwrap_or(0) + 1;
                tally.changed_resends += 1;
                batch.push((key, next));
            }
            None => {
                let tenant = format!("tenant-{}", rng.below(TENANTS));
                let key = (tenant, format!("w{sender}-{next_key}"));
                *next_key += 1;
                keys.push(key.clone());
                batch.push((key, 0));
            }
        }
    }
    batch
}

/// Merges the senders' histories (their keys are disjoint).
pub fn merge(parts: Vec<(History, Tally)>) -> (History, Tally) {
    let mut history = History::new();
    let mut total = Tally::default();
    for (part, tally) in parts {
        history.extend(part);
        total.requests += tally.requests;
        total.acked_requests += tally.acked_requests;
        total.acked_events += tally.acked_events;
        total.identical_resends += tally.identical_resends;
        total.changed_resends += tally.changed_resends;
    }
    (history, total)
}
