//! Pod sandboxes: where a simulated pod's processes run and how the harness reaches them.
//!
//! Preferred: one network namespace per pod, as the pause container holds it in a cluster.
//! A holder process (`unshare --net`) owns the namespace, `lo` is brought up in it, the
//! container runs inside it through `nsenter`, and the harness connects to it from threads
//! that joined the namespace (`setns`). Every replica then has its own `127.0.0.1:5600`, the
//! manifest's port and HOST are used unchanged, and the namespace has no interface but `lo`,
//! so nothing is reachable from outside the machine (checked before start).
//!
//! Fallback (no privilege for namespaces, or `E2E_NETNS=off`): the pod shares the host's
//! loopback; HOST is rewritten to 127.0.0.1 and PORT to a free port, and connections to the
//! port the manifest's PORT names are mapped to that free port. Any other port stays refused,
//! so a probe on the wrong port still fails.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::cgroup::PodCgroup;
use crate::kubelet::ContainerLaunch;

/// How pods are isolated from each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetMode {
    /// One network namespace per pod (faithful).
    Netns,
    /// Host loopback with rewritten ports (fallback).
    HostPorts,
}

impl NetMode {
    /// Namespaces when they work here (root or CAP_SYS_ADMIN) and are not switched off.
    pub async fn detect() -> NetMode {
        if std::env::var("E2E_NETNS").is_ok_and(|v| v == "off") {
            return NetMode::HostPorts;
        }
        let works = Command::new("unshare")
            .args(["--net", "--", "true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
            && which("nsenter")
            && which("ip");
        if works {
            NetMode::Netns
        } else {
            NetMode::HostPorts
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            NetMode::Netns => {
                "one network namespace per pod (lo only): manifest HOST and PORT used unchanged"
            }
            NetMode::HostPorts => {
                "host loopback: HOST rewritten to 127.0.0.1, PORT to a free port, probes mapped"
            }
        }
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

type DialRequest = (SocketAddrV4, oneshot::Sender<io::Result<StdTcpStream>>);

/// One pod's network.
#[derive(Debug)]
pub struct Sandbox {
    pub mode: NetMode,
    holder: Mutex<Option<Child>>,
    holder_pid: Option<u32>,
    dialer: Option<mpsc::Sender<DialRequest>>,
    /// The kubelet's own dialer: probes never queue behind the clients' connects (in a
    /// cluster the kubelet is another process on the node).
    probe_dialer: Option<mpsc::Sender<DialRequest>>,
    /// Floods dial here, so their thousands of connects delay neither probes nor the normal
    /// clients measured beside them.
    bulk_dialer: Option<mpsc::Sender<DialRequest>>,
    /// HostPorts mode: the port the container was told (PORT) -> the host port it got.
    port_map: Mutex<HashMap<u16, u16>>,
    /// The pod's cgroup: every process of the pod runs in it (its resource limits).
    cgroup: OnceLock<PodCgroup>,
}

const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
const DIALER_THREADS: usize = 4;
const PROBE_DIALER_THREADS: usize = 2;
const BULK_DIALER_THREADS: usize = 8;

impl Sandbox {
    pub async fn new(mode: NetMode) -> Result<Arc<Sandbox>> {
        match mode {
            NetMode::HostPorts => Ok(Arc::new(Sandbox {
                mode,
                holder: Mutex::new(None),
                holder_pid: None,
                dialer: None,
                probe_dialer: None,
                bulk_dialer: None,
                port_map: Mutex::new(HashMap::new()),
                cgroup: OnceLock::new(),
            })),
            NetMode::Netns => Self::new_netns().await,
        }
    }

    async fn new_netns() -> Result<Arc<Sandbox>> {
        // The holder is bounded in time, so even a harness killed with SIGKILL leaves nothing
        // behind for long; kill_on_drop ends it with the sandbox.
        let holder = Command::new("unshare")
            .args(["--net", "--", "sleep", "900"])
            .kill_on_drop(true)
            .spawn()
            .context("starting the network namespace holder (unshare --net)")?;
        let pid = holder
            .id()
            .ok_or_else(|| anyhow!("namespace holder exited at once"))?;
        let own = std::fs::read_link("/proc/self/ns/net").context("reading own netns")?;
        let ns_path = format!("/proc/{pid}/ns/net");
        // unshare(2) happens just after spawn: wait until the holder's namespace differs.
        let mut joined = false;
        for _ in 0..200 {
            if std::fs::read_link(&ns_path).is_ok_and(|ns| ns != own) {
                joined = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !joined {
            bail!("the namespace holder {pid} never entered a new network namespace");
        }
        let status = Command::new("nsenter")
            .arg(format!("--net={ns_path}"))
            .args(["--", "ip", "link", "set", "lo", "up"])
            .status()
            .await
            .context("bringing lo up in the pod namespace")?;
        if !status.success() {
            bail!("`ip link set lo up` in the pod namespace failed: {status}");
        }
        // Sandbox rule: the pod may bind 0.0.0.0 only because nothing but lo exists here.
        let devices = std::fs::read_to_string(format!("/proc/{pid}/net/dev"))?;
        let interfaces: Vec<&str> = devices
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        if interfaces != ["lo"] {
            bail!("pod namespace has interfaces {interfaces:?}, expected only lo");
        }

        let dialers = |threads: usize, name: &str| -> Result<mpsc::Sender<DialRequest>> {
            let (tx, rx) = mpsc::channel::<DialRequest>();
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..threads {
                let ns = File::open(&ns_path).with_context(|| format!("opening {ns_path}"))?;
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name(format!("{name}-{pid}"))
                    .spawn(move || dialer_thread(ns, rx))
                    .context("starting a dialer thread")?;
            }
            Ok(tx)
        };
        let tx = dialers(DIALER_THREADS, "dial")?;
        let probe_tx = dialers(PROBE_DIALER_THREADS, "probe")?;
        let bulk_tx = dialers(BULK_DIALER_THREADS, "bulk")?;
        Ok(Arc::new(Sandbox {
            mode: NetMode::Netns,
            holder: Mutex::new(Some(holder)),
            holder_pid: Some(pid),
            dialer: Some(tx),
            probe_dialer: Some(probe_tx),
            bulk_dialer: Some(bulk_tx),
            port_map: Mutex::new(HashMap::new()),
            cgroup: OnceLock::new(),
        }))
    }

    /// Puts every process started in this sandbox from now on into `cgroup`.
    pub fn confine(&self, cgroup: PodCgroup) -> Result<()> {
        self.cgroup
            .set(cgroup)
            .map_err(|_| anyhow!("the pod sandbox already has a cgroup"))
    }

    /// The pod's cgroup, when its limits are enforced.
    pub fn cgroup(&self) -> Option<&PodCgroup> {
        self.cgroup.get()
    }

    /// Adjusts the container's environment to the sandbox (HostPorts only) and says how.
    pub fn prepare(&self, launch: &mut ContainerLaunch) -> Result<Vec<String>> {
        if self.mode == NetMode::Netns {
            return Ok(Vec::new());
        }
        let mut notes = Vec::new();
        if launch.get("HOST") != Some("127.0.0.1") {
            notes.push(format!(
                "HOST {:?} -> \"127.0.0.1\" (sandbox: host loopback only)",
                launch.get("HOST").unwrap_or("")
            ));
            launch.set("HOST", "127.0.0.1");
        }
        let declared: u16 = match launch.get("PORT") {
            Some(p) => p
                .parse()
                .map_err(|_| anyhow!("PORT {p:?} is not a port number"))?,
            None => contract::HTTP_PORT,
        };
        let free = free_port()?;
        self.lock_map().insert(declared, free);
        notes.push(format!(
            "PORT {declared} -> {free} (shared loopback); connections to pod port {declared} \
             go to {free}, any other pod port is refused"
        ));
        launch.set("PORT", &free.to_string());
        Ok(notes)
    }

    fn lock_map(&self) -> std::sync::MutexGuard<'_, HashMap<u16, u16>> {
        self.port_map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A command that runs inside the pod's network and cgroup.
    pub fn command(&self, program: &Path) -> Command {
        let mut argv = self.network_argv(program);
        if let Some(cgroup) = self.cgroup.get() {
            argv = cgroup.wrap(argv);
        }
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }

    /// A client program (load generator) run in the pod's network but outside its cgroup:
    /// it reaches the pod's loopback as the pod's own port, and its resources are its own.
    pub fn client_command(&self, program: &Path) -> Command {
        let argv = self.network_argv(program);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }

    /// The port a program in the pod's network connects to for pod port `port`.
    pub fn loopback_port(&self, port: u16) -> u16 {
        match self.holder_pid {
            Some(_) => port,
            None => self.lock_map().get(&port).copied().unwrap_or(port),
        }
    }

    fn network_argv(&self, program: &Path) -> Vec<OsString> {
        match self.holder_pid {
            // nsenter execs the program: the child's PID is the program's.
            Some(pid) => vec![
                "nsenter".into(),
                format!("--net=/proc/{pid}/ns/net").into(),
                "--".into(),
                program.as_os_str().to_owned(),
            ],
            None => vec![program.as_os_str().to_owned()],
        }
    }

    /// Connects to `port` of the pod, as another pod would reach the pod IP.
    pub async fn connect(&self, port: u16) -> io::Result<TcpStream> {
        self.dial(self.dialer.as_ref(), port).await
    }

    /// Connects to `port` of the pod as the kubelet's prober does, on its own dialer.
    pub async fn connect_probe(&self, port: u16) -> io::Result<TcpStream> {
        self.dial(self.probe_dialer.as_ref(), port).await
    }

    /// Connects to `addr` from inside this network namespace (the node namespace's clients
    /// reaching a Service address).
    pub async fn connect_to(&self, addr: SocketAddrV4) -> io::Result<TcpStream> {
        Self::dial_addr(self.dialer.as_ref(), addr).await
    }

    /// [`Sandbox::connect_to`] on the flood's own dialer.
    pub async fn connect_bulk_to(&self, addr: SocketAddrV4) -> io::Result<TcpStream> {
        Self::dial_addr(self.bulk_dialer.as_ref(), addr).await
    }

    async fn dial_addr(
        dialer: Option<&mpsc::Sender<DialRequest>>,
        addr: SocketAddrV4,
    ) -> io::Result<TcpStream> {
        let Some(dialer) = dialer else {
            return Err(io::Error::other("this sandbox has no network namespace"));
        };
        let (tx, rx) = oneshot::channel();
        dialer
            .send((addr, tx))
            .map_err(|_| io::Error::other("sandbox is gone"))?;
        let stream = rx
            .await
            .map_err(|_| io::Error::other("dialer thread ended"))??;
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        TcpStream::from_std(stream)
    }

    /// The PID holding the network namespace, when the sandbox has one.
    pub fn netns_pid(&self) -> Option<u32> {
        self.holder_pid
    }

    async fn dial(
        &self,
        dialer: Option<&mpsc::Sender<DialRequest>>,
        port: u16,
    ) -> io::Result<TcpStream> {
        let std_stream = match dialer {
            Some(dialer) => {
                let (tx, rx) = oneshot::channel();
                dialer
                    .send((SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), tx))
                    .map_err(|_| io::Error::other("pod sandbox is gone"))?;
                rx.await
                    .map_err(|_| io::Error::other("dialer thread ended"))??
            }
            None => {
                let Some(host_port) = self.lock_map().get(&port).copied() else {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("nothing listens on pod port {port}"),
                    ));
                };
                let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, host_port));
                tokio::task::spawn_blocking(move || {
                    StdTcpStream::connect_timeout(&addr, DIAL_TIMEOUT)
                })
                .await
                .map_err(io::Error::other)??
            }
        };
        std_stream.set_nonblocking(true)?;
        std_stream.set_nodelay(true)?;
        TcpStream::from_std(std_stream)
    }

    /// Whether a socket listens on pod port `port` right now.
    pub fn is_listening(&self, port: u16) -> bool {
        let (path_pid, port) = match (self.holder_pid, self.mode) {
            (Some(pid), NetMode::Netns) => (pid.to_string(), port),
            _ => match self.lock_map().get(&port) {
                Some(p) => ("self".to_string(), *p),
                None => return false,
            },
        };
        ["tcp", "tcp6"].iter().any(|proto| {
            std::fs::read_to_string(format!("/proc/{path_pid}/net/{proto}")).is_ok_and(|t| {
                t.lines().skip(1).any(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    // field 1 is local "ADDR:PORT" in hex, field 3 the state (0A = LISTEN).
                    fields.get(3) == Some(&"0A")
                        && fields
                            .get(1)
                            .and_then(|a| a.rsplit(':').next())
                            .and_then(|p| u16::from_str_radix(p, 16).ok())
                            == Some(port)
                })
            })
        })
    }

    /// Ends the namespace holder (the namespace disappears with its last process).
    pub fn shutdown(&self) {
        let child = self.holder.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            let _ = child.start_kill();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn dialer_thread(ns: File, rx: Arc<Mutex<mpsc::Receiver<DialRequest>>>) {
    if let Err(e) = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET) {
        // Answer every request with the error rather than dialing the host's loopback.
        loop {
            let request = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
            let Ok((_, reply)) = request else { return };
            let _ = reply.send(Err(io::Error::other(format!("setns failed: {e}"))));
        }
    }
    loop {
        let request = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((addr, reply)) = request else { return };
        let _ = reply.send(StdTcpStream::connect_timeout(
            &SocketAddr::V4(addr),
            DIAL_TIMEOUT,
        ));
    }
}

/// A port that is free on the host's loopback right now.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The local path to run for an in-image program: the service binary by its name.
pub fn local_program(in_image: &str, binary: &Path) -> Result<PathBuf> {
    let name = Path::new(in_image)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(in_image);
    if name == contract::APP_NAME {
        Ok(binary.to_path_buf())
    } else {
        bail!(
            "the container runs {in_image:?}, which is not the service binary {:?}",
            contract::APP_NAME
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_service_binary_can_be_run() {
        let bin = Path::new("/tmp/bin/hello-k8s");
        assert_eq!(local_program("/hello-k8s", bin).expect("ok"), bin);
        assert!(local_program("/bin/sh", bin).is_err());
    }
}
