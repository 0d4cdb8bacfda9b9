//! CPU time and peak memory of the processes under test, from `/proc`.

use std::path::Path;

use serde_json::{Value, json};

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// A process we account for.
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
}

/// The stack's processes from the pid files `make up` writes (`.run/pids/<name>.pid`), and
/// this process as `generator`.
pub fn watched(pids_dir: &Path) -> Vec<Watched> {
    let mut found = Vec::new();
    for name in ["gateway", "writer", "query", "nats", "clickhouse"] {
        let Ok(text) = std::fs::read_to_string(pids_dir.join(format!("{name}.pid"))) else {
            continue;
        };
        if let Ok(pid) = text.trim().parse() {
            found.push(Watched {
                name: name.to_owned(),
                pid,
            });
        }
    }
    found.push(Watched {
        name: "generator".into(),
        pid: std::process::id(),
    });
    found
}

/// CPU seconds (user + system) the process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

/// Peak resident set size in MiB (VmHWM).
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU seconds of every watched process, to subtract later.
pub struct CpuMark(Vec<(String, u32, f64)>);

impl CpuMark {
    pub fn take(watched: &[Watched]) -> Self {
        Self(
            watched
                .iter()
                .filter_map(|w| Some((w.name.clone(), w.pid, cpu_seconds(w.pid)?)))
                .collect(),
        )
    }

    /// CPU seconds per 1000 events for each process since the mark.
    pub fn per_thousand(&self, events: u64) -> Vec<(String, f64)> {
        #[allow(clippy::cast_precision_loss)]
        let thousands = (events as f64 / 1000.0).max(f64::MIN_POSITIVE);
        self.0
            .iter()
            .filter_map(|(name, pid, before)| {
                let after = cpu_seconds(*pid)?;
                Some((name.clone(), (after - before) / thousands))
            })
            .collect()
    }
}

/// The machine the figures were measured on.
pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_default();
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| (kib / 1024.0 / 1024.0 * 100.0).round() / 100.0);
    let nats_version = std::process::Command::new("nats-server")
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "cpu_model": cpu,
        "memory_gib": memory_gib,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "nats_server": nats_version,
    })
}
