//! What the cluster costs in memory: the proportional set size (PSS: shared pages divided among
//! the processes that map them, so the one multicall Kubernetes binary behind nine processes
//! is counted once) of every process `make cluster` recorded, of the containerd shims of its
//! nodes, and what the kernel charges to the pods' cgroups.

use std::collections::BTreeMap;
use std::path::Path;

/// The cluster's memory, in KiB.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// PSS by component (`kubelet`, `kube-apiserver`, ...), summed over the nodes.
    pub components: BTreeMap<String, u64>,
    pub shims: u64,
    pub shim_count: usize,
    /// The pods' cgroups: charged (page cache included), and their resident anonymous memory.
    pub pods_charged: u64,
    pub pods_rss: u64,
}

impl Memory {
    /// Reads it now: `run_dir` is `CLUSTER_RUN` (its `pids/` and the nodes' containerd sockets).
    pub fn read(run_dir: &Path) -> Memory {
        let mut m = Memory::default();
        for (component, pid) in recorded(&run_dir.join("pids")) {
            *m.components.entry(component).or_insert(0) += pss_kib(pid).unwrap_or(0);
        }
        for pid in shims(run_dir) {
            m.shims += pss_kib(pid).unwrap_or(0);
            m.shim_count += 1;
        }
        let cgroup = Path::new("/sys/fs/cgroup/memory/kco");
        m.pods_charged = std::fs::read_to_string(cgroup.join("memory.usage_in_bytes"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0)
            / 1024;
        m.pods_rss = std::fs::read_to_string(cgroup.join("memory.stat"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("total_rss ")?.trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
            / 1024;
        m
    }

    /// Everything, in MiB: the processes' PSS and the pods' charge.
    pub fn total_mib(&self) -> f64 {
        (self.components.values().sum::<u64>() + self.shims + self.pods_charged) as f64 / 1024.0
    }

    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .components
            .iter()
            .map(|(k, v)| format!("{k} {:.0}", *v as f64 / 1024.0))
            .collect();
        format!(
            "{:.0} MiB: processes (PSS, MiB) {}; {} containerd shims {:.0}; pods' cgroups {:.0} charged ({:.0} resident)",
            self.total_mib(),
            parts.join(", "),
            self.shim_count,
            self.shims as f64 / 1024.0,
            self.pods_charged as f64 / 1024.0,
            self.pods_rss as f64 / 1024.0
        )
    }
}

/// (component, pid) of every `pids/**/NAME.pid` whose process still has the recorded start time.
fn recorded(dir: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(recorded(&path));
            continue;
        }
        let Some(component) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pid"))
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut fields = text.split_whitespace();
        let (Some(pid), Some(start)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if start_time(pid).as_deref() == Some(start) {
            out.push((component.to_string(), pid));
        }
    }
    out
}

fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command (in parentheses, which may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19).map(str::to_string)
}

fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The containerd shims started for one of the nodes' containerds (their `-address` is under
/// `run_dir`).
fn shims(run_dir: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        if !exe.to_string_lossy().contains("containerd-shim-runc-v2") {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let ours = args.windows(2).any(|w| {
            w[0] == b"-address" && Path::new(&*String::from_utf8_lossy(w[1])).starts_with(run_dir)
        });
        if ours {
            out.push(pid);
        }
    }
    out
}
