//! `provision destroy FILE`: stop and destroy the containers of a lab file.
//!
//! A container goes only when it carries the `provision` tag (or `--force` is given) AND it is
//! the entry's: same hostname, and the same VMID when the entry gives one (a name match alone
//! never suffices when the VMIDs disagree; several containers with the name and no VMID in the
//! entry are refused, never guessed). Virtual machines are never touched. Everything else is
//! listed as refused (exit 1). On a terminal the list is shown and confirmed unless `--yes`;
//! `--dry-run` shows it and changes nothing.

use super::apply::{load_lab, open_host, require_pve};
use super::{confirm, json, print_json};
use crate::apply;
use crate::batch::{self, Opener, SignalWatch, Targets};
use crate::cli::{DestroyArgs, GlobalArgs};
use crate::facts::Guest;
use crate::labfile::Entry;
use crate::profile::TOOL_TAG;
use crate::request::Options;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// How many containers are destroyed at once.
const WORKERS: usize = 4;

/// What happens (or happened) to one entry's container.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// To be destroyed.
    Destroy,
    /// Destroyed.
    Destroyed,
    /// Nothing matches the entry.
    Missing,
    /// Something matches that provision does not destroy (see the reason).
    Refused,
    /// Destroying failed.
    Failed,
    /// Not started (interrupted).
    Skipped,
}

impl Verdict {
    fn word(self, dry: bool) -> &'static str {
        match self {
            Verdict::Destroy if dry => "would destroy",
            Verdict::Destroy => "destroy",
            Verdict::Destroyed => "destroyed",
            Verdict::Missing => "missing",
            Verdict::Refused => "refused",
            Verdict::Failed => "FAILED",
            Verdict::Skipped => "skipped",
        }
    }
}

/// One entry's line.
#[derive(Serialize, Clone, Debug)]
pub struct Item {
    /// Hostname.
    pub name: String,
    /// The container's VMID (or the entry's, when nothing matches).
    pub vmid: Option<u32>,
    /// Node of the container.
    pub node: Option<String>,
    /// Verdict.
    pub action: Verdict,
    /// Why.
    pub reason: String,
    /// Its volumes and bind mounts (what `pct destroy` deletes and what stays).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<crate::plan::CtVolume>,
    /// Data volumes handed to another container before the destroy (`--move-volumes-to`),
    /// with the volume ids they got there once moved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<crate::plan::VolumeMove>,
    /// Index into the run's targets.
    #[serde(skip)]
    pub target: usize,
}

/// The document printed.
#[derive(Serialize, Debug)]
pub struct DestroyReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// One per selected entry.
    pub containers: Vec<Item>,
    /// Run-level notes.
    pub notes: Vec<String>,
}

impl DestroyReport {
    /// Text for people.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        let w = self
            .containers
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(4);
        for c in &self.containers {
            let id = c.vmid.map_or("-".to_string(), |v| v.to_string());
            let _ = writeln!(
                s,
                "{:<13} {:<w$}  VMID {id:<9} {}",
                c.action.word(self.dry_run),
                c.name,
                c.reason
            );
        }
        if self.dry_run {
            let _ = writeln!(s, "dry run: nothing was changed");
        }
        s
    }

    /// 1 when something was refused, failed or not started.
    pub fn exit_code(&self) -> u8 {
        let bad = self.containers.iter().any(|c| {
            matches!(
                c.action,
                Verdict::Refused | Verdict::Failed | Verdict::Skipped
            )
        });
        u8::from(bad && !self.dry_run)
    }
}

/// Which guest an entry means and whether it may go. Pure.
pub fn judge<'a>(
    e: &Entry,
    guests: &'a [Guest],
    force: bool,
) -> (Verdict, Option<&'a Guest>, String) {
    let by_name: Vec<&Guest> = guests
        .iter()
        .filter(|g| g.kind == "lxc" && g.name.eq_ignore_ascii_case(&e.name))
        .collect();
    let ids = |gs: &[&Guest]| {
        gs.iter()
            .map(|g| g.vmid.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let candidate = match e.vmid() {
        Some(v) => match guests.iter().find(|g| g.vmid == v) {
            Some(g) if g.kind != "lxc" => {
                return (
                    Verdict::Refused,
                    Some(g),
                    format!(
                        "VMID {v} is a virtual machine ({}), never destroyed here",
                        g.name
                    ),
                );
            }
            Some(g) if !g.name.eq_ignore_ascii_case(&e.name) => {
                return (
                    Verdict::Refused,
                    Some(g),
                    format!(
                        "VMID {v} is named {:?}, not {:?}: not this entry's container",
                        g.name, e.name
                    ),
                );
            }
            Some(g) => g,
            None if by_name.is_empty() => {
                return (Verdict::Missing, None, "nothing to destroy".into());
            }
            None => {
                return (
                    Verdict::Refused,
                    by_name.first().copied(),
                    format!(
                        "the name is VMID {}, but the lab file says VMID {v}: a name match alone is not enough",
                        ids(&by_name)
                    ),
                );
            }
        },
        None => match by_name.as_slice() {
            [] => return (Verdict::Missing, None, "nothing to destroy".into()),
            [g] => g,
            many => {
                return (
                    Verdict::Refused,
                    None,
                    format!(
                        "{} containers have this name (VMIDs {}); give the entry a `vmid` to say which one",
                        many.len(),
                        ids(many)
                    ),
                );
            }
        },
    };
    if let Some(want) = &e.node
        && candidate.node != *want
    {
        return (
            Verdict::Refused,
            Some(candidate),
            format!(
                "it is on node {}, but the lab file puts it on {want}",
                candidate.node
            ),
        );
    }
    let tagged = candidate.tags.iter().any(|t| t == TOOL_TAG);
    if !tagged && !force {
        return (
            Verdict::Refused,
            Some(candidate),
            format!(
                "not tagged `{TOOL_TAG}` (provision did not create it); --force destroys it anyway"
            ),
        );
    }
    let how = if tagged { "" } else { ", untagged (--force)" };
    (
        Verdict::Destroy,
        Some(candidate),
        format!("{} on {}{how}", candidate.status, candidate.node),
    )
}

/// Runs `provision destroy`.
pub fn run(a: &DestroyArgs, g: &GlobalArgs) -> Result<u8> {
    let cancel = Arc::new(AtomicBool::new(false));
    let _watch = SignalWatch::start(cancel.clone())?;
    run_with(a, g, &|h| open_host(g, h), &cancel)
}

/// `destroy` with the node transports opened by `open`.
pub fn run_with(
    a: &DestroyArgs,
    g: &GlobalArgs,
    open: &Opener<'_>,
    cancel: &AtomicBool,
) -> Result<u8> {
    let lab = load_lab(&a.file)?;
    let entries = lab.select(&a.file.only)?;
    let member = super::member_opener(g);
    let routed = crate::cluster::route::route(&entries, open, &member, &Options::default());
    let entries = routed.refs();
    let targets = Targets::open(&entries, &|h| routed.open(h), &|t| {
        apply::Ctx::new(t, Options::default())
    });
    require_pve(&targets)?;
    let mut items: Vec<Item> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| first_judgement(&targets, i, e, a.force))
        .collect();
    for it in items.iter_mut().filter(|it| it.action == Verdict::Destroy) {
        judge_volumes(&targets, it, a.delete_volumes, a.move_volumes_to);
    }
    let doomed = items
        .iter()
        .filter(|c| c.action == Verdict::Destroy)
        .count();
    let mut report = DestroyReport {
        dry_run: g.dry_run,
        containers: Vec::new(),
        notes: super::apply::node_notes(&targets),
    };
    if g.dry_run {
        report.containers = items;
        return print(g, &report);
    }
    if doomed > 0 && !g.yes && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let preview = DestroyReport {
            dry_run: true,
            containers: items.clone(),
            notes: Vec::new(),
        };
        crate::err!(
            "{}",
            preview.text().replace("dry run: nothing was changed\n", "")
        );
        if !confirm(g, &format!("Destroy {doomed} container(s)?"))? {
            crate::errln!("nothing was changed");
            return Ok(0);
        }
    }
    let results = batch::pool(&items, WORKERS, cancel, |i, it| {
        if it.action != Verdict::Destroy {
            return None;
        }
        let (Ok(t), Some(v)) = (&targets.list[it.target], it.vmid) else {
            return Some(Err((Verdict::Failed, "no node".to_string())));
        };
        let keep = Keep {
            delete_volumes: a.delete_volumes,
            move_to: a.move_volumes_to,
        };
        let destroyed = destroy_rechecked(t, entries[i], v, a.force, keep);
        if destroyed.is_ok() {
            forget_host_key(&entries[i].request);
        }
        Some(destroyed)
    });
    for (it, r) in items.iter_mut().zip(results) {
        match r {
            None if it.action == Verdict::Destroy => {
                it.action = Verdict::Skipped;
                it.reason = "not started (interrupted): still there".into();
            }
            None | Some(None) => {}
            Some(Some(Ok(moved))) if !moved.is_empty() => {
                let kept: Vec<String> = moved.iter().map(crate::plan::VolumeMove::show).collect();
                it.action = Verdict::Destroyed;
                it.reason = format!(
                    "stopped and destroyed; kept, handed over first: {}",
                    kept.join("; ")
                );
                it.moved = moved;
            }
            Some(Some(Ok(_))) => {
                it.action = Verdict::Destroyed;
                it.reason = format!("stopped and destroyed ({})", it.reason);
            }
            Some(Some(Err((verdict, m)))) => {
                it.action = verdict;
                it.reason = m;
            }
        }
    }
    report.containers = items;
    print(g, &report)
}

/// What destroy would do with entry `e` (the `i`th) from the node's guest list, before its
/// volumes are looked at.
fn first_judgement(targets: &Targets, i: usize, e: &Entry, force: bool) -> Item {
    let target = targets.of[i];
    match targets.for_entry(i) {
        Err(m) => Item {
            name: e.name.clone(),
            vmid: e.vmid(),
            node: e.node.clone(),
            action: Verdict::Failed,
            reason: m.to_string(),
            volumes: Vec::new(),
            moved: Vec::new(),
            target,
        },
        Ok(t) => {
            let (action, guest, reason) = judge(e, &t.facts.guests, force);
            Item {
                name: e.name.clone(),
                vmid: guest.map(|g| g.vmid).or(e.vmid()),
                node: guest.map(|g| g.node.clone()).or(e.node.clone()),
                action,
                reason,
                volumes: Vec::new(),
                moved: Vec::new(),
                target,
            }
        }
    }
}

/// Destroys `vmid` after judging the entry again against what the node says now, under the
/// node's VMID lock: the first judgement may be hours old (a question waited on a terminal),
/// and PVE gives a freed ID to the next guest. The guest list must still give this entry this
/// VMID, and the container's own configuration must still carry the entry's hostname and the
/// `provision` tag (unless --force); otherwise that one container is refused, with the reason.
fn destroy_rechecked(
    t: &batch::Target,
    e: &Entry,
    vmid: u32,
    force: bool,
    keep: Keep,
) -> Result<Vec<crate::plan::VolumeMove>, (Verdict, String)> {
    let failed = |e: anyhow::Error| (Verdict::Failed, format!("{e:#}"));
    let refused = |m: String| {
        (
            Verdict::Refused,
            format!("changed since it was judged: {m}"),
        )
    };
    apply::with_vmid_lock(&t.ctx, || {
        let guests = crate::facts::gather_guests(t.node()).map_err(failed)?;
        let (verdict, guest, reason) = judge(e, &guests, force);
        let g = match guest {
            Some(g) if verdict == Verdict::Destroy && g.vmid == vmid => g,
            Some(g) if verdict == Verdict::Destroy => {
                return Err(refused(format!(
                    "the entry now means VMID {}, not {vmid}",
                    g.vmid
                )));
            }
            _ => return Err(refused(reason)),
        };
        let cfg = crate::facts::gather_ct(t.node(), &g.node, vmid).map_err(failed)?;
        let name = cfg.effective("hostname").unwrap_or("");
        if !name.eq_ignore_ascii_case(&e.name) {
            return Err(refused(format!(
                "VMID {vmid}'s configuration names {:?}, not {:?}",
                name, e.name
            )));
        }
        let tags = crate::facts::split_tags(cfg.effective("tags").unwrap_or(""));
        if !force && !tags.iter().any(|x| x == TOOL_TAG) {
            return Err(refused(format!(
                "VMID {vmid}'s configuration is not tagged `{TOOL_TAG}`"
            )));
        }
        // The volumes may have changed since they were listed: judged again on this config.
        let (moves, _) = volume_verdict(t.node(), &g.node, vmid, &cfg, keep)
            .map_err(|(v, m)| (v, m.replace("VMID", &vmid.to_string())))?;
        let moved = move_volumes(t.node(), &g.node, vmid, moves).map_err(failed)?;
        apply::destroy(t.node(), vmid).map_err(|e| {
            let kept: Vec<String> = moved.iter().map(crate::plan::VolumeMove::show).collect();
            (
                Verdict::Failed,
                format!("{e:#} (already handed over: {})", kept.join("; ")),
            )
        })?;
        Ok(moved)
    })
    .map_err(failed)?
}

/// What `destroy` may do with a container's data volumes.
#[derive(Clone, Copy)]
struct Keep {
    delete_volumes: bool,
    move_to: Option<u32>,
}

/// Which volumes go to `--move-volumes-to` and what the destroy then deletes (text), or why
/// the container is refused (a volume would be deleted without --delete-volumes).
fn volume_verdict(
    node: &dyn crate::transport::Transport,
    node_name: &str,
    vmid: u32,
    cfg: &crate::facts::CtConfig,
    keep: Keep,
) -> Result<(Vec<crate::plan::VolumeMove>, String), (Verdict, String)> {
    let (moves, stay) = match keep.move_to {
        None => (Vec::new(), crate::plan::ct_volumes(cfg)),
        Some(to) => {
            let target = crate::facts::gather_ct(node, node_name, to).map_err(|e| {
                (
                    Verdict::Failed,
                    format!("cannot read CT {to}'s configuration (--move-volumes-to; it must be on the same node): {e:#}"),
                )
            })?;
            crate::plan::plan_moves(cfg, vmid, to, &target).map_err(|m| (Verdict::Refused, m))?
        }
    };
    let what = crate::plan::destroy_volumes_verdict(&stay, keep.delete_volumes)
        .map_err(|m| (Verdict::Refused, m))?;
    if moves.is_empty() {
        return Ok((moves, what));
    }
    let shown: Vec<String> = moves.iter().map(crate::plan::VolumeMove::show).collect();
    let text = format!("keeps {}; then {what}", shown.join(", "));
    Ok((moves, text))
}

/// Hands each volume to its new container with `pct move-volume` (the container stopped
/// first: PVE refuses to move a mounted volume), and reads the new volume id back from both
/// configurations: the exit code alone is not trusted.
fn move_volumes(
    node: &dyn crate::transport::Transport,
    node_name: &str,
    vmid: u32,
    mut moves: Vec<crate::plan::VolumeMove>,
) -> Result<Vec<crate::plan::VolumeMove>> {
    use crate::cmd::Cmd;
    if moves.is_empty() {
        return Ok(moves);
    }
    let id = vmid.to_string();
    let st = node.run(&Cmd::new("pct").args(["status", &id]), None)?;
    if st.stdout_text().contains("running") {
        crate::transport::run_ok(node, &Cmd::new("pct").args(["stop", &id]), None)?;
    }
    for i in 0..moves.len() {
        let m = &moves[i];
        let done: Vec<String> = moves[..i]
            .iter()
            .map(crate::plan::VolumeMove::show)
            .collect();
        let so_far = if done.is_empty() {
            String::new()
        } else {
            format!(" (already handed over: {})", done.join("; "))
        };
        crate::transport::run_ok(node, &Cmd::new("pct").args(m.argv(vmid)), None)
            .map_err(|e| anyhow::anyhow!("{e:#}{so_far}"))?;
        let src = crate::facts::gather_ct(node, node_name, vmid)?;
        let dst = crate::facts::gather_ct(node, node_name, m.target_vmid)?;
        let now = dst.current.get(&m.target_key).map(|v| {
            crate::plan::map_of(v)
                .get("volume")
                .cloned()
                .unwrap_or_default()
        });
        let left = src.current.contains_key(&m.key) || src.pending.contains_key(&m.key);
        match now {
            Some(v) if !left && !v.is_empty() => moves[i].kept_as = Some(v),
            _ => anyhow::bail!(
                "pct move-volume {vmid} {} --target-vmid {} reported success, but CT {} has no {} and CT {vmid} {} it: nothing else was changed{so_far}",
                m.key,
                m.target_vmid,
                m.target_vmid,
                m.target_key,
                if left { "still has" } else { "no longer has" }
            ),
        }
    }
    Ok(moves)
}

/// Lists a container's volumes (with sizes) and bind mounts in its line, and refuses it when
/// it holds volumes besides its root disk without `--delete-volumes`.
fn judge_volumes(targets: &Targets, it: &mut Item, delete_volumes: bool, move_to: Option<u32>) {
    let (Ok(t), Some(vmid), Some(node)) = (&targets.list[it.target], it.vmid, it.node.clone())
    else {
        return;
    };
    match crate::facts::gather_ct(t.node(), &node, vmid) {
        Err(e) => {
            it.action = Verdict::Failed;
            it.reason = format!("cannot read its configuration to list its volumes: {e:#}");
        }
        Ok(cfg) => {
            it.volumes = crate::plan::ct_volumes(&cfg);
            let moves_some = it.volumes.iter().any(|v| !v.bind && v.key != "rootfs");
            if move_to.is_some() && moves_some && !t.facts.caps.move_volume_to_ct {
                it.action = Verdict::Refused;
                it.reason = format!(
                    "--move-volumes-to needs `pct move-volume --target-vmid` (pve-container 4.1-2, PVE 7.1); the node is {}: nothing was changed",
                    t.facts.caps.describe()
                );
                return;
            }
            let keep = Keep {
                delete_volumes,
                move_to,
            };
            match volume_verdict(t.node(), &node, vmid, &cfg, keep) {
                Ok((moves, what)) => {
                    it.reason = format!("{}; {what}", it.reason);
                    it.moved = moves;
                }
                Err((verdict, why)) => {
                    it.action = verdict;
                    it.reason = why.replace("VMID", &vmid.to_string());
                }
            }
        }
    }
}

/// A destroyed container reached over SSH at a fixed address: the host key recorded for that
/// address belonged to it and must not refuse the next container there.
fn forget_host_key(req: &crate::request::Request) {
    let p = &req.profile;
    if p.access.method != crate::profile::AccessMethod::Ssh {
        return;
    }
    let static_ip = Some(p.network.ip.as_str()).filter(|ip| ip.contains('/'));
    let Some(address) = crate::transport::ssh_ct::fixed_address(&p.access, static_ip) else {
        return;
    };
    let file = crate::transport::ssh_ct::containers_known_hosts();
    if let Err(e) = crate::transport::ssh_ct::forget_container_key(&file, &address, p.access.port) {
        tracing::warn!("{e:#}");
    }
}

fn print(g: &GlobalArgs, r: &DestroyReport) -> Result<u8> {
    if json(g) {
        print_json(r)?;
    } else {
        crate::out!("{}", r.text());
    }
    Ok(r.exit_code())
}
