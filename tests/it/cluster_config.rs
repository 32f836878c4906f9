//! The cluster's configuration from the command line: `serve --check` on topologies, single
//! nodes and the arguments of the deploy examples (systemd, Kubernetes).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::cluster::SECRET;
use crate::support::BIN;

fn check(args: &[&str], topology: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["serve", "--check", "--cluster"])
        .arg(topology)
        .args(args)
        .output()
        .expect("run featgrid");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn serve_check_validates_the_topology_and_names_the_key() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cluster-3node.toml");
    let (ok, text) = check(&["--node-id", "n2"], &example);
    assert!(ok, "{text}");
    assert!(
        text.contains("node n2 of a cluster of 3 nodes and 3 groups"),
        "{text}"
    );
    let (ok, text) = check(&["--node-id", "n9"], &example);
    assert!(
        !ok && text.contains("--node-id: 'n9' is not a [[node]] id"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let broken = std::fs::read_to_string(&example)
        .unwrap()
        .replace("10923-16383", "10923-16000")
        .replace(
            "cluster_secret_file = \"cluster.secret\"",
            &format!("cluster_secret = \"{SECRET}\""),
        );
    std::fs::write(&bad, broken).unwrap();
    let (ok, text) = check(&["--node-id", "n1"], &bad);
    assert!(
        !ok && text.contains("bad.toml: group: slot 16001 is in no group"),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["serve", "--check", "--cluster"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "--cluster without --node-id is refused"
    );
    // A single node checks its settings and registry the same way.
    let out = Command::new(BIN)
        .args(["serve", "--check", "--shards", "4"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("configuration is valid"),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["serve", "--check", "--shards", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Runs `featgrid serve` with `args` (the binary left out) plus `--check`, paths replaced.
fn check_args(args: &[String], replace: &[(&str, String)]) -> (bool, String) {
    let mut args: Vec<String> = args
        .iter()
        .map(|a| {
            replace
                .iter()
                .fold(a.clone(), |a, (from, to)| a.replace(from, to))
        })
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("serve"), "{args:?}");
    args.insert(1, "--check".into());
    let out = Command::new(BIN)
        .args(&args)
        .output()
        .expect("run featgrid");
    let text = format!(
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_deploy_examples_pass_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();

    // systemd: ExecStart's arguments, for node n1 of the 3-node example (on loopback), and of
    // the same topology on a private network, which needs the token file the unit names.
    let unit = std::fs::read_to_string(root.join("deploy/systemd/featgrid@.service")).unwrap();
    let example = root.join("config/cluster-3node.toml");
    let private = dir.path().join("cluster-private.toml");
    std::fs::write(
        &private,
        std::fs::read_to_string(&example)
            .unwrap()
            .replace("127.0.0.1", "10.20.30.40")
            .replace(
                "cluster_secret_file = \"cluster.secret\"",
                &format!("cluster_secret = \"{SECRET}\""),
            ),
    )
    .unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nname = \"app\"\nsha256 = \"{}\"\nscopes = [\"read\"]\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    for key in ["ExecStartPre=", "ExecStart="] {
        let line = unit.lines().find_map(|l| l.strip_prefix(key)).expect(key);
        let mut args: Vec<String> = line.split_whitespace().skip(1).map(String::from).collect();
        args.retain(|a| a != "--check");
        for topology in [&example, &private] {
            let replace = [
                ("/etc/featgrid/cluster.toml", topology.display().to_string()),
                ("/etc/featgrid/tokens.toml", tokens.display().to_string()),
                ("/var/lib/featgrid/%i", data.clone()),
                ("%i", "n1".to_string()),
            ];
            let (ok, text) = check_args(&args, &replace);
            assert!(ok, "{text}");
            assert!(text.contains("node n1 of a cluster of 3 nodes"), "{text}");
        }
    }
    // Without credentials the private topology is refused, naming where the address comes
    // from (no --bind was given).
    let (ok, text) = check_args(
        &[
            "serve".into(),
            "--cluster".into(),
            private.display().to_string(),
            "--node-id".into(),
            "n1".into(),
            "--data-dir".into(),
            data.clone(),
        ],
        &[],
    );
    let source = format!(
        "cluster topology {} (node n1's client address): bind: 10.20.30.40:7001 is not a loopback address",
        private.display()
    );
    assert!(!ok && text.contains(&source), "{text}");
    assert!(!text.contains("--bind:"), "{text}");

    // Kubernetes: the StatefulSet's arguments on the ConfigMap's topology, for featgrid-0.
    let yaml = std::fs::read_to_string(root.join("deploy/kubernetes/featgrid.yaml")).unwrap();
    let docs: Vec<Value> = yaml
        .split("\n---\n")
        .map(|d| serde_norway::from_str(d).expect("a YAML document"))
        .collect();
    let kind = |k: &str| docs.iter().find(|d| d["kind"] == k).expect(k).clone();
    let topology = kind("ConfigMap")["data"]["cluster.toml"]
        .as_str()
        .unwrap()
        .to_string();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("cluster.toml"), topology).unwrap();
    std::fs::write(
        etc.join("cluster.secret"),
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    // The pods serve 0.0.0.0: only with client tokens (the featgrid-tokens Secret).
    std::fs::write(
        etc.join("tokens.toml"),
        format!(
            "[[token]]\nname = \"app\"\nsha256 = \"{}\"\nscopes = [\"read\"]\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let set = kind("StatefulSet");
    let args: Vec<String> = set["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let replace = [
        ("/etc/featgrid", etc.display().to_string()),
        ("$(POD_NAME)", "featgrid-0".to_string()),
        ("/data", data.clone()),
    ];
    let (ok, text) = check_args(&args, &replace);
    assert!(
        ok && text.contains("node featgrid-0 of a cluster of 3 nodes"),
        "{text}"
    );
}

#[test]
fn a_node_whose_internal_port_is_taken_fails_before_it_writes_any_raft_state() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let internal = taken.local_addr().unwrap();
    let free = |_| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let [client, other_client, other_internal] = [0, 1, 2].map(free);
    let topology = dir.path().join("cluster.toml");
    std::fs::write(
        &topology,
        format!(
            "cluster_secret = \"{SECRET}\"\n\
             [[node]]\nid = \"n1\"\nclient = \"{client}\"\ninternal = \"{internal}\"\n\
             [[node]]\nid = \"n2\"\nclient = \"{other_client}\"\ninternal = \"{other_internal}\"\n\
             [[group]]\nslots = \"0-16383\"\nnodes = [\"n1\", \"n2\"]\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("n1");
    let out = Command::new(BIN)
        .args(["serve", "--cluster"])
        .arg(&topology)
        .args([
            "--node-id",
            "n1",
            "--workers",
            "1",
            "--bootstrap",
            "--data-dir",
        ])
        .arg(&data)
        .env("FEATGRID_LOG", "info")
        .output()
        .expect("run featgrid");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("internal address {internal}")),
        "{stderr}"
    );
    assert!(!stderr.contains("group initialized"), "{stderr}");
    assert!(!data.join("raft").exists(), "{stderr}");
    drop(taken);
}
