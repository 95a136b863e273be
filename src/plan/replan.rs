//! Re-planning during a run, where the node's answer decides the rest of the plan: after
//! `pveam update` (the index names the template) and after `pct set` on a running container
//! (what PVE kept pending decides the reboot). Pure like the rest of the planner: the applier
//! reads the facts and hands them here.

use super::*;

/// The steps after `pveam update`, from the refreshed template facts: the download planned
/// from a guess before the update is dropped, `create` names the template the index resolves
/// to, and the downloads that template needs come first.
pub fn after_index_update(
    profile: &Profile,
    tf: &TemplateFacts,
    caps: &Caps,
    rest: Vec<Step>,
) -> Result<Vec<Step>> {
    if tf.available.is_empty() {
        bail!("the template index is still empty after `pveam update`");
    }
    let mut notes = Vec::new();
    let (volid, mut steps) = resolve_template(profile, tf, caps, &mut notes)?;
    for mut s in rest {
        match &mut s {
            Step::DownloadTemplate { .. } => continue,
            Step::Create { template, .. } => template.clone_from(&volid),
            _ => {}
        }
        steps.push(s);
    }
    Ok(steps)
}

/// The keys PVE keeps pending in a container's configuration (changed or deleted), sorted.
pub fn pending_keys(cfg: &CtConfig) -> Vec<String> {
    let mut keys: Vec<String> = cfg
        .pending
        .keys()
        .chain(cfg.pending_delete.iter())
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The rest of a plan once PVE said what it keeps pending after `pct set`.
#[derive(Debug, PartialEq)]
pub struct AfterPending {
    /// The steps still to run.
    pub steps: Vec<Step>,
    /// The reboot that is not needed, and why.
    pub already: Option<Already>,
    /// Keys left pending (no `--restart`).
    pub pending: Vec<String>,
    /// What the report says about them.
    pub note: Option<String>,
}

/// With `restart`, a reboot applies exactly the pending `keys` (none: no reboot); without it
/// the keys are reported as pending.
pub fn after_pending(mut rest: Vec<Step>, keys: Vec<String>, restart: bool) -> AfterPending {
    let mut out = AfterPending {
        steps: Vec::new(),
        already: None,
        pending: Vec::new(),
        note: None,
    };
    if !restart {
        if !keys.is_empty() {
            out.note = Some(format!(
                "pending until the container restarts: {} (run again with --restart to restart it now)",
                keys.join(", ")
            ));
        }
        out.pending = keys;
        out.steps = rest;
        return out;
    }
    if keys.is_empty() {
        rest.retain(|s| !matches!(s, Step::Reboot { .. }));
        out.already = Some(Already {
            step: "reboot".into(),
            why: "PVE applied every change at once; nothing is pending".into(),
        });
    } else {
        let mut planned = false;
        for s in rest.iter_mut() {
            if let Step::Reboot { keys: k } = s {
                k.clone_from(&keys);
                planned = true;
            }
        }
        if !planned {
            rest.push(Step::Reboot { keys });
        }
    }
    out.steps = rest;
    out
}
