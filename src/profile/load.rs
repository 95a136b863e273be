//! Reading profiles: the embedded ones and the search directories, TOML with an index of where
//! each field was written (file, line, column), `extends` chains, the list of profiles.

use super::*;

/// Where each field of a layer stands in its file: dotted path -> (line, col).
#[derive(Clone, Debug, Default)]
pub struct Index {
    /// File name shown in errors.
    pub file: String,
    entries: Vec<(String, Range<usize>, (usize, usize))>,
}

impl Index {
    /// Indexes every key of a TOML text (best effort; a text that does not parse has none).
    pub fn build(file: &str, text: &str) -> Index {
        let mut idx = Index {
            file: file.to_string(),
            entries: Vec::new(),
        };
        if let Ok(doc) = toml::de::DeTable::parse(text) {
            walk_table(doc.get_ref(), "", text, &mut idx.entries);
        }
        idx
    }

    /// An index for the command line: no positions.
    pub fn command_line() -> Index {
        Index {
            file: "command line".to_string(),
            entries: Vec::new(),
        }
    }

    /// An error at `field` (line/col found when indexed).
    pub fn error(&self, field: &str, message: impl Into<String>) -> InputError {
        let (line, col) = self
            .entries
            .iter()
            .find(|(p, _, _)| p == field)
            .map_or((0, 0), |(_, _, lc)| *lc);
        InputError {
            file: self.file.clone(),
            line,
            col,
            field: if self.file == "command line" {
                cli_option(field)
            } else {
                field.to_string()
            },
            message: message.into(),
        }
    }

    /// The innermost field whose text contains `offset`.
    pub fn field_at(&self, offset: usize) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(_, r, _)| r.start <= offset && offset < r.end.max(r.start + 1))
            .min_by_key(|(_, r, _)| r.end - r.start)
            .map(|(p, _, _)| p.as_str())
    }
}

/// The command-line option that sets a profile field (see `commands::overrides_layer`).
pub(super) fn cli_option(field: &str) -> String {
    match field {
        "rootfs.storage" => "--storage".into(),
        "rootfs.size" => "--disk".into(),
        "network.bridge" => "--bridge".into(),
        "network.ip" => "--ip".into(),
        "network.gateway" => "--gateway".into(),
        "network.vlan" => "--vlan".into(),
        "docker.storage_driver" => "--storage-driver".into(),
        "docker.fuse_overlayfs" => "--storage-driver".into(),
        _ => format!("--{}", field.replace(['.', '_'], "-")),
    }
}

pub(super) fn walk_table(
    t: &toml::de::DeTable<'_>,
    prefix: &str,
    text: &str,
    out: &mut Vec<(String, Range<usize>, (usize, usize))>,
) {
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        let ks = k.span();
        let vs = v.span();
        let range = ks.start.min(vs.start)..ks.end.max(vs.end);
        out.push((path.clone(), range, line_col(text, ks.start)));
        walk_value(v.get_ref(), &path, text, out);
    }
}

pub(super) fn walk_value(
    v: &toml::de::DeValue<'_>,
    path: &str,
    text: &str,
    out: &mut Vec<(String, Range<usize>, (usize, usize))>,
) {
    if let Some(t) = v.as_table() {
        walk_table(t, path, text, out);
    } else if let Some(a) = v.as_array() {
        for (i, item) in a.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let s = item.span();
            out.push((p.clone(), s.clone(), line_col(text, s.start)));
            walk_value(item.get_ref(), &p, text, out);
        }
    }
}

/// Reads a file as UTF-8 TOML text with clear errors for what a profile cannot be.
pub fn read_text(path: &Path) -> Result<String, InputError> {
    let shown = path.display().to_string();
    let bytes = crate::input::read_input(path, MAX_FILE_BYTES as u64)
        .map_err(|e| InputError::whole(&shown, "", format!("cannot read the file: {e}")))?;
    text_from_bytes(&shown, bytes)
}

/// Checks size and encoding of a file's bytes.
pub fn text_from_bytes(file: &str, bytes: Vec<u8>) -> Result<String, InputError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(InputError::whole(
            file,
            "",
            format!(
                "the file is {} bytes; profiles and lab files are small text files (at most {} bytes)",
                bytes.len(),
                MAX_FILE_BYTES
            ),
        ));
    }
    // A UTF-8 byte order mark is dropped here, once, so that every later look at the text (the
    // "only comments" check, columns) sees what the TOML parser sees.
    let bytes = match bytes.strip_prefix(b"\xef\xbb\xbf") {
        Some(rest) => rest.to_vec(),
        None => bytes,
    };
    String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..good]).into_owned();
        let (line, col) = line_col(&text, good);
        InputError {
            file: file.to_string(),
            line,
            col,
            field: String::new(),
            message: "the file is not valid UTF-8 text".to_string(),
        }
    })
}

/// Parses TOML text into `T`, turning parse and type errors into located input errors.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
    idx: &Index,
) -> Result<T, InputError> {
    if text.contains('\0') {
        let (line, col) = line_col(text, text.find('\0').unwrap_or(0));
        return Err(InputError {
            file: file.into(),
            line,
            col,
            field: String::new(),
            message: "the file contains a NUL byte; it is not a text file".into(),
        });
    }
    toml::from_str::<T>(text).map_err(|e| {
        let start = e.span().map_or(0, |s| s.start);
        let (line, col) = line_col(text, start);
        let field = idx.field_at(start).unwrap_or("").to_string();
        let message = toml_message_in(&field, &e, text);
        InputError {
            file: file.into(),
            line,
            col,
            field,
            message,
        }
    })
}

/// [`toml_message`], naming what was written when serde's words would mislead: a TOML
/// date-time reaches serde as a map (`invalid type: map, expected i64`).
pub fn toml_message_in(field: &str, e: &toml::de::Error, text: &str) -> String {
    let m = toml_message(field, e);
    let written = e
        .span()
        .and_then(|r| text.get(r))
        .map(str::trim)
        .filter(|w| w.parse::<toml::value::Datetime>().is_ok());
    match written {
        Some(w) if m.contains("invalid type: map") => m.replacen(
            "invalid type: map",
            &format!("invalid type: date-time `{w}`"),
            1,
        ),
        _ => m,
    }
}

/// The message of a TOML parse or type error at `field`, on one line. serde's messages quote
/// the value (`unknown variant `hunter2``): for `root_password` (a password written into the
/// file by mistake) a fixed message is given instead, so that it never reaches a terminal or a
/// CI log. Lab-file parsing should use it too.
pub fn toml_message(field: &str, e: &toml::de::Error) -> String {
    if field.split('.').any(|part| part == "root_password") {
        "root_password is { env = \"VAR\" }, { file = \"/path\" } or { prompt = true }; a password is never written into a profile".to_string()
    } else {
        e.message().trim().replace('\n', " ")
    }
}

/// A layer read from somewhere, with its index.
#[derive(Clone, Debug)]
pub struct LoadedLayer {
    /// Profile name or file path.
    pub name: String,
    /// Where it was found (`embedded`, or a path).
    pub origin: String,
    /// The parsed layer.
    pub layer: Layer,
    /// Positions of its fields.
    pub index: Index,
    /// Directory of the file (for relative `extends`, `files.source` and
    /// `root_password.file`).
    pub dir: Option<PathBuf>,
    /// A local file found by name in the search directories that hides the shipped (embedded)
    /// profile of that name.
    pub shadows: bool,
}

impl LoadedLayer {
    /// How the layer is named in a plan or report: `./profiles/docker.toml (shadows the shipped
    /// docker)`, `embedded docker-auto`.
    pub fn shown(&self) -> String {
        if self.origin == "embedded" {
            format!("embedded {}", self.name)
        } else if self.shadows {
            format!("{} (shadows the shipped {})", self.origin, self.name)
        } else {
            self.origin.clone()
        }
    }
}

/// The chain of profile layers a profile was built from, base first: `A <- B <- top`.
pub fn provenance(chain: &[LoadedLayer]) -> String {
    chain
        .iter()
        .map(LoadedLayer::shown)
        .collect::<Vec<_>>()
        .join(" <- ")
}

/// Paths in a layer that name a file on the machine running provision are relative to the
/// file that wrote them (one rule for `extends`, `files.source` and `root_password.file`):
/// `root_password.file` is made absolute here, from the directory of its file.
pub fn anchor_paths(layer: &mut Layer, dir: Option<&Path>) {
    if let (Some(PasswordSource::File(f)), Some(dir)) = (&mut layer.root_password, dir)
        && Path::new(f.as_str()).is_relative()
    {
        *f = dir.join(f.as_str()).display().to_string();
    }
}

/// Parses and checks one layer's text.
pub fn parse_layer(file: &str, text: &str) -> Result<(Layer, Index), InputErrors> {
    let idx = Index::build(file, text);
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(InputErrors(vec![InputError::whole(
            file,
            "",
            "the file is empty; a profile sets at least `extends` or `template`",
        )]));
    }
    let layer: Layer = parse_toml(file, text, &idx).map_err(|e| InputErrors(vec![e]))?;
    let errors = check_layer(&layer, &idx);
    if errors.is_empty() {
        Ok((layer, idx))
    } else {
        Err(InputErrors(errors))
    }
}

/// Directories searched for NAME.toml, in order, before the embedded profiles.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("profiles")];
    match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => dirs.push(PathBuf::from(x).join("provision/profiles")),
        None => {
            if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                dirs.push(PathBuf::from(h).join(".config/provision/profiles"));
            }
        }
    }
    dirs.push(PathBuf::from("/etc/provision/profiles"));
    dirs
}

/// True when `name` is a path rather than a profile name.
pub(super) fn is_path(name: &str) -> bool {
    name.contains('/') || name.ends_with(".toml")
}

/// Finds a profile by name or path and parses it (one layer, not its `extends`).
pub fn load_one(
    name: &str,
    relative_to: Option<&Path>,
    field_err: &dyn Fn(String) -> InputError,
) -> Result<LoadedLayer, InputErrors> {
    let from_file = |path: PathBuf, shadows: bool| -> Result<LoadedLayer, InputErrors> {
        let shown = path.display().to_string();
        let text = read_text(&path).map_err(|e| InputErrors(vec![e]))?;
        let (mut layer, index) = parse_layer(&shown, &text)?;
        let dir = path.parent().map(Path::to_path_buf);
        anchor_paths(&mut layer, dir.as_deref());
        Ok(LoadedLayer {
            name: name.to_string(),
            origin: shown,
            layer,
            index,
            dir,
            shadows,
        })
    };
    if is_path(name) {
        let p = Path::new(name);
        let p = match relative_to {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        };
        if !p.exists() {
            return Err(InputErrors(vec![field_err(format!(
                "profile file {} does not exist",
                p.display()
            ))]));
        }
        return from_file(p, false);
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        || name.is_empty()
    {
        return Err(InputErrors(vec![field_err(format!(
            "{name:?} is not a profile name (letters, digits, `-`, `_`, `.`) nor a path to a .toml file"
        ))]));
    }
    for dir in search_dirs() {
        let p = dir.join(format!("{name}.toml"));
        if crate::input::is_regular(&p) {
            let shadows = EMBEDDED.iter().any(|(n, _)| *n == name);
            return from_file(p, shadows);
        }
    }
    if let Some((_, text)) = EMBEDDED.iter().find(|(n, _)| *n == name) {
        let shown = format!("<embedded>/{name}.toml");
        let (layer, index) = parse_layer(&shown, text)?;
        return Ok(LoadedLayer {
            name: name.to_string(),
            origin: "embedded".to_string(),
            layer,
            index,
            dir: None,
            shadows: false,
        });
    }
    let known: Vec<String> = list_profiles().into_iter().map(|p| p.name).collect();
    Err(InputErrors(vec![field_err(format!(
        "no profile named {name:?}; known profiles: {}",
        known.join(", ")
    ))]))
}

/// Loads `name` and everything it extends, bottom layer first. Refuses cycles.
pub fn load_chain(name: &str) -> Result<Vec<LoadedLayer>, InputErrors> {
    load_chain_from(name, "--profile")
}

/// [`load_chain`] for a name given on the command line as `arg` (`--profile`, or the `NAME`
/// of `profiles show NAME`): an error about the name blames that argument.
pub fn load_chain_from(name: &str, arg: &str) -> Result<Vec<LoadedLayer>, InputErrors> {
    let mut chain: Vec<LoadedLayer> = Vec::new();
    let top = load_one(name, None, &|m| InputError::whole("command line", arg, m))?;
    chain.push(top);
    loop {
        let cur = chain.last().expect("non-empty");
        let Some(parent) = cur.layer.extends.clone() else {
            break;
        };
        let idx = cur.index.clone();
        let dir = cur.dir.clone();
        let next = load_one(&parent, dir.as_deref(), &|m| idx.error("extends", m))?;
        let canonical = |l: &LoadedLayer| {
            (l.origin != "embedded")
                .then(|| std::fs::canonicalize(&l.origin).ok())
                .flatten()
        };
        let next_canonical = canonical(&next);
        // The same file (however its path is spelled), or the same embedded profile.
        let same = |l: &LoadedLayer| {
            (l.origin == next.origin && (l.origin != "embedded" || l.name == next.name))
                || (next_canonical.is_some() && canonical(l) == next_canonical)
        };
        if chain.iter().any(same) {
            let names: Vec<&str> = chain.iter().map(|l| l.name.as_str()).collect();
            return Err(InputErrors(vec![idx.error(
                "extends",
                format!(
                    "`extends` makes a cycle: {} -> {}",
                    names.join(" -> "),
                    next.name
                ),
            )]));
        }
        if chain.len() > 16 {
            return Err(InputErrors(vec![
                idx.error("extends", "more than 16 levels of `extends`"),
            ]));
        }
        chain.push(next);
    }
    chain.reverse();
    Ok(chain)
}

/// A profile that can be listed.
#[derive(Clone, Debug, Serialize)]
pub struct ProfileEntry {
    /// Name to pass to --profile.
    pub name: String,
    /// Where it comes from.
    pub origin: String,
    /// Its description, if any.
    pub description: String,
}

/// Every profile visible from here: files in the search directories, then embedded ones not
/// shadowed by a file.
pub fn list_profiles() -> Vec<ProfileEntry> {
    let mut out: BTreeMap<String, ProfileEntry> = BTreeMap::new();
    let describe = |text: &str| -> String {
        toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|t| {
                t.get("description")
                    .and_then(|d| d.as_str())
                    .map(String::from)
            })
            .unwrap_or_default()
    };
    for dir in search_dirs() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for p in files {
            // Only regular files (a FIFO or a device there is skipped without being opened).
            if p.extension().is_some_and(|e| e == "toml")
                && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
                && !out.contains_key(stem)
                && crate::input::is_regular(&p)
            {
                let text = crate::input::read_input(&p, MAX_FILE_BYTES as u64)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default();
                out.insert(
                    stem.to_string(),
                    ProfileEntry {
                        name: stem.to_string(),
                        origin: p.display().to_string(),
                        description: describe(&text),
                    },
                );
            }
        }
    }
    for (name, text) in EMBEDDED {
        out.entry(name.to_string()).or_insert_with(|| ProfileEntry {
            name: name.to_string(),
            origin: "embedded".to_string(),
            description: describe(text),
        });
    }
    out.into_values().collect()
}
