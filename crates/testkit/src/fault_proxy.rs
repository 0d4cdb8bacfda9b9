//! A TCP proxy that injects faults, for putting between a service and ClickHouse.
//!
//! Every chunk read in either direction is a point where a fault may strike, drawn from a
//! seeded generator at the configured rate, so faults land before a request, inside an
//! insert body, after the server has the whole body but before the client hears back, and
//! inside responses:
//! * **cut**: both sides of the connection are closed at once;
//! * **stall**: the chunk is held for a while before it is forwarded (past a client's
//!   statement timeout: the server may finish what the client gave up on);
//! * **blackhole**: the chunk and everything after it in that direction are swallowed, the
//!   connection left open until the client gives up (a response lost after the server
//!   committed).
//!
//! The schedule (rate, stall length) can be changed while the proxy runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What strikes a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close both sides now.
    Cut,
    /// Hold the chunk this long, then forward it.
    Stall(Duration),
    /// Swallow this chunk and the rest of this direction.
    Blackhole,
}

/// How often faults strike, changeable while the proxy runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultRate {
    /// Chance per chunk, in parts per million, that a fault strikes.
    pub per_million: u32,
    /// How long a stall holds a chunk.
    pub stall: Duration,
    /// Only chunks containing one of these byte strings can be struck (none: every chunk),
    /// and the fault is then always a stall: a test aims at one kind of statement.
    pub only_containing: &'static [&'static str],
}

/// Counts of what the proxy did, for the test's report.
#[derive(Debug, Default)]
pub struct FaultCounts {
    /// Connections proxied.
    pub connections: AtomicU64,
    /// Cuts injected.
    pub cuts: AtomicU64,
    /// Stalls injected.
    pub stalls: AtomicU64,
    /// Blackholes injected.
    pub blackholes: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    rate: Mutex<FaultRate>,
    rng: Mutex<SplitMix64>,
    counts: FaultCounts,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    /// Where clients connect instead of the upstream.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`, with no faults until
    /// [`FaultProxy::set_rate`]; `seed` makes the draws repeatable.
    pub async fn start(upstream: SocketAddr, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream,
            rate: Mutex::new(FaultRate::default()),
            rng: Mutex::new(SplitMix64(seed)),
            counts: FaultCounts::default(),
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                accepting.counts.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(proxy(client, accepting.clone()));
            }
        });
        Self { addr, shared, task }
    }

    /// Changes how often faults strike from now on.
    pub fn set_rate(&self, rate: FaultRate) {
        *self.shared.rate.lock().expect("rate lock") = rate;
    }

    /// What has been injected so far.
    pub fn counts(&self) -> &FaultCounts {
        &self.shared.counts
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn draw(&self, chunk: &[u8]) -> Option<Fault> {
        let rate = *self.rate.lock().expect("rate lock");
        if rate.per_million == 0 {
            return None;
        }
        let aimed = !rate.only_containing.is_empty();
        if aimed
            && !rate.only_containing.iter().any(|pattern| {
                chunk
                    .windows(pattern.len())
                    .any(|window| window == pattern.as_bytes())
            })
        {
            return None;
        }
        let mut rng = self.rng.lock().expect("rng lock");
        if rng.below(1_000_000) >= u64::from(rate.per_million) {
            return None;
        }
        let fault = match if aimed { 1 } else { rng.below(3) } {
            0 => Fault::Cut,
            1 => Fault::Stall(rate.stall),
            _ => Fault::Blackhole,
        };
        let counter = match fault {
            Fault::Cut => &self.counts.cuts,
            Fault::Stall(_) => &self.counts.stalls,
            Fault::Blackhole => &self.counts.blackholes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Some(fault)
    }
}

async fn proxy(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let upstream = pump(client_read, server_write, shared.clone());
    let downstream = pump(server_read, client_write, shared);
    // Either direction ending (or being cut) ends the connection.
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    let mut swallowing = false;
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if swallowing {
            continue;
        }
        match shared.draw(&buffer[..read]) {
            None => {}
            Some(Fault::Cut) => return,
            Some(Fault::Stall(hold)) => tokio::time::sleep(hold).await,
            Some(Fault::Blackhole) => {
                swallowing = true;
                continue;
            }
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// A small, seedable generator (SplitMix64): enough for drawing faults, no dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}
