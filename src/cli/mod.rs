//! The bodies of the command line's subcommands, one file each, and the one HTTP call the
//! client-side commands (`materialize`, `cluster`) make. `main.rs` parses and dispatches.

use std::time::Duration;

pub mod args;
pub mod bench;
pub mod cluster;
pub mod materialize;
pub mod serve;
pub mod token;

/// GETs `url` (or POSTs `body` as JSON), with `token` as a bearer token if given: the answer's
/// body when it is a 200.
pub fn http(
    url: &str,
    body: Option<serde_json::Value>,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    actix_rt::System::new().block_on(async {
        let mut client = awc::Client::builder().timeout(timeout);
        if let Some(token) = token {
            client = client.bearer_auth(token);
        }
        let client = client.finish();
        let sent = match body {
            Some(body) => client.post(url).send_json(&body).await,
            None => client.get(url).send().await,
        };
        let mut response = sent.map_err(|e| e.to_string())?;
        let body = response.body().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!(
                "{} {}",
                response.status(),
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(body.to_vec())
    })
}
