//! A server process's CPU time and resident memory, read from `/proc`.
//!
//! CPU time (user + system, all threads, including threads that have ended)
//! is the headline measure: divided by the operations done in the same
//! window it gives CPU µs per operation, which stays put on a machine whose
//! other core is busy, unlike wall-clock throughput.

use std::io;
use std::sync::OnceLock;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// User + system CPU time in clock ticks (`utime + stime` of `/proc/<pid>/stat`).
    pub cpu_ticks: u64,
    /// The system (kernel) part of `cpu_ticks` (`stime`).
    pub system_ticks: u64,
    /// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub rss_kib: u64,
}

impl Sample {
    /// CPU seconds spent between `earlier` and `self`.
    pub fn cpu_seconds_since(&self, earlier: &Sample) -> f64 {
        self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64 / ticks_per_second() as f64
    }

    /// The kernel's part of [`Sample::cpu_seconds_since`].
    pub fn system_seconds_since(&self, earlier: &Sample) -> f64 {
        self.system_ticks.saturating_sub(earlier.system_ticks) as f64 / ticks_per_second() as f64
    }
}

/// Reads the CPU time and RSS of process `pid`.
pub fn sample(pid: u32) -> io::Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name is in parentheses and may contain spaces: fields are counted after it.
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::other("malformed /proc/<pid>/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let tick = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("malformed /proc/<pid>/stat"))
    };
    let system_ticks = tick(12)?;
    let cpu_ticks = tick(11)? + system_ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS in /proc/<pid>/status"))?;
    Ok(Sample {
        cpu_ticks,
        system_ticks,
        rss_kib,
    })
}

/// CPU time of process `pid` in nanoseconds: the sum over its threads of
/// the time each has run (the first field of `/proc/<pid>/task/<tid>/schedstat`).
/// Precise where `utime + stime` counts clock ticks (10 ms here), for
/// windows in which the process works a few milliseconds; threads that have
/// ended are not in it.
pub fn cpu_ns(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread that ended since the listing has no schedstat any more: its time is gone either way.
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        total += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .ok_or_else(|| io::Error::other(format!("malformed {}", path.display())))?;
    }
    Ok(total)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when it cannot be asked).
pub fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
        assert!(ticks_per_second() > 0);
        let before = cpu_ns(std::process::id()).unwrap();
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(5) {}
        assert!(cpu_ns(std::process::id()).unwrap() > before);
    }
}
