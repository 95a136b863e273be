//! `gpu = "intel" | "amd"`: the render node's `devN`, added once the container runs, because
//! its group must be the container's own `render` group (read inside, not guessed).

use super::Ctx;
use crate::facts::{self, InsideFacts, NodeFacts};
use crate::plan::{self, Step};
use crate::report::ContainerReport;
use crate::request::Request;
use anyhow::Result;

/// The `pct set` that passes the render node (none when it is right); what stays pending goes
/// into the report.
pub(super) fn gpu_steps(
    ctx: &Ctx,
    req: &Request,
    nf: &NodeFacts,
    node_name: &str,
    vmid: u32,
    inside: &InsideFacts,
    report: &mut ContainerReport,
) -> Result<Vec<Step>> {
    if req.profile.gpu.is_none() {
        return Ok(Vec::new());
    }
    let cfg = facts::gather_ct(ctx.node.as_ref(), node_name, vmid)?;
    let Some((key, value, why, pending)) =
        plan::plan_gpu(&req.profile, &nf.caps, &cfg, inside.render_gid)?
    else {
        report.already.push(plan::Already {
            step: "gpu".into(),
            why: format!(
                "{} is passed with the container's render group",
                crate::mounts::devices::GPU_RENDER_NODE
            ),
        });
        return Ok(Vec::new());
    };
    if pending {
        report.notes.push(format!(
            "{key} stays pending until the container restarts (pve-container {} hot-adds devices from 6.0.4; a changed device always waits): restart it, or run again with --restart",
            nf.caps.container
        ));
        report.pending.push(key.clone());
    }
    Ok(vec![Step::Set {
        set: vec![(key, value)],
        why: vec![why],
    }])
}
