//! The progress line on standard error: redrawn in place on a terminal, a line every few
//! seconds when stderr is a file or pipe (CI logs), nothing when quiet.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::ImportReport;

const TERMINAL_REDRAW: Duration = Duration::from_millis(100);
const LOG_EVERY: Duration = Duration::from_secs(5);
const BAR_WIDTH: usize = 24;

/// Tracks how far the input has been read and draws it.
pub struct Progress {
    mode: Mode,
    total_bytes: Option<u64>,
    read_bytes: u64,
    started: Instant,
    last_drawn: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Terminal,
    Log,
    Quiet,
}

impl Progress {
    /// Draws on stderr, in place when it is a terminal.
    pub fn stderr() -> Self {
        Self::with_mode(if std::io::stderr().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Log
        })
    }

    /// Draws nothing (tests, `--quiet`).
    pub fn quiet() -> Self {
        Self::with_mode(Mode::Quiet)
    }

    fn with_mode(mode: Mode) -> Self {
        Self {
            mode,
            total_bytes: None,
            read_bytes: 0,
            started: Instant::now(),
            last_drawn: None,
        }
    }

    pub(crate) fn set_total_bytes(&mut self, total: u64) {
        self.total_bytes = Some(total);
    }

    pub(crate) fn advance(&mut self, bytes: u64) {
        self.read_bytes += bytes;
    }

    pub(crate) fn draw(&mut self, report: &ImportReport) {
        let every = match self.mode {
            Mode::Quiet => return,
            Mode::Terminal => TERMINAL_REDRAW,
            Mode::Log => LOG_EVERY,
        };
        if self.last_drawn.is_some_and(|last| last.elapsed() < every) {
            return;
        }
        self.last_drawn = Some(Instant::now());
        let line = self.render(report);
        let mut stderr = std::io::stderr().lock();
        let _ = match self.mode {
            Mode::Terminal => write!(stderr, "\r{line}\x1b[K"),
            _ => writeln!(stderr, "{line}"),
        };
        let _ = stderr.flush();
    }

    pub(crate) fn finish(&mut self, report: &ImportReport) {
        if self.mode == Mode::Quiet {
            return;
        }
        self.last_drawn = None;
        self.draw(report);
        if self.mode == Mode::Terminal {
            eprintln!();
        }
    }

    fn render(&self, report: &ImportReport) -> String {
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        #[allow(clippy::cast_precision_loss)] // a rate for display
        let rate = report.lines as f64 / seconds;
        let position = match self.total_bytes {
            Some(total) if total > 0 => {
                let done = (self.read_bytes.min(total) * BAR_WIDTH as u64 / total) as usize;
                format!(
                    "[{}{}] {:>3}% ",
                    "#".repeat(done),
                    "-".repeat(BAR_WIDTH - done),
                    self.read_bytes.min(total) * 100 / total
                )
            }
            _ => String::new(),
        };
        format!(
            "{position}{} lines, {} accepted, {} rejected, {rate:.0} lines/s",
            report.lines,
            report.accepted,
            report.rejected.len()
        )
    }
}
