//! Single requests: the greeting through a NodePort, the harness's own probes. Load at full
//! rate is [`crate::load`]'s.

use std::time::Duration;

/// A blocking HTTP client with the harness's timeouts, no proxy, no redirects.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .build(),
    )
}

/// One GET: the status and body, or what went wrong.
pub fn get(agent: &ureq::Agent, url: &str) -> Result<(u16, String), String> {
    match agent.get(url).call() {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .read_to_string()
                .map_err(|e| format!("{url}: reading the body: {e}"))?;
            Ok((status, body))
        }
        Err(err) => Err(format!("{url}: {err}")),
    }
}
