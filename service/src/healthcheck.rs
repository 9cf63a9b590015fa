//! `hello-k8s healthcheck`: GET the running server's `/healthz` on its probe listener
//! (`PROBE_PORT`, see `connection::probes`) and exit 0 on 200, 1 otherwise (the image HEALTHCHECK;
//! the runtime image has no shell and no curl). The probe port answers within its timeout even
//! while the HTTP port is flooded, and its liveness still checks every worker's heartbeat.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use contract::Settings;

/// How long the whole probe may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);

pub fn run() -> ExitCode {
    let result = Settings::from_env()
        .map_err(|err| err.to_string())
        .and_then(|settings| {
            probe(
                target(settings.config.host, settings.config.probe_port),
                TIMEOUT,
            )
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: healthcheck: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Where the server listens, seen from inside its own container: loopback when it binds every
/// address (of the same family as `HOST`), else the address it binds.
pub fn target(host: IpAddr, port: u16) -> SocketAddr {
    let ip = match host {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    SocketAddr::new(ip, port)
}

/// One GET of `/healthz` at `address`.
pub fn probe(address: SocketAddr, timeout: Duration) -> Result<(), String> {
    let url = format!("http://{address}{}", contract::paths::LIVENESS);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .build(),
    );
    match agent.get(&url).call() {
        Ok(response) if response.status() == 200 => Ok(()),
        Ok(response) => Err(format!("{url} answered {}", response.status())),
        Err(err) => Err(format!("{url}: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_hosts_are_probed_on_loopback_of_the_same_family() {
        assert_eq!(
            target(Ipv4Addr::UNSPECIFIED.into(), 80).to_string(),
            "127.0.0.1:80"
        );
        assert_eq!(
            target(Ipv6Addr::UNSPECIFIED.into(), 80).to_string(),
            "[::1]:80"
        );
        assert_eq!(
            target(Ipv4Addr::LOCALHOST.into(), 80).to_string(),
            "127.0.0.1:80"
        );
    }
}
