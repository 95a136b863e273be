//! The entries of a lab file checked and expanded (`count` with `{n}`, VMIDs, nodes, hosts),
//! each resolved against its profile chain; duplicates refused.

use super::*;

/// Checks every entry and resolves its profile; errors go to `cx.errs`.
pub(super) fn check(
    cx: &mut Cx<'_>,
    dir: &Path,
    defaults: &RawDefaults,
    raw: &[RawEntry],
    overrides: &Layer,
) -> Vec<Entry> {
    let d_errs = check_layer(&defaults.layer, &marker("defaults"));
    let d_errs = relocate(d_errs, &cx.idx);
    cx.errs.extend(d_errs);
    refuse_layer_keys(cx, "defaults", &defaults.layer, true);
    let cli = check_layer(overrides, &Index::command_line());
    cx.errs.extend(cli);
    let mut chains: BTreeMap<String, Result<Vec<LoadedLayer>, InputErrors>> = BTreeMap::new();
    let mut out = Vec::new();
    let mut idents = Vec::new();
    let mut total = 0usize;
    // The default profile is checked even when every entry names its own.
    if let Some(name) = &defaults.profile {
        let pref = profile_ref(name, dir);
        let chain = chains
            .entry(pref.clone())
            .or_insert_with(|| profile::load_chain(&pref));
        if let Err(errs) = chain {
            profile_errors(cx, errs, "defaults.profile");
        }
    }
    for e in raw {
        let p = e.field.as_str();
        let before = cx.errs.len();
        let l_errs = check_layer(&e.layer, &marker(p));
        let l_errs = relocate(l_errs, &cx.idx);
        cx.errs.extend(l_errs);
        refuse_layer_keys(cx, p, &e.layer, false);
        let Some(name) = &e.name else {
            if !e.given.iter().any(|k| k == "name") {
                cx.err(
                    p,
                    "missing `name`: the container's hostname (with `{n}` when `count` is set)",
                );
            }
            continue;
        };
        let Some((counted, count)) = entry_count(cx, p, name, e.count) else {
            continue;
        };
        check_entry_place(cx, p, e, counted, count);
        let mut names = entry_names(name, counted, count);
        cap_total(cx, (p, e, name, counted), &mut names, &mut total);
        let first_ident = idents.len();
        push_idents(cx, &mut idents, p, e, name, &names);
        let Some((pname, chain)) = entry_chain(cx, &mut chains, dir, defaults, e) else {
            continue;
        };
        if cx.errs.len() > before {
            continue;
        }
        check_lab_sources(cx, dir, &defaults.layer, p, &e.layer);
        let own_files = defaults.layer.files.is_some() || e.layer.files.is_some();
        let base_dir = if own_files {
            Some(dir.to_path_buf())
        } else {
            chain.last().and_then(|l| l.dir.clone())
        };
        let sources = format!("{} <- {} {p}", profile::provenance(&chain), cx.idx.file);
        let mut layers = entry_layers(chain, [(&defaults.layer, "defaults"), (&e.layer, p)], dir);
        layers.push((overrides.clone(), Index::command_line()));
        let profile = match resolve(&pname, &layers, base_dir) {
            Ok(pr) => profile::Profile { sources, ..pr },
            Err(errs) => {
                let errs = relocate(errs.0, &cx.idx);
                cx.errs.extend(errs);
                continue;
            }
        };
        for (k, (n, hostname)) in names.into_iter().enumerate() {
            let ident = &mut idents[first_ident + k];
            if ident.vmid.is_none() {
                ident.vmid = profile.vmid.map(|v| (v, "profile"));
            }
            let vmid = ident.vmid.map(|(v, _)| v);
            out.push(Entry {
                name: hostname.clone(),
                field: p.to_string(),
                pattern: counted.then(|| name.clone()),
                n,
                node: e.node.clone(),
                nodes: e.nodes.clone().unwrap_or_default(),
                host: e.host.clone(),
                request: Request {
                    hostname,
                    vmid,
                    profile: profile.clone(),
                },
            });
        }
    }
    duplicates(cx, &idents);
    out
}

/// How many containers an entry makes (`count` with `{n}` in the name), or None after
/// reporting why the pair does not fit.
pub(super) fn entry_count(
    cx: &mut Cx<'_>,
    p: &str,
    name: &str,
    count: Option<i64>,
) -> Option<(bool, u32)> {
    let counted = name.contains(COUNTER);
    let count = match (count, counted) {
        (Some(c), true) if (1..=MAX_COUNT).contains(&c) => c as u32,
        (Some(c), true) => {
            cx.err(
                &format!("{p}.count"),
                format!("{c} is out of range: count must be 1 to {MAX_COUNT}"),
            );
            return None;
        }
        (Some(c), false) => {
            cx.err(
                &format!("{p}.count"),
                format!(
                    "count = {c} needs `{COUNTER}` in the name, e.g. name = \"runner-{COUNTER}\" (it becomes runner-1, runner-2, ...)"
                ),
            );
            return None;
        }
        (None, true) => {
            cx.err(
                &format!("{p}.name"),
                format!(
                    "{name:?} has `{COUNTER}` but no `count` says how many containers it makes"
                ),
            );
            return None;
        }
        (None, false) => 1,
    };
    Some((counted, count))
}

/// Checks an entry's `vmid`/`vmid_base` against its count, and its `node` and `host`.
pub(super) fn check_entry_place(cx: &mut Cx<'_>, p: &str, e: &RawEntry, counted: bool, count: u32) {
    if let Some(v) = e.vmid {
        if counted {
            cx.err(
                &format!("{p}.vmid"),
                "one `vmid` cannot go to several containers: give `vmid_base` (the first container's VMID) with `count`",
            );
        } else if let Err(m) = validate::vmid(v) {
            cx.err(&format!("{p}.vmid"), m);
        }
    }
    if let Some(b) = e.vmid_base {
        if !counted {
            cx.err(
                &format!("{p}.vmid_base"),
                "`vmid_base` goes with `count`; a single container takes `vmid`",
            );
        } else {
            let last = b.saturating_add(i64::from(count) - 1);
            let m = match (validate::vmid(b), validate::vmid(last)) {
                (Err(m), _) => Some(m),
                (Ok(()), Err(m)) => Some(format!(
                    "with count = {count} the last container's VMID is {last}: {m}"
                )),
                (Ok(()), Ok(())) => None,
            };
            if let Some(m) = m {
                cx.err(&format!("{p}.vmid_base"), m);
            }
        }
    }
    if let Some(n) = &e.node
        && let Err(m) = validate::hostname(n)
    {
        cx.err(
            &format!("{p}.node"),
            m.replace("a valid hostname", "a valid PVE node name"),
        );
    }
    for (i, n) in e.nodes.iter().flatten().enumerate() {
        if let Err(m) = validate::hostname(n) {
            let m = m.replace("a valid hostname", "a valid PVE node name");
            cx.err(&format!("{p}.nodes[{i}]"), m);
        }
    }
    match (&e.node, &e.nodes) {
        (_, Some(l)) if l.is_empty() => cx.err(
            &format!("{p}.nodes"),
            "is empty: list the members `node = \"auto\"` may choose from, or leave `nodes` out for all of them".to_string(),
        ),
        (Some(n), Some(_)) if n != "auto" => cx.err(
            &format!("{p}.nodes"),
            format!("`nodes` is the choice of `node = \"auto\"`, but `node` is {n:?}"),
        ),
        _ => {}
    }
    if let Some(h) = &e.host
        && let Err(err) = crate::transport::ssh::SshTarget::parse(h)
    {
        cx.err(&format!("{p}.host"), format!("{err:#}"));
    }
}

/// The hostnames an entry makes: one, or one per `n` of its count.
pub(super) fn entry_names(name: &str, counted: bool, count: u32) -> Vec<(Option<u32>, String)> {
    if counted {
        (1..=count)
            .map(|n| (Some(n), name.replace(COUNTER, &n.to_string())))
            .collect()
    } else {
        vec![(None, name.to_string())]
    }
}

/// Records what makes each of an entry's containers unique (for the duplicate check) and
/// refuses a hostname that `{n}` made invalid.
pub(super) fn push_idents(
    cx: &mut Cx<'_>,
    idents: &mut Vec<Ident>,
    p: &str,
    e: &RawEntry,
    name: &str,
    names: &[(Option<u32>, String)],
) {
    for (n, hostname) in names {
        let vmid = match (e.vmid, e.vmid_base, n) {
            (Some(v), _, None) if validate::vmid(v).is_ok() => Some((v as u32, "vmid")),
            (None, Some(b), Some(n)) => {
                let v = b.saturating_add(i64::from(*n) - 1);
                validate::vmid(v).is_ok().then_some((v as u32, "vmid_base"))
            }
            _ => None,
        };
        idents.push(Ident {
            field: p.to_string(),
            n: *n,
            name: hostname.clone(),
            vmid,
        });
    }
    if let Some((n, bad)) = names.iter().find(|(_, h)| validate::hostname(h).is_err()) {
        let m = validate::hostname(bad).err().unwrap_or_default();
        let m = match n {
            Some(n) => format!("{name:?} makes {bad:?} for n = {n}: {m}"),
            None => m,
        };
        cx.err(&format!("{p}.name"), m);
    }
}

/// A lab file's own `files.source` is read from the lab file's directory: it must exist now,
/// reported at its place, before anything runs.
pub(super) fn check_lab_sources(
    cx: &mut Cx<'_>,
    dir: &Path,
    defaults: &Layer,
    p: &str,
    own: &Layer,
) {
    for (prefix, lay) in [("defaults", defaults), (p, own)] {
        for (j, f) in lay.files.iter().flatten().enumerate() {
            let Some(src) = &f.source else { continue };
            let path = if Path::new(src).is_relative() {
                dir.join(src)
            } else {
                PathBuf::from(src)
            };
            if let Some(why) = crate::input::not_regular(&path) {
                cx.err(
                    &format!("{prefix}.files[{j}].source"),
                    format!(
                        "{} {why} (a relative source is read from the lab file's directory)",
                        path.display()
                    ),
                );
            }
        }
    }
}

/// What makes a container unique in a lab file, for the duplicate check.
pub(super) struct Ident {
    /// `container[i]`.
    field: String,
    /// Counter value.
    n: Option<u32>,
    /// Hostname.
    name: String,
    /// Fixed VMID and the key that set it.
    vmid: Option<(u32, &'static str)>,
}

/// Two containers with the same hostname or VMID (after counted entries are expanded).
pub(super) fn duplicates(cx: &mut Cx<'_>, idents: &[Ident]) {
    let what = |e: &Ident| match e.n {
        Some(n) => format!("{} (n = {n})", e.field),
        None => e.field.clone(),
    };
    let mut names: BTreeMap<String, &Ident> = BTreeMap::new();
    let mut ids: BTreeMap<u32, &Ident> = BTreeMap::new();
    // One error per entry and key: a counted entry that clashes clashes for every n.
    let mut told: BTreeSet<(String, &'static str)> = BTreeSet::new();
    for e in idents {
        match names.get(&e.name.to_ascii_lowercase()) {
            Some(_) if told.contains(&(e.field.clone(), "name")) => {}
            Some(first) => {
                told.insert((e.field.clone(), "name"));
                let m = format!(
                    "{}: the name {:?} is also {}'s; hostnames in a lab file must be unique",
                    what(e),
                    e.name,
                    what(first)
                );
                cx.err(&format!("{}.name", e.field), m);
            }
            None => {
                names.insert(e.name.to_ascii_lowercase(), e);
            }
        }
        let Some((v, key)) = e.vmid else { continue };
        match ids.get(&v) {
            Some(_) if told.contains(&(e.field.clone(), key)) => {}
            Some(first) => {
                told.insert((e.field.clone(), key));
                let m = format!(
                    "{} ({}): VMID {v} is also {} ({})'s; VMIDs must be unique",
                    what(e),
                    e.name,
                    what(first),
                    first.name
                );
                cx.err(&format!("{}.{key}", e.field), m);
            }
            None => {
                ids.insert(v, e);
            }
        }
    }
}

/// The layers of one entry, base first: its profile's chain, then the lab file's `[defaults]`
/// and the entry, whose paths are relative to the lab file's directory.
fn entry_layers(
    chain: Vec<LoadedLayer>,
    lab: [(&Layer, &str); 2],
    dir: &Path,
) -> Vec<(Layer, Index)> {
    let mut layers: Vec<(Layer, Index)> = chain.into_iter().map(|l| (l.layer, l.index)).collect();
    for (l, field) in lab {
        let mut l = l.clone();
        profile::anchor_paths(&mut l, Some(dir));
        layers.push((l, marker(field)));
    }
    layers
}

/// Counts an entry's containers into `total` and keeps the file within [`MAX_CONTAINERS`]: the
/// entry that crosses it is named once; past it, the entry's name is still checked (for n = 1)
/// but no container is expanded (`names` emptied), so the duplicate check and the plan stay
/// bounded and the file's other errors are still reported.
fn cap_total(
    cx: &mut Cx<'_>,
    (p, e, name, counted): (&str, &RawEntry, &str, bool),
    names: &mut Vec<(Option<u32>, String)>,
    total: &mut usize,
) {
    if *total <= MAX_CONTAINERS && *total + names.len() > MAX_CONTAINERS {
        let field = if counted {
            format!("{p}.count")
        } else {
            p.to_string()
        };
        cx.err(
            &field,
            format!(
                "with this entry the lab file makes more than {MAX_CONTAINERS} containers, the most one file may make: split it into several lab files"
            ),
        );
    }
    *total = total.saturating_add(names.len());
    if *total > MAX_CONTAINERS {
        names.truncate(1);
        push_idents(cx, &mut Vec::new(), p, e, name, names);
        names.clear();
    }
}

/// The profile an entry starts from and its chain (loaded once per file), with errors about a
/// missing profile put where it is named; None after reporting why there is none.
fn entry_chain(
    cx: &mut Cx<'_>,
    chains: &mut BTreeMap<String, Result<Vec<LoadedLayer>, InputErrors>>,
    dir: &Path,
    defaults: &RawDefaults,
    e: &RawEntry,
) -> Option<(String, Vec<LoadedLayer>)> {
    let p = e.field.as_str();
    let (pname, pfield) = match (&e.profile, &defaults.profile) {
        (Some(n), _) => (n.clone(), format!("{p}.profile")),
        (None, Some(n)) => (n.clone(), "defaults.profile".to_string()),
        // Given with a wrong type: already reported as that.
        (None, None) if e.given.iter().any(|k| k == "profile") || defaults.profile_given => {
            return None;
        }
        (None, None) => {
            cx.err(
                p,
                "no profile: set `profile` in this [[container]] or in [defaults] (e.g. profile = \"docker\")",
            );
            return None;
        }
    };
    let pref = profile_ref(&pname, dir);
    let chain = chains
        .entry(pref.clone())
        .or_insert_with(|| profile::load_chain(&pref));
    match chain {
        Ok(c) => Some((pname, c.clone())),
        Err(errs) => {
            let errs = errs.clone();
            profile_errors(cx, &errs, &pfield);
            None
        }
    }
}
