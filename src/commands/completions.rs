//! `provision completions SHELL`, the hidden `provision man DIR` and `provision complete-profiles`.
//!
//! Both the completion scripts and the man pages are generated from the clap definitions in
//! [`crate::cli`] by the binary itself (clap_complete, clap_mangen), so they cannot drift from
//! the options the binary accepts; the Debian package runs these at build time.
//!
//! Profile names are not known when the script is generated: they depend on the directory and
//! on /etc/provision/profiles. So the bash and fish scripts get a small hand-written hook on top
//! of clap's static script: after `--profile`/`-p`, and for `profiles show`, they ask
//! `provision complete-profiles` (names one a line, nothing else) at completion time. zsh gets
//! clap's static script (profile values complete as files, which `--profile` also accepts).

use crate::cli::{Cli, CompletionShell};
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::path::Path;

/// The name clap gives the bash completion function; the hook takes it over.
const BASH_FN: &str = "_provision";

/// The completion script for `shell`.
pub fn script(shell: CompletionShell) -> String {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    match shell {
        CompletionShell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "provision", &mut buf);
        }
        CompletionShell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "provision", &mut buf);
        }
        CompletionShell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "provision", &mut buf);
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        CompletionShell::Bash => bash_with_profiles(&text),
        CompletionShell::Zsh => text,
        CompletionShell::Fish => format!("{text}{FISH_PROFILES}"),
    }
}

/// clap's bash script with its function renamed `_provision_static`, and a `_provision` that
/// completes profile names itself and hands everything else to clap's.
fn bash_with_profiles(text: &str) -> String {
    let renamed = text
        .replace(&format!("{BASH_FN}() {{"), "_provision_static() {")
        .replace(&format!("-F {BASH_FN} "), "-F _provision ");
    format!("{renamed}{BASH_PROFILES}")
}

const BASH_PROFILES: &str = r#"
# provision: profile names come from `provision complete-profiles` at completion time.
_provision() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" i sub=""
    [ "$COMP_CWORD" -gt 0 ] && prev="${COMP_WORDS[COMP_CWORD-1]}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -*) ;;
            *) sub="${sub:+$sub }${COMP_WORDS[i]}" ;;
        esac
    done
    if [ "$prev" = "--profile" ] || [ "$prev" = "-p" ] || [ "$sub" = "profiles show" ]; then
        local names
        names=$("${COMP_WORDS[0]:-provision}" complete-profiles 2>/dev/null)
        COMPREPLY=($(compgen -W "$names" -- "$cur"))
        # A path to a .toml file is a profile too.
        COMPREPLY+=($(compgen -f -X '!*.toml' -- "$cur"))
        return 0
    fi
    _provision_static "$@"
}
"#;

const FISH_PROFILES: &str = r#"
# provision: profile names come from `provision complete-profiles` at completion time.
complete -c provision -l profile -s p -f -r -a '(provision complete-profiles 2>/dev/null)'
complete -c provision -n '__fish_seen_subcommand_from profiles; and __fish_seen_subcommand_from show' -f -a '(provision complete-profiles 2>/dev/null)'
"#;

/// Runs `provision completions SHELL`.
pub fn run(shell: CompletionShell) -> Result<u8> {
    crate::out!("{}", script(shell));
    Ok(0)
}

/// The man pages: (file name, roff text). provision(1) and provision-SUB(1) per visible
/// subcommand (and `provision-profiles-show`).
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    let cmd = Cli::command();
    let mut out = Vec::new();
    let mut render = |c: clap::Command, file: String| -> Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c)
            .render(&mut buf)
            .with_context(|| format!("rendering {file}"))?;
        out.push((file, buf));
        Ok(())
    };
    render(cmd.clone(), "provision.1".into())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("provision-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("provision {}", sub.get_name()))
            .version(cmd.get_version().unwrap_or_default().to_string());
        render(page, format!("{name}.1"))?;
        for sub2 in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name2 = format!("{name}-{}", sub2.get_name());
            let page = sub2
                .clone()
                .name(name2.clone())
                .bin_name(format!("provision {} {}", sub.get_name(), sub2.get_name()))
                .version(cmd.get_version().unwrap_or_default().to_string());
            render(page, format!("{name2}.1"))?;
        }
    }
    Ok(out)
}

/// Runs `provision man DIR`.
pub fn man(dir: &Path) -> Result<u8> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (file, text) in man_pages()? {
        let p = dir.join(&file);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        crate::outln!("{}", p.display());
    }
    Ok(0)
}

/// Runs `provision complete-profiles`: the names `provision profiles` lists, one a line.
pub fn profile_names() -> Result<u8> {
    for p in crate::profile::list_profiles() {
        crate::outln!("{}", p.name);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_script_hooks_profiles_and_keeps_clap_function() {
        let s = script(CompletionShell::Bash);
        assert!(s.contains("_provision_static() {"), "{s}");
        assert!(s.contains("complete-profiles"));
        assert!(s.contains("-F _provision "), "registered under the hook");
        assert!(!s.contains("-F _provision_static"));
    }

    #[test]
    fn every_visible_subcommand_has_a_man_page() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "provision.1",
            "provision-apply.1",
            "provision-status.1",
            "provision-destroy.1",
            "provision-doctor.1",
            "provision-inventory.1",
            "provision-completions.1",
            "provision-profiles.1",
            "provision-profiles-show.1",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("man") || n.contains("complete-"))
        );
        let main = String::from_utf8_lossy(&pages[0].1).into_owned();
        assert!(main.contains(".TH provision 1"), "{main}");
        assert!(main.contains("\\-\\-profile"), "options are documented");
    }
}
