//! The faults of one run, drawn from its seed before it starts, so a seed names a run.

use std::fmt;
use std::time::Duration;

use chaukas_testkit::fault_proxy::SplitMix64;

use super::services::LEASE_TTL_SECS;

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL writer `n`; it is started again after `down`.
    KillWriter { writer: usize, down: Duration },
    /// SIGSTOP writer `n` for `paused` (past its lease), then SIGCONT.
    PauseWriter { writer: usize, paused: Duration },
    /// SIGKILL the gateway and start it again after `down`.
    RestartGateway { down: Duration },
    /// SIGKILL NATS and start it again on the same storage after `down`.
    RestartNats { down: Duration },
    /// Faults between the writers and ClickHouse: cuts, stalls past the statement timeout
    /// and lost responses, at `per_million` per chunk for `lasting`.
    ClickHouseFaults { per_million: u32, lasting: Duration },
}

/// A fault and when it strikes, counted from the start of the workload.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// When.
    pub at: Duration,
    /// What.
    pub fault: Fault,
}

/// Everything a seed decides.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The seed.
    pub seed: u64,
    /// Writers running (2 or 3).
    pub writers: usize,
    /// Faults, in time order.
    pub faults: Vec<Planned>,
}

fn millis(rng: &mut SplitMix64, low: u64, high: u64) -> Duration {
    Duration::from_millis(low + rng.below(high - low))
}

impl Schedule {
    /// The schedule of `seed` for a workload of `length`: one fault every two to four
    /// seconds, none in the last two.
    pub fn draw(seed: u64, length: Duration) -> Self {
        let mut rng = SplitMix64(seed);
        let writers = 2 + usize::try_from(rng.below(2)).expect("small");
        let mut faults = Vec::new();
        let mut at = millis(&mut rng, 1_000, 2_500);
        let lease = LEASE_TTL_SECS * 1_000;
        while at + Duration::from_secs(2) < length {
            let writer = usize::try_from(rng.below(writers as u64)).expect("small");
            let fault = match rng.below(10) {
                0..=1 => Fault::KillWriter {
                    writer,
                    down: millis(&mut rng, 200, 3_000),
                },
                2..=3 => Fault::PauseWriter {
                    writer,
                    paused: millis(&mut rng, lease + 500, lease * 2 + 2_000),
                },
                4 => Fault::RestartGateway {
                    down: millis(&mut rng, 100, 1_500),
                },
                5 => Fault::RestartNats {
                    down: millis(&mut rng, 100, 2_000),
                },
                _ => Fault::ClickHouseFaults {
                    per_million: 20_000 + u32::try_from(rng.below(180_000)).expect("small"),
                    lasting: millis(&mut rng, 1_000, 4_000),
                },
            };
            faults.push(Planned { at, fault });
            at += millis(&mut rng, 2_000, 4_000);
        }
        Self {
            seed,
            writers,
            faults,
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed {} ({} writers):", self.seed, self.writers)?;
        for planned in &self.faults {
            write!(f, " {:.1}s {:?};", planned.at.as_secs_f64(), planned.fault)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_draws_the_same_schedule() {
        let length = Duration::from_secs(14);
        let first = Schedule::draw(42, length);
        let again = Schedule::draw(42, length);
        assert_eq!(first.to_string(), again.to_string());
        assert!(!first.faults.is_empty());
        assert!(
            first
                .faults
                .iter()
                .all(|p| p.at + Duration::from_secs(2) < length)
        );
        assert_ne!(first.to_string(), Schedule::draw(43, length).to_string());
    }
}
