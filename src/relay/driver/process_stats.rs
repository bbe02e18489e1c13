//! The process's CPU time, resident memory and open descriptors, read from Linux's `/proc`
//! for `/metrics`. Elsewhere (or if `/proc` is not mounted) there is nothing to read, and
//! the process metrics are left out.

use std::fs;

use crate::relay::core::ProcessStats;

/// Clock ticks per second in `/proc/self/stat`: `USER_HZ`, which Linux fixes at 100 on
/// every architecture it exports to user space with this interface (reading it properly
/// would need `sysconf`, which needs unsafe code this crate forbids).
const USER_HZ: f64 = 100.0;

/// Reads the figures now; `None` without `/proc`.
pub fn read() -> Option<ProcessStats> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let cpu_seconds = cpu_seconds_from_stat(&stat)?;
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let resident_memory_bytes = resident_bytes_from_status(&status)?;
    let open_fds = fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    let max_fds = rlimit::Resource::NOFILE.get_soft().ok();
    Some(ProcessStats { cpu_seconds, resident_memory_bytes, open_fds, max_fds })
}

/// utime + stime (fields 14 and 15) of `/proc/self/stat`, in seconds. The command name
/// (field 2) is in parentheses and may itself hold spaces or parentheses, so fields are
/// counted from the last `)`.
fn cpu_seconds_from_stat(stat: &str) -> Option<f64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace();
    // After the name come field 3 (state) onwards: utime is the 12th of them.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime.saturating_add(stime) as f64 / USER_HZ)
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes_from_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    kilobytes.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (rtmp (edge) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 125 0 0 20 0 3 0 100 9000 700";
        assert_eq!(cpu_seconds_from_stat(stat), Some(3.75));
        assert_eq!(cpu_seconds_from_stat("garbage"), None);
    }

    #[test]
    fn resident_memory_is_read_from_vmrss() {
        let status = "Name:\trtmp-edge\nVmPeak:\t  9000 kB\nVmRSS:\t    2748 kB\nThreads:\t3\n";
        assert_eq!(resident_bytes_from_status(status), Some(2748 * 1024));
    }

    #[test]
    fn this_process_can_be_read() {
        let stats = read().expect("/proc is mounted where the tests run");
        assert!(stats.resident_memory_bytes > 0 && stats.open_fds > 0, "{stats:?}");
    }
}
