//! Images on a node (`image = "auto"`): built once per node into the template storage, the PVE
//! way (a temporary container from the base template brought up by the very steps of
//! [`apply::converge`], cleaned for templating, archived with `vzdump --mode stop --compress
//! zstd`, destroyed again, also when anything fails), then used as the template of every
//! container of the profile. What goes into an image and its name: [`crate::plan::image`].

use crate::apply::{self, Ctx};
use crate::cmd::Cmd;
use crate::facts::{self, NodeFacts};
use crate::plan::{self, ImageSpec, Step};
use crate::profile::{DockerInstall, ImageMode};
use crate::progress::Line;
use crate::request::Request;
use crate::transport::{Transport, run_ok};
use anyhow::{Context, Result, anyhow, bail};
use std::time::{Duration, Instant};

pub mod manage;

/// How long a vzdump of a build container may take.
const VZDUMP_LIMIT: Duration = Duration::from_secs(1800);

/// A request whose container is to be made from an image.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The request, its template replaced by the image.
    pub req: Request,
    /// The image.
    pub spec: ImageSpec,
    /// The image is in the template storage now.
    pub present: bool,
}

/// The profile asks for images and they make sense for it (Docker installed by the tool).
pub fn wanted(req: &Request) -> bool {
    let p = &req.profile;
    p.image == ImageMode::Auto
        && matches!(
            p.docker.install,
            DockerInstall::Distro | DockerInstall::DockerCe
        )
}

/// The image a new container of `req` would be made from on this node, and whether it is there.
/// None: no image for this request (not asked for, or the container exists already: an image
/// only matters at create time).
pub fn resolve(ctx: &Ctx, req: &Request, nf: &NodeFacts) -> Result<Option<Resolved>> {
    if !wanted(req) || !nf.pve || plan::find_existing(req, &nf.guests, &ctx.opts)?.is_some() {
        return Ok(None);
    }
    let Some(spec) = spec_of(ctx, req, nf)? else {
        return Ok(None);
    };
    let present = ctx
        .templates_of(&req.profile.template_storage)?
        .present
        .contains(&spec.volid);
    Ok(Some(Resolved {
        req: plan::from_image(req, &spec),
        spec,
        present,
    }))
}

/// The image of `req`'s profile on this node (its base template and storage driver as the node
/// decides them for a new container), whatever the profile's `image` says.
pub fn spec_of(ctx: &Ctx, req: &Request, nf: &NodeFacts) -> Result<Option<ImageSpec>> {
    let mut fresh = req.clone();
    fresh.vmid = None;
    fresh.profile.vmid = None;
    fresh.hostname = "provision-image-query".into();
    let req = &fresh;
    let (prep, _) = apply::prepare(ctx, req, nf, false)?;
    let Some(driver) = prep.node_plan.driver else {
        return Ok(None);
    };
    let Some(base) = prep.node_plan.steps.iter().find_map(|s| match s {
        Step::Create { template, .. } => Some(template.clone()),
        _ => None,
    }) else {
        return Ok(None);
    };
    Ok(Some(plan::image_spec(
        &req.profile,
        &base,
        driver,
        prep.src.fuse_sha256.as_deref(),
    )))
}

/// The request to plan for a dry run: from the image when the profile uses one (the plan then
/// shows "build image X (once), then create from it" when it is missing).
pub fn dry_request(ctx: &Ctx, req: &Request, nf: &NodeFacts) -> Result<Request> {
    Ok(resolve(ctx, req, nf)?.map_or_else(|| req.clone(), |r| r.req))
}

/// Makes sure the image of `req` is on the node (building it under the node lock when missing:
/// of two runs or workers that need the same image, one builds and the other waits and uses
/// it), and returns the request to converge with a note for the report.
pub fn ensure(
    ctx: &Ctx,
    req: &Request,
    nf: &NodeFacts,
    line: &Line,
) -> Result<(Request, Option<String>)> {
    let Some(r) = resolve(ctx, req, nf)? else {
        return Ok((req.clone(), None));
    };
    if r.present {
        return Ok((r.req, None));
    }
    let (built, secs) = build_once(ctx, nf, req, &r.spec, line)?;
    let note = match built {
        true => format!(
            "built image {} in {secs:.1} s (once for this node)",
            r.spec.name
        ),
        false => format!("image {} was built meanwhile by another run", r.spec.name),
    };
    Ok((r.req, Some(note)))
}

/// Builds `spec` unless it is there once the node lock for it is held (another run or worker
/// may have built it meanwhile). Returns whether this call built it, and how long it took.
pub fn build_once(
    ctx: &Ctx,
    nf: &NodeFacts,
    req: &Request,
    spec: &ImageSpec,
    line: &Line,
) -> Result<(bool, f64)> {
    let storage = &req.profile.template_storage;
    line.step(&format!("wait for image {} (node lock)", spec.name));
    let _lock = ctx
        .node
        .lock(&format!("image-{}", &spec.hash[..12]), ctx.lock_wait)?;
    let tf = facts::gather_templates(ctx.node.as_ref(), storage)?;
    let t0 = Instant::now();
    let built = !tf.present.contains(&spec.volid);
    if built {
        line.step(&format!("build image {}", spec.name));
        build(ctx, nf, req, spec)?;
    }
    mark_present(ctx, storage, &spec.volid);
    Ok((built, t0.elapsed().as_secs_f64()))
}

/// This run's cached template list learns of an image made (or found) meanwhile.
fn mark_present(ctx: &Ctx, storage: &str, volid: &str) {
    let mut seen = ctx
        .template_facts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(tf) = seen.get_mut(storage)
        && !tf.present.iter().any(|v| v == volid)
    {
        tf.present.push(volid.to_string());
    }
}

/// Builds `spec` from `req`'s profile: a temporary container through the normal steps, cleaned,
/// archived into the template storage; the temporary container and the dump directory are
/// removed whatever happens (a failure, an interrupt), and no partial template is ever visible
/// under the image's name (the archive is renamed into place only when vzdump has finished).
pub fn build(ctx: &Ctx, nf: &NodeFacts, req: &Request, spec: &ImageSpec) -> Result<()> {
    let breq = plan::build_request(req, spec);
    let report = apply::converge(
        ctx,
        &breq,
        nf,
        None,
        &Vec::new(),
        &Line::silent(&breq.hostname),
    );
    let dumpdir = dump_dir(ctx.node.as_ref(), spec);
    let res = match (&report.failure, report.vmid) {
        (Some(f), _) => Err(anyhow!(
            "building image {}: the build container {} failed at step {:?}: {}{}",
            spec.name,
            breq.hostname,
            f.step,
            f.message,
            if f.tail.is_empty() {
                String::new()
            } else {
                format!("\n{}", f.tail.join("\n"))
            }
        )),
        (None, None) => Err(anyhow!("building image {}: no build container", spec.name)),
        (None, Some(vmid)) => match &dumpdir {
            Ok((dir, path)) => archive(ctx, vmid, spec, dir, path),
            Err(e) => Err(anyhow!("{e:#}")),
        },
    };
    let cleanup = cleanup(ctx.node.as_ref(), report.vmid, dumpdir.ok().map(|d| d.0));
    match (res, cleanup) {
        (Err(e), Err(c)) => Err(e.context(format!("and cleaning up failed too: {c:#}"))),
        (Err(e), Ok(())) => Err(e),
        (Ok(()), Err(c)) => Err(c),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// Where the image file goes (`pvesm path`) and the private directory vzdump writes into,
/// beside it on the same file system (hidden: never taken for a template).
fn dump_dir(node: &dyn Transport, spec: &ImageSpec) -> Result<(String, String)> {
    let out = run_ok(node, &Cmd::new("pvesm").args(["path", &spec.volid]), None)?;
    let path = out.stdout_text().trim().to_string();
    let suffix = format!("/{}", spec.name);
    let Some(dir) = path.strip_suffix(&suffix) else {
        bail!(
            "`pvesm path {}` said {path:?}, not a path ending in {suffix}",
            spec.volid
        );
    };
    if !dir.starts_with('/') || dir.contains("/..") || path.lines().count() != 1 {
        bail!(
            "`pvesm path {}` said {path:?}: not a plain absolute path",
            spec.volid
        );
    }
    Ok((format!("{dir}/.{}.build", &spec.hash[..12]), path))
}

/// Cleans the stopped-to-be build container, archives it with vzdump into `dumpdir`, and moves
/// the archive to `path` (the image's file in the template storage).
fn archive(ctx: &Ctx, vmid: u32, spec: &ImageSpec, dumpdir: &str, path: &str) -> Result<()> {
    let node = ctx.node.as_ref();
    if ctx.cancel.load(std::sync::atomic::Ordering::SeqCst) {
        bail!("interrupted: image {} not built", spec.name);
    }
    let ct = (ctx.container)(vmid);
    run_ok(ct.as_ref(), &plan::clean_cmd(&spec.name), None)
        .context("cleaning the build container for templating")?;
    let sh = |script: &str, args: &[&str]| {
        Cmd::new("sh")
            .args(["-c", script, "provision"])
            .args(args.iter().map(ToString::to_string))
    };
    run_ok(
        node,
        &sh("rm -rf \"$1\" && mkdir -m 0700 \"$1\"", &[dumpdir]),
        None,
    )?;
    let id = vmid.to_string();
    let out = run_ok(
        node,
        &Cmd::new("vzdump")
            .args([
                &id,
                "--mode",
                "stop",
                "--compress",
                "zstd",
                "--dumpdir",
                dumpdir,
            ])
            .with_timeout(VZDUMP_LIMIT),
        None,
    )
    .context("archiving the build container with vzdump")?;
    // Trust no exit 0: the archive vzdump names must be in our directory and exist.
    let log = format!("{}\n{}", out.stdout_text(), out.stderr_text());
    let archive = log
        .lines()
        .find_map(|l| l.split_once("creating vzdump archive '"))
        .and_then(|(_, rest)| rest.strip_suffix('\''))
        .filter(|a| {
            a.strip_prefix(dumpdir)
                .and_then(|r| r.strip_prefix('/'))
                .is_some_and(|n| !n.contains('/') && n.ends_with(".tar.zst"))
        })
        .ok_or_else(|| {
            anyhow!(
                "vzdump did not name an archive in {dumpdir}: {}",
                out.tail(10)
            )
        })?;
    if !log.contains("Backup job finished successfully") {
        bail!("vzdump did not report success: {}", out.tail(10));
    }
    if ctx.cancel.load(std::sync::atomic::Ordering::SeqCst) {
        bail!("interrupted: image {} not built", spec.name);
    }
    run_ok(
        node,
        &sh("test -s \"$1\" && mv -f \"$1\" \"$2\"", &[archive, path]),
        None,
    )?;
    let tf = facts::gather_templates(node, &ctx_storage(spec))?;
    if !tf.present.contains(&spec.volid) {
        bail!(
            "{} is not listed by `pveam list` after the build",
            spec.volid
        );
    }
    Ok(())
}

/// The template storage of an image (the part of its volume id before `:`).
fn ctx_storage(spec: &ImageSpec) -> String {
    spec.volid.split(':').next().unwrap_or("local").to_string()
}

/// Destroys the build container (when it exists) and removes the dump directory.
fn cleanup(node: &dyn Transport, vmid: Option<u32>, dumpdir: Option<String>) -> Result<()> {
    let mut errs = Vec::new();
    if let Some(v) = vmid {
        let st = node.run(&Cmd::new("pct").args(["status", &v.to_string()]), None)?;
        if st.success()
            && let Err(e) = apply::destroy(node, v)
        {
            errs.push(format!("destroying build container {v}: {e:#}"));
        }
    }
    if let Some(d) = dumpdir {
        let cmd = Cmd::new("rm").args(["-rf", &d]);
        if let Err(e) = run_ok(node, &cmd, None) {
            errs.push(format!("removing {d}: {e:#}"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(errs.join("; ")))
    }
}
