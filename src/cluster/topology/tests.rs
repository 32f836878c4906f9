//! The topology file: shipped examples valid, every slot mapped, mistakes named by key,
//! the secret from a file, the node list only ever growing across starts.

use super::*;

const SECRET: &str = "cluster_secret = \"0123456789abcdef\"\n";

fn nodes(n: usize) -> String {
    (1..=n)
        .map(|i| {
            format!("[[node]]\nid = \"n{i}\"\nclient = \"127.0.0.1:70{i:02}\"\ninternal = \"127.0.0.1:71{i:02}\"\n")
        })
        .collect()
}

fn parse(text: &str) -> Result<Topology, TopologyError> {
    Topology::parse(text, Path::new("c.toml"))
}

fn problem(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn the_node_list_may_grow_but_not_be_reordered_across_starts() {
    let dir = tempfile::tempdir().unwrap();
    let groups = "[[group]]\nslots = \"0-16383\"\nnodes = [\"n1\"]\n";
    let two = parse(&format!("{SECRET}{}{groups}", nodes(2))).unwrap();
    two.check_node_ids(dir.path()).unwrap();
    two.check_node_ids(dir.path()).unwrap();
    let three = parse(&format!("{SECRET}{}{groups}", nodes(3))).unwrap();
    three.check_node_ids(dir.path()).unwrap();
    let swapped = nodes(3)
        .replace("\"n2\"", "\"tmp\"")
        .replace("\"n3\"", "\"n2\"");
    let swapped = parse(&format!("{SECRET}{swapped}{groups}")).unwrap();
    let e = swapped.check_node_ids(dir.path()).unwrap_err().to_string();
    assert!(e.contains("node[1]: is \"tmp\" but was \"n2\""), "{e}");
    let e = two.check_node_ids(dir.path()).unwrap_err().to_string();
    assert!(e.contains("node[2]: is missing but was \"n3\""), "{e}");
}

#[test]
fn the_shipped_examples_are_valid() {
    for (file, nodes, groups) in [("cluster-3node.toml", 3, 3), ("cluster-5node.toml", 5, 5)] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(file);
        let t = Topology::load(&path).unwrap();
        assert_eq!((t.nodes.len(), t.groups.len()), (nodes, groups), "{file}");
        // Preferred leaders are spread: every node leads one group first.
        let mut firsts: Vec<_> = t.groups.iter().map(|g| g.nodes[0]).collect();
        firsts.sort();
        firsts.dedup();
        assert_eq!(firsts.len(), groups, "{file}");
    }
}

#[test]
fn every_slot_maps_to_its_group() {
    let text = format!("{SECRET}{}[[group]]\nslots = \"0-99,200-16383\"\nnodes = [\"n1\"]\n[[group]]\nslots = \"100-199\"\nnodes = [\"n2\", \"n1\"]\n", nodes(2));
    let t = parse(&text).unwrap();
    assert_eq!(t.group_of_slot(0), 0);
    assert_eq!(t.group_of_slot(150), 1);
    assert_eq!(t.group_of_slot(16383), 0);
    assert_eq!(t.groups[0].slots_text(), "0-99,200-16383");
    assert_eq!(t.groups_of(1).collect::<Vec<_>>(), vec![1]);
    assert_eq!(t.groups_of(0).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(t.node_index("n2").unwrap(), 1);
    assert!(t
        .node_index("n9")
        .unwrap_err()
        .to_string()
        .contains("--node-id: 'n9' is not a [[node]] id; known: n1, n2"));
}

#[test]
fn mistakes_name_the_key() {
    let all = "[[group]]\nslots = \"0-16383\"\nnodes = [\"n1\"]\n";
    let cases = [
        (format!("{}{all}", nodes(1)), "c.toml: cluster_secret: missing"),
        (format!("cluster_secret = \"short\"\n{}{all}", nodes(1)), "cluster_secret: the secret must be at least 16"),
        (format!("{SECRET}{all}"), "node: no [[node]]"),
        (format!("{SECRET}{}", nodes(1)), "group: no [[group]]"),
        (format!("{SECRET}{}[[group]]\nslots = \"0-100\"\nnodes = [\"n1\"]\n", nodes(1)), "group: slot 101 is in no group"),
        (format!("{SECRET}{}{all}[[group]]\nslots = \"5\"\nnodes = [\"n1\"]\n", nodes(1)), "group[1].slots: slot 5 is also in group[0]"),
        (format!("{SECRET}{}[[group]]\nslots = \"0-16384\"\nnodes = [\"n1\"]\n", nodes(1)), "group[0].slots: slot 16384 is out of range"),
        (format!("{SECRET}{}[[group]]\nslots = \"9-3\"\nnodes = [\"n1\"]\n", nodes(1)), "group[0].slots: range 9-3 runs backwards"),
        (format!("{SECRET}{}[[group]]\nslots = \"all\"\nnodes = [\"n1\"]\n", nodes(1)), "group[0].slots: 'all' is not a slot number"),
        (format!("{SECRET}{}[[group]]\nslots = \"0-16383\"\nnodes = [\"n7\"]\n", nodes(1)), "group[0].nodes: 'n7' is not a [[node]] id; known: n1"),
        (format!("{SECRET}{}[[group]]\nslots = \"0-16383\"\nnodes = [\"n1\", \"n1\"]\n", nodes(1)), "group[0].nodes: 'n1' is listed twice"),
        (format!("{SECRET}{}[[group]]\nslots = \"0-16383\"\nnodes = []\n", nodes(1)), "group[0].nodes: a group needs at least one node"),
        (format!("{SECRET}{}{}{all}", nodes(1), nodes(1)), "node[1].id: 'n1' is used by two nodes"),
        (format!("{SECRET}[[node]]\nid = \"a\"\nclient = \"127.0.0.1:1\"\ninternal = \"127.0.0.1:1\"\n{all}"), "node[0].internal: 127.0.0.1:1 is also node[0].client"),
        (format!("{SECRET}[[node]]\nid = \"a\"\nclient = \"localhost\"\ninternal = \"127.0.0.1:1\"\n{all}"), "node[0].client: 'localhost' is not an address"),
        (format!("{SECRET}[[node]]\nid = \"a\"\nclient = \"a..b:1\"\ninternal = \"127.0.0.1:1\"\n{all}"), "node[0].client: 'a..b:1' is not an address"),
        (format!("{SECRET}[[node]]\nid = \"a\"\nclient = \"h.svc:0\"\ninternal = \"127.0.0.1:1\"\n{all}"), "node[0].client: port 0"),
        (format!("{SECRET}[[node]]\nid = \"a\"\nclient = \"H.svc:1\"\ninternal = \"h.svc:1\"\n{all}"), "node[0].internal: h.svc:1 is also node[0].client"),
        (format!("{SECRET}[[node]]\nid = \"a b\"\nclient = \"127.0.0.1:2\"\ninternal = \"127.0.0.1:1\"\n{all}"), "node[0].id: 'a b' is not a node id"),
        (format!("{SECRET}{}{all}colour = 1\n", nodes(1)), "(document): unknown field `colour`"),
    ];
    for (text, expected) in cases {
        let got = problem(&text);
        assert!(got.contains(expected), "expected {expected:?} in {got:?}");
    }
}

#[test]
fn the_secret_may_come_from_a_file_beside_the_topology() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s"), "abcdefghijklmnopq\n").unwrap();
    let text = format!(
        "cluster_secret_file = \"s\"\n{}[[group]]\nslots = \"0-16383\"\nnodes = [\"n1\"]\n",
        nodes(1)
    );
    let t = Topology::parse(&text, &dir.path().join("c.toml")).unwrap();
    assert_eq!(t.secret, "abcdefghijklmnopq");
    let text = text.replace("\"s\"", "\"missing\"");
    let e = Topology::parse(&text, &dir.path().join("c.toml")).unwrap_err();
    assert_eq!(e.key, "cluster_secret_file");
}
