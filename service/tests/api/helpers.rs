//! `spawn_app`: the application built from the contract's settings, bound to 127.0.0.1:0 and
//! served in-process, on a thread of its own with its own actix system, as `main` runs it.

use std::sync::LazyLock;
use std::sync::mpsc;
use std::thread::JoinHandle;

use contract::{RawConfig, Settings};
use hello_k8s::shutdown::ShutdownHandle;
use hello_k8s::startup::Application;
use hello_k8s::telemetry::{get_subscriber, init_subscriber};

use crate::binary::{EVENT_WAIT, Reply, agent, send};

/// The API key of [`spawn_app`]; a canary nowhere else in the code.
pub const TEST_API_KEY: &str = "test-key-4f1c9a2e7b";

/// Logs are silent unless `TEST_LOG` is set (then debug, one line per request, to stdout).
static TRACING: LazyLock<()> = LazyLock::new(|| {
    use contract::{LogFormat, LogLevel};
    if std::env::var_os("TEST_LOG").is_some() {
        init_subscriber(get_subscriber(
            LogLevel::Debug,
            LogFormat::Text,
            std::io::stdout,
        ));
    } else {
        init_subscriber(get_subscriber(
            LogLevel::Info,
            LogFormat::Text,
            std::io::sink,
        ));
    }
});

pub struct TestApp {
    pub address: String,
    /// `http://127.0.0.1:<probe port>`.
    pub probe_address: String,
    pub port: u16,
    pub agent: ureq::Agent,
    pub shutdown: ShutdownHandle,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Settings from `pairs` over test defaults (loopback, a fixed API key, two workers), bound
/// to port 0.
pub fn settings(pairs: &[(&str, &str)]) -> Settings {
    let mut all = vec![
        ("HOST", "127.0.0.1"),
        ("API_KEY", TEST_API_KEY),
        ("WORKERS", "2"),
        ("DRAIN_DELAY_SECONDS", "1"),
    ];
    for (key, value) in pairs {
        all.retain(|(k, _)| k != key);
        all.push((key, value));
    }
    all.retain(|(_, v)| *v != "<unset>");
    let mut settings = Settings::from_raw(RawConfig::from_pairs(all).unwrap()).unwrap();
    // The contract refuses port 0 (a deployment must name its port); tests want any port.
    settings.config.port = 0;
    settings.config.probe_port = 0;
    settings
}

pub fn spawn_app() -> TestApp {
    spawn_app_with(&[], |_| {})
}

/// The application with `pairs` over the test settings and `extra_routes` (test-only
/// routes), serving once every worker serves.
pub fn spawn_app_with<F>(pairs: &[(&str, &str)], extra_routes: F) -> TestApp
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    LazyLock::force(&TRACING);
    let settings = settings(pairs);
    let (started, bound) = mpsc::channel();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let application = Application::build_with(settings, extra_routes)?;
            let _ = started.send((
                application.port(),
                application.probe_port(),
                application.shutdown_handle(),
                application.shared(),
            ));
            application.run_without_os_signals().await
        })
    });
    let (port, probe_port, shutdown, shared) = bound
        .recv_timeout(EVENT_WAIT)
        .expect("the application never bound its ports");
    assert!(
        shared.readiness.wait_until_serving(EVENT_WAIT),
        "the application's workers never served"
    );
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        probe_address: format!("http://127.0.0.1:{probe_port}"),
        port,
        agent: agent(),
        shutdown,
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn get(&self, path: &str) -> Reply {
        send(self.agent.get(self.url(path))).unwrap()
    }

    pub fn head(&self, path: &str) -> Reply {
        send(self.agent.head(self.url(path))).unwrap()
    }

    pub fn get_accepting(&self, path: &str, accept: &str) -> Reply {
        send(self.agent.get(self.url(path)).header("accept", accept)).unwrap()
    }

    pub fn post_with_token(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.agent.post(self.url(path));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        crate::binary::send_empty(request).unwrap()
    }

    /// Waits for the server to stop (after a shutdown began) and returns how it ended.
    pub fn stopped(mut self) -> std::io::Result<()> {
        self.server
            .take()
            .expect("the server thread is joined once")
            .join()
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // A test that did not stop its server: stop it now, skipping the drain.
        if let Some(server) = self.server.take() {
            self.shutdown.begin(hello_k8s::shutdown::Signal::Int);
            let _ = server.join();
        }
    }
}
