//! `spawn_app`: the application built from the contract's settings, bound to 127.0.0.1:0 and
//! served in-process by the test's runtime.

use std::sync::LazyLock;

use contract::{RawConfig, Settings};
use hello_k8s::shutdown::ShutdownHandle;
use hello_k8s::startup::Application;
use hello_k8s::telemetry::{get_subscriber, init_subscriber};
use tokio::task::JoinHandle;

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
    pub client: reqwest::Client,
    pub shutdown: ShutdownHandle,
    pub server: JoinHandle<std::io::Result<()>>,
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

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[], |_| {}).await
}

pub async fn spawn_app_with<F>(pairs: &[(&str, &str)], extra_routes: F) -> TestApp
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    LazyLock::force(&TRACING);
    let application = Application::build_with(settings(pairs), extra_routes).unwrap();
    let address = format!("http://127.0.0.1:{}", application.port());
    let probe_address = format!("http://127.0.0.1:{}", application.probe_port());
    let shutdown = application.shutdown_handle();
    let server = tokio::spawn(application.run_without_os_signals());
    let app = TestApp {
        address,
        probe_address,
        client: client(),
        shutdown,
        server,
    };
    app.wait_until_ready().await;
    app
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn head(&self, path: &str) -> reqwest::Response {
        self.client.head(self.url(path)).send().await.unwrap()
    }

    pub async fn get_accepting(&self, path: &str, accept: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("accept", accept)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_with_token(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// Polls `/readyz` until it answers 200 (the workers start asynchronously).
    pub async fn wait_until_ready(&self) {
        for _ in 0..500 {
            if let Ok(res) = self.client.get(self.url("/readyz")).send().await
                && res.status() == 200
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("{} never became ready", self.address);
    }
}
