//! Resource limits enforced as a container runtime enforces them: one cgroup per pod.
//!
//! `resources.limits.memory` becomes a cgroup memory limit (v1 `memory.limit_in_bytes`, v2
//! `memory.max`, swap excluded), so a pod that outgrows it is OOM-killed by the kernel exactly
//! as in a cluster; `resources.limits.cpu` becomes a CFS quota over a 100 ms period (v1
//! `cpu.cfs_quota_us`, v2 `cpu.max`), which is also what `std::thread::available_parallelism`
//! reads, so `WORKERS=auto` sees the pod's CPU, not the machine's.
//!
//! The pod cgroups live under a parent named after the project, created below the harness's
//! own cgroup (so whatever limits the harness itself runs under still hold). The container
//! process enters its cgroup before it execs (the harness's own binary, as a wrapper, writes
//! `0`, "myself", to `cgroup.procs` and then execs the container's command: no unsafe
//! `pre_exec` needed), so even its first allocation is accounted. Exec probes and preStop commands run in the same cgroup, as they run in the
//! container. The cgroup is removed when the pod is dropped.
//!
//! Each controller is taken from cgroup v2 when the unified hierarchy offers it, else from its
//! v1 hierarchy. A limit that cannot be enforced (no root, no controller) is a loud skip on a
//! user machine and an error under `CI=true`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

/// The parent of every pod cgroup, below the harness's own cgroup.
pub const PARENT: &str = "hello-k8s-e2e";

/// The hidden first argument that makes the harness's binary the cgroup-entering wrapper.
pub const ENTER: &str = "__enter-cgroup";

/// The wrapper's side of [`PodCgroup::wrap`]: `<cgroup.procs>... -- <argv>`. Enters every
/// cgroup, then replaces itself with `argv`; returns only with an error.
pub fn enter_and_exec(args: &[OsString]) -> anyhow::Error {
    let Some(split) = args.iter().position(|a| a == "--") else {
        return anyhow!("{ENTER}: expected <cgroup.procs>... -- <program> [args]");
    };
    for procs in &args[..split] {
        if let Err(e) = std::fs::write(procs, "0") {
            return anyhow!(
                "entering the pod cgroup ({}): {e}",
                Path::new(procs).display()
            );
        }
    }
    let Some((program, rest)) = args[split + 1..].split_first() else {
        return anyhow!("{ENTER}: no program after --");
    };
    let e = std::process::Command::new(program).args(rest).exec();
    anyhow!("exec {}: {e}", Path::new(program).display())
}

/// The CFS period the kubelet uses (100 ms).
const CFS_PERIOD_US: u64 = 100_000;
/// The kubelet's smallest quota (1 ms per period).
const MIN_QUOTA_US: u64 = 1_000;

/// A pod's declared limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub cpu_millis: Option<u64>,
}

impl Limits {
    pub fn describe(&self) -> String {
        let memory = self.memory_bytes.map_or("none".to_string(), |b| {
            format!("{} MiB", b as f64 / 1048576.0)
        });
        let cpu = self
            .cpu_millis
            .map_or("none".to_string(), |m| format!("{m}m"));
        format!("memory {memory}, cpu {cpu}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// Where one controller's pod cgroups are created.
#[derive(Debug, Clone)]
struct Controller {
    version: Version,
    parent: PathBuf,
}

/// The cgroup controllers this machine lets the harness use.
#[derive(Debug)]
pub struct Cgroups {
    memory: std::result::Result<Controller, String>,
    cpu: std::result::Result<Controller, String>,
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

impl Cgroups {
    /// Finds the memory and cpu controllers and creates the project's parent cgroup in each.
    pub fn detect() -> Cgroups {
        let found = Hierarchies::read();
        let (memory, cpu) = match found {
            Ok(h) => (h.controller("memory"), h.controller("cpu")),
            Err(e) => (Err(format!("{e:#}")), Err(format!("{e:#}"))),
        };
        Cgroups { memory, cpu }
    }

    /// One line for the run's header.
    pub fn describe(&self) -> String {
        let one = |name: &str, c: &std::result::Result<Controller, String>| match c {
            Ok(c) => format!(
                "{name} via cgroup {} ({})",
                if c.version == Version::V1 { "v1" } else { "v2" },
                c.parent.display()
            ),
            Err(e) => format!("{name} NOT enforced ({e})"),
        };
        format!("{}; {}", one("memory", &self.memory), one("cpu", &self.cpu))
    }

    /// Why limits cannot be enforced here, if they cannot (for the skip log).
    pub fn problems(&self) -> Vec<String> {
        [("memory", &self.memory), ("cpu", &self.cpu)]
            .into_iter()
            .filter_map(|(n, c)| c.as_ref().err().map(|e| format!("{n}: {e}")))
            .collect()
    }

    /// Creates the cgroup of pod `name` with `limits`. A declared limit that cannot be
    /// enforced is an error under CI=true; elsewhere it is left out (the run said so at start).
    pub fn create(&self, name: &str, limits: Limits) -> Result<PodCgroup> {
        self.create_as(name, limits, ci())
    }

    fn create_as(&self, name: &str, limits: Limits, ci: bool) -> Result<PodCgroup> {
        let mut pod = PodCgroup {
            dirs: Vec::new(),
            memory: None,
            limits,
        };
        let wanted = [
            ("memory", limits.memory_bytes.is_some(), &self.memory),
            ("cpu", limits.cpu_millis.is_some(), &self.cpu),
        ];
        for (controller, declared, found) in wanted {
            if !declared {
                continue;
            }
            let c = match found {
                Ok(c) => c,
                Err(e) if ci => bail!(
                    "resources.limits.{controller} is declared but cannot be enforced ({e}); \
                     CI=true requires it (run as root on a machine with the {controller} \
                     cgroup controller)"
                ),
                Err(_) => continue,
            };
            let dir = c.parent.join(name);
            if !pod.dirs.contains(&dir) {
                std::fs::create_dir(&dir)
                    .with_context(|| format!("creating cgroup {}", dir.display()))?;
                pod.dirs.push(dir.clone());
            }
            match (controller, c.version) {
                ("memory", version) => {
                    let bytes = limits.memory_bytes.unwrap_or(u64::MAX);
                    let (limit, swap) = match version {
                        Version::V1 => ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
                        Version::V2 => ("memory.max", "memory.swap.max"),
                    };
                    write(&dir, limit, &bytes.to_string())?;
                    // No swap beyond the limit, as on a node without swap.
                    if dir.join(swap).exists() {
                        let value = if version == Version::V1 {
                            bytes.to_string()
                        } else {
                            "0".to_string()
                        };
                        write(&dir, swap, &value)?;
                    }
                    pod.memory = Some((version, dir.clone()));
                }
                (_, version) => {
                    let millis = limits.cpu_millis.unwrap_or(0);
                    let quota = (millis * CFS_PERIOD_US / 1000).max(MIN_QUOTA_US);
                    match version {
                        Version::V1 => {
                            write(&dir, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
                            write(&dir, "cpu.cfs_quota_us", &quota.to_string())?;
                        }
                        Version::V2 => {
                            write(&dir, "cpu.max", &format!("{quota} {CFS_PERIOD_US}"))?;
                        }
                    }
                }
            }
        }
        Ok(pod)
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    std::fs::write(dir.join(file), value)
        .with_context(|| format!("writing {value:?} to {}/{file}", dir.display()))
}

/// One pod's cgroup (a directory per hierarchy in v1, one directory in v2).
#[derive(Debug)]
pub struct PodCgroup {
    dirs: Vec<PathBuf>,
    memory: Option<(Version, PathBuf)>,
    pub limits: Limits,
}

impl PodCgroup {
    /// Whether anything is enforced at all.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// `argv` run inside the cgroup: the harness's own binary enters it (writes `0`,
    /// "myself", to each `cgroup.procs`) and then execs `argv`, so the container's PID is the
    /// wrapper's and even its first allocation is accounted.
    pub fn wrap(&self, argv: Vec<OsString>) -> Vec<OsString> {
        if self.dirs.is_empty() {
            return argv;
        }
        // The harness's own image even if target/ is rebuilt meanwhile: the child resolves
        // /proc/self/exe before its exec, while it is still a copy of the harness.
        let mut wrapped = vec![OsString::from("/proc/self/exe"), OsString::from(ENTER)];
        wrapped.extend(
            self.dirs
                .iter()
                .map(|d| d.join("cgroup.procs").into_os_string()),
        );
        wrapped.push(OsString::from("--"));
        wrapped.extend(argv);
        wrapped
    }

    /// How many times the kernel's OOM killer ended a process of this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let Some((version, dir)) = &self.memory else {
            return 0;
        };
        let file = match version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// The cgroup's memory usage in bytes (what the limit is compared with).
    pub fn memory_usage(&self) -> Option<u64> {
        let (version, dir) = self.memory.as_ref()?;
        let file = match version {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        };
        std::fs::read_to_string(dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The processes still in the cgroup.
    fn pids(&self) -> Vec<i32> {
        self.dirs
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect()
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        if self.dirs.is_empty() {
            return;
        }
        // Whatever is left in the pod's cgroup dies with the pod; the directories go once
        // the kernel has reaped the processes (in the background: Drop must not block).
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let dirs = std::mem::take(&mut self.dirs);
        let _ = std::thread::Builder::new()
            .name("cgroup-rm".into())
            .spawn(move || {
                for _ in 0..500 {
                    let left: Vec<&PathBuf> = dirs
                        .iter()
                        .filter(|d| d.exists() && std::fs::remove_dir(d).is_err())
                        .collect();
                    if left.is_empty() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
    }
}

/// Removes the project's parent cgroups at the end of the run, with any pod cgroup left in
/// them (their processes are gone by then; the kernel may take a moment to release them).
pub fn remove_parents(cgroups: &Cgroups) {
    for c in [&cgroups.memory, &cgroups.cpu].into_iter().flatten() {
        for _ in 0..500 {
            if let Ok(entries) = std::fs::read_dir(&c.parent) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        let _ = std::fs::remove_dir(entry.path());
                    }
                }
            }
            if !c.parent.exists() || std::fs::remove_dir(&c.parent).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The mounted cgroup hierarchies and the harness's place in them.
struct Hierarchies {
    /// (mount point, mount root, v1 controllers or empty for v2)
    mounts: Vec<(PathBuf, String, Vec<String>)>,
    /// (v1 controllers or empty for v2, the harness's cgroup path)
    own: Vec<(Vec<String>, String)>,
}

impl Hierarchies {
    fn read() -> Result<Hierarchies> {
        let mountinfo =
            std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
        let cgroup =
            std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
        Ok(Hierarchies::parse(&mountinfo, &cgroup))
    }

    /// From `/proc/self/mountinfo` and `/proc/self/cgroup`.
    fn parse(mountinfo: &str, cgroup: &str) -> Hierarchies {
        let mut mounts = Vec::new();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let (Some(root), Some(point), Some(fstype)) = (left.get(3), left.get(4), right.first())
            else {
                continue;
            };
            match *fstype {
                "cgroup2" => mounts.push((PathBuf::from(point), root.to_string(), Vec::new())),
                "cgroup" => {
                    let controllers = right
                        .get(2)
                        .map(|o| o.split(',').map(String::from).collect())
                        .unwrap_or_default();
                    mounts.push((PathBuf::from(point), root.to_string(), controllers));
                }
                _ => {}
            }
        }
        let own = cgroup
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                let controllers = if controllers.is_empty() {
                    Vec::new()
                } else {
                    controllers.split(',').map(String::from).collect()
                };
                Some((controllers, path.to_string()))
            })
            .collect();
        Hierarchies { mounts, own }
    }

    /// The directory of the harness's own cgroup in the hierarchy holding `controller`.
    /// `controller` None: the v2 hierarchy.
    fn own_dir(&self, controller: Option<&str>, point: &Path, root: &str) -> Option<PathBuf> {
        let (_, path) = self.own.iter().find(|(c, _)| match controller {
            None => c.is_empty(),
            Some(name) => c.iter().any(|c| c == name),
        })?;
        let relative = path
            .strip_prefix(root.trim_end_matches('/'))
            .unwrap_or(path)
            .trim_start_matches('/');
        Some(point.join(relative))
    }

    fn controller(&self, name: &str) -> std::result::Result<Controller, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("the harness is not root, so it cannot create cgroups".into());
        }
        // v2 first, when the unified hierarchy offers the controller.
        for (point, root, controllers) in &self.mounts {
            if !controllers.is_empty() {
                continue;
            }
            let offered = std::fs::read_to_string(point.join("cgroup.controllers"))
                .is_ok_and(|t| t.split_whitespace().any(|c| c == name));
            if !offered {
                continue;
            }
            let Some(own) = self.own_dir(None, point, root) else {
                continue;
            };
            return v2_parent(&own, name).map_err(|e| format!("{e:#}"));
        }
        for (point, root, controllers) in &self.mounts {
            if !controllers.iter().any(|c| c == name) {
                continue;
            }
            let Some(own) = self.own_dir(Some(name), point, root) else {
                continue;
            };
            let parent = own.join(PARENT);
            return match std::fs::create_dir_all(&parent) {
                Ok(()) => Ok(Controller {
                    version: Version::V1,
                    parent,
                }),
                Err(e) => Err(format!("cannot create {}: {e}", parent.display())),
            };
        }
        Err(format!(
            "no cgroup v2 or v1 hierarchy offers the {name} controller"
        ))
    }
}

/// The v2 parent: the controller enabled for the harness's children and for the pods.
fn v2_parent(own: &Path, name: &str) -> Result<Controller> {
    let enable = |dir: &Path| -> Result<()> {
        let current = std::fs::read_to_string(dir.join("cgroup.subtree_control"))
            .with_context(|| format!("reading {}/cgroup.subtree_control", dir.display()))?;
        if current.split_whitespace().any(|c| c == name) {
            return Ok(());
        }
        std::fs::write(dir.join("cgroup.subtree_control"), format!("+{name}")).map_err(|e| {
            anyhow!(
                "cannot enable {name} in {}/cgroup.subtree_control ({e}; cgroup v2 allows \
                 controllers only for cgroups without processes of their own)",
                dir.display()
            )
        })
    };
    enable(own)?;
    let parent = own.join(PARENT);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    enable(&parent)?;
    Ok(Controller {
        version: Version::V2,
        parent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_describe_themselves_in_the_manifest_units() {
        let l = Limits {
            memory_bytes: Some(128 << 20),
            cpu_millis: Some(500),
        };
        assert_eq!(l.describe(), "memory 128 MiB, cpu 500m");
        assert_eq!(Limits::default().describe(), "memory none, cpu none");
    }

    #[test]
    fn a_declared_limit_that_cannot_be_enforced_fails_under_ci_and_is_skipped_elsewhere() {
        let none = Cgroups {
            memory: Err("no memory controller".into()),
            cpu: Err("no cpu controller".into()),
        };
        let limits = Limits {
            memory_bytes: Some(128 << 20),
            cpu_millis: Some(500),
        };
        let err = none.create_as("pod", limits, true).expect_err("CI");
        assert!(err.to_string().contains("CI=true"), "{err}");
        assert!(err.to_string().contains("no memory controller"), "{err}");
        assert!(
            none.create_as("pod", limits, false)
                .expect("skip")
                .is_empty()
        );
        // Nothing declared, nothing to enforce, even under CI.
        assert!(
            none.create_as("pod", Limits::default(), true)
                .expect("none")
                .is_empty()
        );
        assert_eq!(none.problems().len(), 2);
    }

    #[test]
    fn the_own_cgroup_is_found_per_controller_below_the_mount_root() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 25 0:28 /kubepods /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let cgroup = "4:memory:/runner/job\n1:cpu:/\n0::/kubepods/pod1\n";
        let h = Hierarchies::parse(mountinfo, cgroup);
        assert_eq!(h.mounts.len(), 3);
        assert_eq!(
            h.own_dir(Some("memory"), Path::new("/sys/fs/cgroup/memory"), "/"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/runner/job"))
        );
        assert_eq!(
            h.own_dir(Some("cpu"), Path::new("/sys/fs/cgroup/cpu"), "/"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu/"))
        );
        // A namespaced mount shows only the subtree below its root.
        assert_eq!(
            h.own_dir(None, Path::new("/sys/fs/cgroup/unified"), "/kubepods"),
            Some(PathBuf::from("/sys/fs/cgroup/unified/pod1"))
        );
        assert_eq!(h.own_dir(Some("pids"), Path::new("/x"), "/"), None);
    }
}
