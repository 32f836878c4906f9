//! `featgrid cluster status` (`GET /cluster` of one node, as a table or as is),
//! `featgrid cluster members` (a group's voters changed through its leader),
//! `featgrid cluster balance` (each group led by its preferred leader) and
//! `featgrid cluster reload` (a node takes the nodes added to its topology file).

use std::process::ExitCode;
use std::time::Duration;

use super::args::NodeArgs;
use super::http;

pub fn members(node: &NodeArgs, group: usize, add: Vec<String>, remove: Vec<String>) -> ExitCode {
    let body = serde_json::json!({"add": add, "remove": remove});
    let path = format!("/cluster/groups/{group}/members");
    post("members", node, &path, body, Duration::from_secs(180))
}

pub fn reload(node: &NodeArgs) -> ExitCode {
    let body = serde_json::json!({});
    post(
        "reload",
        node,
        "/cluster/reload",
        body,
        Duration::from_secs(30),
    )
}

pub fn balance(node: &NodeArgs) -> ExitCode {
    let url = format!("{}/cluster/balance", node.node.trim_end_matches('/'));
    let answer = http(
        &url,
        Some(serde_json::json!({})),
        node.token.token.as_deref(),
        Duration::from_secs(120),
    );
    let body = match answer {
        Ok(body) => body,
        Err(e) => {
            eprintln!("featgrid cluster balance: {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", String::from_utf8_lossy(&body));
    match serde_json::from_slice::<featgrid::cluster::balance::Balance>(&body) {
        Ok(b) if b.balanced => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("featgrid cluster balance: some groups are not led by their preferred leader (see \"problem\")");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("featgrid cluster balance: {url}: unexpected answer: {e}");
            ExitCode::FAILURE
        }
    }
}

/// POSTs `body` to `path` of the node; prints the answer.
fn post(
    command: &str,
    node: &NodeArgs,
    path: &str,
    body: serde_json::Value,
    timeout: Duration,
) -> ExitCode {
    let url = format!("{}{path}", node.node.trim_end_matches('/'));
    match http(&url, Some(body), node.token.token.as_deref(), timeout) {
        Ok(answer) => {
            println!("{}", String::from_utf8_lossy(&answer));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("featgrid cluster {command}: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn status(node: &NodeArgs, json: bool) -> ExitCode {
    let url = format!("{}/cluster", node.node.trim_end_matches('/'));
    let body = match http(
        &url,
        None,
        node.token.token.as_deref(),
        Duration::from_secs(10),
    ) {
        Ok(body) => body,
        Err(e) => {
            eprintln!("featgrid cluster status: {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", String::from_utf8_lossy(&body));
        return ExitCode::SUCCESS;
    }
    match serde_json::from_slice::<featgrid::cluster::status::ClusterStatus>(&body) {
        Ok(status) => {
            print!("{}", featgrid::cluster::status::table(&status));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("featgrid cluster status: {url}: unexpected answer: {e}");
            ExitCode::FAILURE
        }
    }
}
