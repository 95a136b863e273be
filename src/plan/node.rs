//! The node part of the plan: which existing guest a request means (and what must never be
//! touched), then template, create, set, resize, start and reboot.

use super::driver::rootfs_storage;
use super::pve_config::differs;
use super::*;

/// Which existing guest, if any, the request means. Errors on ambiguity and on anything that
/// must not be touched.
pub fn find_existing<'a>(
    req: &Request,
    guests: &'a [Guest],
    opts: &Options,
) -> Result<Option<&'a Guest>> {
    let by_name: Vec<&Guest> = guests
        .iter()
        .filter(|g| g.kind == "lxc" && g.name.eq_ignore_ascii_case(&req.hostname))
        .collect();
    let tagged = |g: &Guest| g.tags.iter().any(|t| t == TOOL_TAG);
    if let Some(v) = req.vmid {
        if let Some(g) = guests.iter().find(|g| g.vmid == v) {
            if g.kind != "lxc" {
                bail!(
                    "VMID {v} is a virtual machine ({}), not a container",
                    g.name
                );
            }
            if !g.name.eq_ignore_ascii_case(&req.hostname) {
                bail!(
                    "VMID {v} exists with hostname {:?}, not {:?}; refusing to touch it (pick another --vmid or hostname)",
                    g.name,
                    req.hostname
                );
            }
            if !tagged(g) && !opts.adopt {
                bail!(
                    "container {v} ({}) was not created by provision (no `{TOOL_TAG}` tag); refusing to touch it. Use --adopt to take it over",
                    g.name
                );
            }
            return Ok(Some(g));
        }
        if let Some(g) = by_name.first() {
            bail!(
                "hostname {:?} is already container {} but --vmid {v} was asked; the tool never guesses which is meant",
                req.hostname,
                g.vmid
            );
        }
        return Ok(None);
    }
    match by_name.as_slice() {
        [] => Ok(None),
        [g] => {
            if !tagged(g) && !opts.adopt {
                bail!(
                    "a container named {:?} exists (VMID {}) that provision did not create (no `{TOOL_TAG}` tag); refusing to touch it. Use --adopt to take it over, or choose another name",
                    g.name,
                    g.vmid
                );
            }
            Ok(Some(g))
        }
        many => {
            let ids: Vec<String> = many.iter().map(|g| g.vmid.to_string()).collect();
            bail!(
                "{} containers are named {:?} (VMIDs {}); give --vmid to say which one",
                many.len(),
                req.hostname,
                ids.join(", ")
            )
        }
    }
}

/// What the node plan is made from.
#[derive(Clone, Copy)]
pub struct NodeInput<'a> {
    /// The request.
    pub req: &'a Request,
    /// The node's facts.
    pub facts: &'a NodeFacts,
    /// The guest the request means, when it exists.
    pub existing: Option<&'a Guest>,
    /// Its configuration.
    pub ct: Option<&'a CtConfig>,
    /// The template storage's facts (for a new container).
    pub templates: Option<&'a TemplateFacts>,
    /// The node's next free VMID, for display (the real choice happens under the lock at
    /// create time).
    pub proposed_vmid: u32,
    /// Plan switches.
    pub opts: &'a Options,
}

/// The node part of the plan.
pub fn plan_node(i: &NodeInput<'_>) -> Result<NodePlan> {
    let NodeInput {
        req,
        facts: nf,
        existing,
        ct,
        templates: tf,
        proposed_vmid,
        opts,
    } = *i;
    let mut plan = NodePlan {
        hostname: req.hostname.clone(),
        ..NodePlan::default()
    };
    let pinned = for_this_node(&req.profile, nf, ct, &mut plan)?;
    let p = pinned.as_ref().unwrap_or(&req.profile);
    if !p.sources.is_empty() {
        plan.notes.push(format!("profile: {}", p.sources));
    }
    plan.notes.extend(p.warnings.iter().cloned());
    // An existing container's root disk decides the driver, wherever the profile now points.
    choose_driver(p, nf, ct, &mut plan)?;
    check_rootfs_storage(p, nf, existing)?;
    let mut mounts = plan_mounts(p, nf, existing.and(ct))?;
    plan_devices(p, nf, existing.and(ct), &mut mounts)?;
    plan.notes.append(&mut mounts.notes);
    plan.already.append(&mut mounts.already);
    plan.steps.append(&mut mounts.host_dirs);
    let Some(g) = existing else {
        plan_create(req, p, tf, &nf.caps, proposed_vmid, &mut plan)?;
        if let Some(Step::Create { options, .. }) = plan
            .steps
            .iter_mut()
            .rev()
            .find(|s| matches!(s, Step::Create { .. }))
        {
            let at = options
                .iter()
                .position(|(k, _)| k == "rootfs")
                .map_or(0, |i| i + 1);
            options.splice(at..at, mounts.set);
        }
        if !mounts.raw.is_empty() {
            // Before the first start, which hands them to LXC.
            let at = plan
                .steps
                .iter()
                .position(|s| matches!(s, Step::Start))
                .unwrap_or(plan.steps.len());
            plan.steps.insert(
                at,
                Step::RawLxc {
                    hostname: req.hostname.clone(),
                    lines: mounts.raw,
                },
            );
        }
        return Ok(plan);
    };
    plan.exists = true;
    plan.vmid = g.vmid;
    plan.node = g.node.clone();
    plan.running = g.status == "running";
    let cfg = ct.cloned().unwrap_or_default();
    // PVE writes `unprivileged: 1` only for unprivileged containers: a config read without the
    // key is a privileged container.
    if !cfg.current.is_empty() {
        let have = cfg.effective("unprivileged") == Some("1");
        if have != p.unprivileged {
            bail!(
                "container {} is {} but the profile wants it {}; PVE cannot change this (unprivileged is read-only): destroy and re-create it",
                g.vmid,
                if have { "unprivileged" } else { "privileged" },
                if p.unprivileged {
                    "unprivileged"
                } else {
                    "privileged"
                }
            );
        }
    }
    let (mut set, mut why) = config_changes(p, g, &cfg, &mut plan.already);
    set.append(&mut mounts.set);
    why.append(&mut mounts.why);
    let mut will_pend = forecast_pending(&cfg, &set, plan.running, &mounts.hot);
    if plan.running {
        // PVE hands raw lxc lines to LXC at start only.
        will_pend.extend(mounts.raw.iter().map(|(k, _)| k.clone()));
        will_pend.sort();
        will_pend.dedup();
    }
    if plan.running && !mounts.hot.is_empty() {
        plan.notes.push(format!(
            "{} added to the running container at once (PVE hot-plugs new mount points, and new devices from pve-container 6.0.4)",
            mounts.hot.join(", ")
        ));
    }
    if plan.running && set.iter().any(|(k, _)| k.starts_with("net")) {
        plan.notes.push("net0 changes apply at once on a running container (PVE hot-plugs the interface): its network restarts, and a new address or VLAN cuts current connections".into());
    }
    let setting = !set.is_empty();
    if !set.is_empty() {
        plan.steps.push(Step::Set { set, why });
    }
    if !mounts.raw.is_empty() {
        plan.steps.push(Step::RawLxc {
            hostname: req.hostname.clone(),
            lines: mounts.raw,
        });
    }
    plan_rootfs(p, &cfg, &mut plan);
    plan_start(&mut plan, will_pend, setting, opts);
    Ok(plan)
}

/// What this node decides about the profile: `rootfs.storage = "auto"` pinned to a storage
/// (None: the profile names one), the release the plan is for, and an MTU the bridge cannot
/// take refused up front (PVE refuses to start such a container).
fn for_this_node(
    profile: &Profile,
    nf: &NodeFacts,
    ct: Option<&CtConfig>,
    plan: &mut NodePlan,
) -> Result<Option<Profile>> {
    let pinned =
        crate::rootdisk::pin_storage(profile, &nf.storages, rootfs_storage(ct).as_deref())?;
    let p = match &pinned {
        Some((q, why)) => {
            plan.notes.push(why.clone());
            q
        }
        None => profile,
    };
    if nf.pve {
        plan.notes.push(format!("node: {}", nf.caps.describe()));
    }
    if let (Some(want), Some(bridge)) = (p.network.mtu, nf.bridge_mtu.get(&p.network.bridge))
        && u32::from(want) > *bridge
    {
        return Err(InputError {
            file: format!("profile {}", p.name),
            line: 0,
            col: 0,
            field: "network.mtu".into(),
            message: format!(
                "{want} is above the MTU of bridge {} ({bridge}); PVE refuses to start such a container (\"net0: MTU size '{want}' is bigger than bridge MTU '{bridge}'\"). Use at most {bridge}, or raise the bridge's MTU on the node",
                p.network.bridge
            ),
        }
        .into());
    }
    Ok(pinned.map(|(q, _)| q))
}

/// Docker's storage driver: the profile's, or chosen from the storage of the root disk; refuses
/// fuse-overlayfs without the container's fuse feature.
fn choose_driver(
    p: &Profile,
    nf: &NodeFacts,
    ct: Option<&CtConfig>,
    plan: &mut NodePlan,
) -> Result<()> {
    // Docker's data decides: on its own volume (docker.data) that volume's storage, else the
    // root disk's.
    let disk_storage = docker_data_storage(p, ct)
        .or_else(|| rootfs_storage(ct))
        .unwrap_or_else(|| p.rootfs.storage.clone());
    let disk_kind = nf
        .storages
        .iter()
        .find(|s| s.name == disk_storage)
        .map(|s| s.kind.as_str());
    let (auto_driver, mut auto_reason) = decide_driver(disk_kind, nf.zfs_version.as_deref());
    if p.docker.data.is_some() {
        auto_reason = format!(
            "Docker's data is on its own volume on {disk_storage} (docker.data): {}",
            auto_reason.replacen("the root disk", "that volume", 1)
        );
    }
    if p.docker.install != crate::profile::DockerInstall::None {
        match p.docker.storage_driver {
            Driver::Auto => {
                plan.driver = Some(auto_driver);
                plan.driver_reason = format!("auto: {auto_reason}");
            }
            d => {
                plan.driver = Some(d);
                plan.driver_reason = format!("{} (set by the profile)", d.as_str());
                if d == Driver::FuseOverlayfs && auto_driver == Driver::Overlay2 && nf.pve {
                    plan.notes.push(format!(
                        "hint: storage_driver = \"auto\" would pick overlay2 here ({auto_reason}); overlay2 is much faster than fuse-overlayfs"
                    ));
                }
                if d == Driver::Overlay2
                    && auto_driver == Driver::FuseOverlayfs
                    && nf.zfs_version.is_some()
                {
                    plan.notes.push(format!(
                        "warning: the profile sets overlay2, but {auto_reason}: Docker will not start with overlay2 here; use storage_driver = \"auto\" or \"fuse-overlayfs\""
                    ));
                }
            }
        }
        if plan.driver == Some(Driver::FuseOverlayfs) && !p.features.fuse {
            let why = match p.docker.storage_driver {
                Driver::Auto => {
                    format!("storage_driver = \"auto\" picks fuse-overlayfs here ({auto_reason})")
                }
                _ => "the profile sets storage_driver = \"fuse-overlayfs\"".to_string(),
            };
            return Err(crate::error::InputErrors(vec![InputError::whole(
                format!("profile {}", p.name),
                "features.fuse",
                format!(
                    "{why}, which needs the container's fuse feature, but the profile has fuse off; set features.fuse = true, or storage_driver = \"vfs\" (slow, copies every layer), or put the root disk on a storage that hosts overlayfs (ZFS 2.2 or later, lvmthin, dir) so that overlay2 works"
                ),
            )])
            .into());
        }
    }
    Ok(())
}

/// The storage of Docker's data volume: the container's mount point at /var/lib/docker when
/// it has one, else the profile's `docker.data.storage`.
fn docker_data_storage(p: &Profile, ct: Option<&CtConfig>) -> Option<String> {
    let want = p.docker.data.as_ref()?;
    let have = ct.and_then(|c| {
        config_mounts(c).into_iter().find_map(|(_, v)| {
            let m = parse_property_string(&v, "volume");
            (m.get("mp").map(String::as_str) == Some(crate::profile::DOCKER_DATA_PATH))
                .then(|| m.get("volume")?.split_once(':').map(|(s, _)| s.to_string()))
                .flatten()
        })
    });
    Some(have.unwrap_or_else(|| want.storage.clone()))
}

/// Refuses a root disk storage the node does not have, or one that does not take container
/// root disks (for a new container).
fn check_rootfs_storage(p: &Profile, nf: &NodeFacts, existing: Option<&Guest>) -> Result<()> {
    let storage = nf.storages.iter().find(|s| s.name == p.rootfs.storage);
    if nf.pve {
        match storage {
            None => {
                let known: Vec<&str> = nf.storages.iter().map(|s| s.name.as_str()).collect();
                if existing.is_none() {
                    bail!(
                        "rootfs storage {:?} does not exist on this node; storages here: {}",
                        p.rootfs.storage,
                        known.join(", ")
                    );
                }
            }
            Some(s) if existing.is_none() && s.content.iter().any(|c| c == "-rootdir") => {
                let ok: Vec<&str> = nf
                    .storages
                    .iter()
                    .filter(|s| s.content.iter().any(|c| c == "rootdir"))
                    .map(|s| s.name.as_str())
                    .collect();
                bail!(
                    "storage {:?} does not allow container root disks (its content lacks rootdir); storages that do: {}",
                    s.name,
                    ok.join(", ")
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// A new container: its template (downloaded when missing), create and start.
fn plan_create(
    req: &Request,
    p: &Profile,
    tf: Option<&TemplateFacts>,
    caps: &Caps,
    proposed_vmid: u32,
    plan: &mut NodePlan,
) -> Result<()> {
    plan.vmid = req.vmid.unwrap_or(proposed_vmid);
    plan.vmid_auto = req.vmid.is_none();
    let tf_empty = TemplateFacts::default();
    let (template, tsteps) = resolve_template(p, tf.unwrap_or(&tf_empty), caps, &mut plan.notes)?;
    plan.steps.extend(tsteps);
    let keys = (!p.ssh_public_keys.is_empty()).then(|| {
        let mut k = p.ssh_public_keys.join("\n");
        k.push('\n');
        k
    });
    plan.steps.push(Step::Create {
        fixed_vmid: req.vmid,
        template,
        options: create_options(p, &req.hostname, keys.is_some()),
        ssh_keys: keys,
    });
    plan.steps.push(Step::Start);
    Ok(())
}

/// The configuration keys to set on an existing container (and why); those already right go
/// to `already`.
fn config_changes(
    p: &Profile,
    g: &Guest,
    cfg: &CtConfig,
    already: &mut Vec<Already>,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut set = Vec::new();
    let mut why = Vec::new();
    let adopting = !g.tags.iter().any(|t| t == TOOL_TAG);
    for (k, want) in desired_config(p) {
        if k == "description"
            && let Some(kept) = adopted_description(cfg.effective("description"), adopting)
        {
            match kept {
                Some(text) => {
                    why.push("description: the container's own text stays; provision adds its marker line".into());
                    set.push((k, text));
                }
                None => already.push(Already {
                    step: "config".into(),
                    why: "description: the container's own text (adopted) stays".into(),
                }),
            }
            continue;
        }
        if k == "tags" && adopting {
            // Adopting: the container's own tags stay, the profile's and the tool's are added.
            let mut all: Vec<String> = g.tags.clone();
            all.extend(split_tags(&want));
            all.sort();
            all.dedup();
            why.push(format!("tags: adopting (adds `{TOOL_TAG}`)"));
            set.push((k, all.join(";")));
            continue;
        }
        if let Some(d) = differs(&k, &want, cfg.effective(&k)) {
            let value = if k == "tags" {
                let mut all = split_tags(cfg.effective("tags").unwrap_or(""));
                all.extend(split_tags(&want));
                all.sort();
                all.dedup();
                all.join(";")
            } else if k == "net0" {
                let keep = cfg
                    .effective("net0")
                    .map(|n| parse_property_string(n, "name"))
                    .and_then(|m| m.get("hwaddr").cloned());
                net0_string(p, keep.as_deref())
            } else {
                want
            };
            why.push(d);
            set.push((k, value));
        } else {
            already.push(Already {
                step: "config".into(),
                why: format!("{k} is {}", if want.is_empty() { "(unset)" } else { &want }),
            });
        }
    }
    (set, why)
}

/// The keys PVE will keep pending after `pct set`: those pending now (unless set again) and,
/// on a running container, those it does not take at once.
fn forecast_pending(
    cfg: &CtConfig,
    set: &[(String, String)],
    running: bool,
    hot: &[String],
) -> Vec<String> {
    let mut will_pend: Vec<String> = cfg
        .pending
        .keys()
        .chain(cfg.pending_delete.iter())
        .filter(|k| !set.iter().any(|(s, _)| s == *k))
        .cloned()
        .collect();
    if running {
        will_pend.extend(
            set.iter()
                .filter(|(k, _)| !HOT_KEYS.contains(&k.as_str()) && !hot.contains(k))
                .map(|(k, _)| k.clone()),
        );
    }
    will_pend.sort();
    will_pend.dedup();
    will_pend
}

/// Grows the root disk to the profile's size (PVE cannot shrink it) and notes a disk on another
/// storage.
fn plan_rootfs(p: &Profile, cfg: &CtConfig, plan: &mut NodePlan) {
    if let Some(rootfs) = cfg.effective("rootfs") {
        let m = parse_property_string(rootfs, "volume");
        if let Some(have) = m.get("size").and_then(|s| crate::rootdisk::parse_size(s)) {
            // What a create of this size allocates, so that a fractional size converges in one
            // run and stays converged.
            let want = crate::rootdisk::alloc_bytes(p.rootfs.size);
            if want > have {
                plan.steps.push(Step::Resize {
                    size: crate::rootdisk::resize_arg(p.rootfs.size),
                });
            } else if want < have {
                plan.notes.push(format!(
                    "the root disk is {}, larger than the profile's {}G; PVE cannot shrink it, left as is",
                    crate::rootdisk::human(have),
                    fmt_gib(p.rootfs.size)
                ));
            } else {
                plan.already.push(Already {
                    step: "rootfs".into(),
                    why: format!("root disk is {}", crate::rootdisk::human(have)),
                });
            }
        }
        if !m
            .get("volume")
            .is_some_and(|v| v.starts_with(&format!("{}:", p.rootfs.storage)))
        {
            plan.notes.push(format!(
                "the root disk is on another storage than the profile's {:?}; provision does not move disks",
                p.rootfs.storage
            ));
        }
    }
}

/// Start a stopped container; reboot a running one for pending keys with `--restart`, or say
/// what stays pending.
fn plan_start(plan: &mut NodePlan, will_pend: Vec<String>, setting: bool, opts: &Options) {
    if !plan.running {
        plan.steps.push(Step::Start);
    } else if !will_pend.is_empty() {
        if opts.restart {
            plan.steps.push(Step::Reboot { keys: will_pend });
        } else if setting {
            // What PVE really keeps pending is read back after `pct set`; this is the forecast.
            plan.notes.push(format!(
                "{PENDING_FORECAST} {} (--restart restarts the container so that they apply)",
                will_pend.join(", ")
            ));
        } else {
            plan.notes.push(format!(
                "pending until the container restarts: {} (run again with --restart to restart it now)",
                will_pend.join(", ")
            ));
            plan.pending = will_pend;
        }
    } else {
        plan.already.push(Already {
            step: "start".into(),
            why: "the container is running".into(),
        });
    }
}

/// The description of an adopted container: `None` when the description is not the adopted
/// kind (the profile's applies), `Some(None)` when it already carries the marker, and
/// `Some(Some(text))` for the container's own text with the marker line added (when adopting
/// a container that has a description).
fn adopted_description(have: Option<&str>, adopting: bool) -> Option<Option<String>> {
    let have = have.filter(|h| !h.trim().is_empty())?;
    if have.lines().any(|l| l.trim() == ADOPTED_MARKER) {
        return Some(None);
    }
    adopting.then(|| Some(format!("{}\n{ADOPTED_MARKER}", have.trim_end())))
}
