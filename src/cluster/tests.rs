use super::place::{Want, place};
use super::*;

const STATUS: &str = r#"[
 {"type":"cluster","id":"cluster","name":"lab","nodes":3,"quorate":1,"version":3},
 {"type":"node","name":"pve1","id":"node/pve1","ip":"10.0.0.1","nodeid":1,"online":1,"local":1,"level":""},
 {"type":"node","name":"pve2","id":"node/pve2","ip":"10.0.0.2","nodeid":2,"online":1,"local":0,"level":""},
 {"type":"node","name":"pve3","id":"node/pve3","ip":"10.0.0.3","nodeid":3,"online":0,"local":0,"level":""}]"#;

const GIB: u64 = 1 << 30;

fn res(mem: [u64; 3], avail: [u64; 3]) -> String {
    let mut v = Vec::new();
    for (i, n) in ["pve1", "pve2", "pve3"].iter().enumerate() {
        v.push(
            serde_json::json!({"type":"node","id":format!("node/{n}"),"node":n,"status":"online",
            "maxmem": 64 * GIB, "mem": mem[i]}),
        );
        v.push(
            serde_json::json!({"type":"storage","id":format!("storage/{n}/local-zfs"),"node":n,
            "storage":"local-zfs","shared":0,"status":"available","content":"images,rootdir",
            "maxdisk": 1000 * GIB, "disk": 1000 * GIB - avail[i]}),
        );
        let local = if i == 0 { "unknown" } else { "available" };
        v.push(
            serde_json::json!({"type":"storage","id":format!("storage/{n}/local"),"node":n,
            "storage":"local","shared":0,"status":local,"content":"vztmpl,iso,backup",
            "maxdisk": 100 * GIB, "disk": 0}),
        );
        v.push(
            serde_json::json!({"type":"storage","id":format!("storage/{n}/nfs"),"node":n,
            "storage":"nfs","shared":1,"status":"available","content":"rootdir",
            "maxdisk": 20 * GIB, "disk": 0}),
        );
    }
    v.push(
        serde_json::json!({"type":"lxc","id":"lxc/100","vmid":100,"name":"web","node":"pve2",
        "status":"running","tags":"provision"}),
    );
    serde_json::Value::Array(v).to_string()
}

fn facts(mem: [u64; 3], avail: [u64; 3], pve3_online: bool) -> ClusterFacts {
    let (name, quorate, mut members) = parse_status(STATUS).unwrap();
    members[2].online = pve3_online;
    let r = res(mem, avail);
    let (loads, storages) = parse_resources(&r).unwrap();
    ClusterFacts {
        name,
        quorate,
        members,
        loads,
        storages,
        guests: facts::parse_resources(&r).unwrap(),
    }
}

fn want(name: &str, storage: &str, mem: u64, disk: f64) -> Want {
    Want {
        name: name.into(),
        nodes: Vec::new(),
        memory_mib: mem,
        storage: storage.into(),
        disk_gib: disk,
        template_storage: String::new(),
    }
}

fn nodes(p: &[Result<place::Placement, String>]) -> Vec<String> {
    p.iter()
        .map(|r| match r {
            Ok(p) => p.node.clone(),
            Err(e) => format!("ERR {e}"),
        })
        .collect()
}

#[test]
fn status_gives_members_addresses_and_quorum() {
    let (name, quorate, m) = parse_status(STATUS).unwrap();
    assert_eq!(name.as_deref(), Some("lab"));
    assert!(quorate);
    assert_eq!(m.len(), 3);
    assert_eq!((m[1].name.as_str(), m[1].ip.as_str()), ("pve2", "10.0.0.2"));
    assert!(m[0].local && !m[1].local && !m[2].online);
    // a node outside a cluster: no cluster entry, one node
    let (name, quorate, m) =
        parse_status(r#"[{"type":"node","name":"vm","online":1,"local":1,"ip":"127.0.0.1"}]"#)
            .unwrap();
    assert!(name.is_none() && quorate && m.len() == 1);
    assert!(parse_status("{}").is_err());
}

#[test]
fn resources_give_memory_and_storages_per_node() {
    let f = facts([GIB, 2 * GIB, 0], [100 * GIB; 3], true);
    assert_eq!(f.loads.len(), 3);
    assert_eq!(f.loads[1].mem, 2 * GIB);
    let nfs: Vec<_> = f.storages.iter().filter(|s| s.storage == "nfs").collect();
    assert!(nfs.iter().all(|s| s.shared && s.content == ["rootdir"]));
    assert_eq!(f.guests.len(), 1);
    assert!(f.is_cluster());
    assert_eq!(f.local().map(|m| m.name.as_str()), Some("pve1"));
}

#[test]
fn most_free_memory_wins_and_offline_nodes_are_skipped() {
    let f = facts([8 * GIB, 2 * GIB, 0], [100 * GIB; 3], false);
    let p = place(&f, &[want("a", "local-zfs", 512, 8.0)]);
    assert_eq!(nodes(&p), ["pve2"]);
    let reason = &p[0].as_ref().unwrap().reason;
    assert!(reason.contains("pve3 offline"), "{reason}");
    assert!(reason.contains("62.0 GiB on pve2"), "{reason}");
}

#[test]
fn counted_entries_spread_deterministically() {
    let f = facts([0, 0, 0], [100 * GIB; 3], true);
    let wants: Vec<Want> = (1..=6)
        .map(|i| want(&format!("r{i}"), "local-zfs", 2048, 8.0))
        .collect();
    let p = place(&f, &wants);
    assert_eq!(nodes(&p), ["pve1", "pve2", "pve3", "pve1", "pve2", "pve3"]);
    assert_eq!(
        nodes(&place(&f, &wants)),
        nodes(&p),
        "same facts, same placement"
    );
}

#[test]
fn storage_room_counts_this_runs_placements_and_shared_storage_is_one_pool() {
    // 10 GiB free on each node's local-zfs: one 8 GiB disk fits per node, the 4th fits nowhere
    let f = facts([0, 0, 0], [10 * GIB; 3], true);
    let wants: Vec<Want> = (1..=4)
        .map(|i| want(&format!("r{i}"), "local-zfs", 64, 8.0))
        .collect();
    let got = nodes(&place(&f, &wants));
    assert_eq!(got[..3], ["pve1", "pve2", "pve3"]);
    assert!(got[3].starts_with("ERR no node can take r4"), "{got:?}");
    assert!(
        got[3].contains("storage local-zfs has 2.0 GiB free, 8.0 GiB needed"),
        "{got:?}"
    );
    // the shared 20 GiB: two 8 GiB disks fit in the cluster, not three
    let wants: Vec<Want> = (1..=3)
        .map(|i| want(&format!("s{i}"), "nfs", 64, 8.0))
        .collect();
    let got = nodes(&place(&f, &wants));
    assert_eq!(got[..2], ["pve1", "pve2"]);
    assert!(got[2].starts_with("ERR"), "{got:?}");
}

#[test]
fn a_node_list_limits_the_choice_and_unknown_storage_is_refused() {
    let f = facts([0, 0, 0], [100 * GIB; 3], true);
    let mut w = want("a", "local-zfs", 64, 1.0);
    w.nodes = vec!["pve3".into(), "pve2".into()];
    assert_eq!(nodes(&place(&f, &[w])), ["pve2"]);
    let got = nodes(&place(&f, &[want("b", "nosuch", 64, 1.0)]));
    assert!(
        got[0].contains("pve1: storage nosuch is not on this node"),
        "{got:?}"
    );
}

#[test]
fn doctor_fails_an_offline_member_the_file_uses_and_warns_for_another() {
    use crate::doctor::Level;
    let f = facts([0, 0, 0], [100 * GIB; 3], false);
    let r = checks::evaluate(&f, &["pve1".into(), "pve3".into()]);
    let level = |id: &str| r.checks.iter().find(|c| c.id == id).unwrap().level;
    assert_eq!(level("cluster:quorum"), Level::Ok);
    assert_eq!(level("cluster:node:pve1"), Level::Ok);
    assert_eq!(level("cluster:node:pve3"), Level::Fail);
    assert!(!r.ok);
    let r = checks::evaluate(&f, &["pve1".into()]);
    assert_eq!(
        r.checks
            .iter()
            .find(|c| c.id == "cluster:node:pve3")
            .unwrap()
            .level,
        Level::Warn
    );
    assert!(r.ok);
    let mut lost = f.clone();
    lost.quorate = false;
    let r = checks::evaluate(&lost, &[]);
    assert_eq!(r.checks[0].level, Level::Fail);
    assert!(
        r.checks[0].detail.contains("2 of 3 members online"),
        "{:?}",
        r.checks[0]
    );
}

#[test]
fn the_template_storage_must_be_there_and_usable() {
    let f = facts([0, 0, 0], [100 * GIB; 3], true);
    let mut w = want("a", "local-zfs", 64, 1.0);
    w.template_storage = "local".into();
    // pve1's `local` is not available: pve2 gets it although pve1 sorts first
    let p = place(&f, &[w.clone()]);
    assert_eq!(nodes(&p), ["pve2"]);
    let reason = &p[0].as_ref().unwrap().reason;
    assert!(
        reason.contains("pve1 template storage local is unknown"),
        "{reason}"
    );
    w.template_storage = "local-zfs".into();
    let got = nodes(&place(&f, &[w]));
    assert!(
        got[0].contains("template storage local-zfs cannot hold templates"),
        "{got:?}"
    );
}
