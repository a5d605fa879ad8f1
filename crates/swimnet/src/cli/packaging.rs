//! `swimnet completions SHELL` and `swimnet man [--out DIR]`: shell
//! completion scripts and man pages generated from the clap definition of
//! the command line itself (clap_complete, clap_mangen), so they always
//! match the binary that prints them.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// `swimnet completions`' arguments.
#[derive(Args)]
pub struct CompletionsArgs {
    /// Shell to print the completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `swimnet man`'s arguments.
#[derive(Args)]
pub struct ManArgs {
    /// Write one page per command (swimnet.1, swimnet-agent.1, ...) into
    /// this directory, created if missing, instead of printing swimnet(1)
    /// to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The command line's clap definition, named `swimnet` whatever the
/// binary is called.
fn command() -> clap::Command {
    crate::Cli::command().name("swimnet").bin_name("swimnet")
}

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(shell: Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut command(), "swimnet", out);
}

/// Writes the top-level man page, swimnet(1) (its SUBCOMMANDS section
/// names every command), to `out`.
pub fn write_man_page(out: &mut dyn Write) -> Result<(), String> {
    clap_mangen::Man::new(command())
        .render(out)
        .map_err(|e| format!("cannot write the man page: {e}"))
}

/// Writes one man page per command into `dir` (created if missing):
/// swimnet.1 and `swimnet-SUB[-SUBSUB].1` for each subcommand. Answers the
/// file names written, sorted.
pub fn write_man_pages(dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    clap_mangen::generate_to(command(), dir)
        .map_err(|e| format!("cannot write the man pages to {}: {e}", dir.display()))?;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("swimnet") && n.ends_with(".1"))
        .collect();
    names.sort();
    Ok(names)
}

/// Runs `swimnet completions SHELL`: the script on stdout.
pub fn run_completions(args: CompletionsArgs) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    write_completions(args.shell, &mut out);
    out.flush()
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

/// Runs `swimnet man`: swimnet(1) on stdout, or every page into `--out`
/// (then prints where they went).
pub fn run_man(args: ManArgs) -> Result<(), String> {
    match args.out {
        None => {
            let mut out = std::io::stdout().lock();
            write_man_page(&mut out)?;
            out.flush()
                .map_err(|e| format!("cannot write to stdout: {e}"))
        }
        Some(dir) => {
            let names = write_man_pages(&dir)?;
            println!("wrote {} man pages in {}", names.len(), dir.display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Subcommands every generated text must name.
    const SUBCOMMANDS: &[&str] = &[
        "agent",
        "members",
        "keys",
        "network",
        "table",
        "completions",
        "man",
    ];

    fn completions(shell: Shell) -> String {
        let mut buf = Vec::new();
        write_completions(shell, &mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn completion_scripts_name_every_subcommand_and_agent_flags() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = completions(shell);
            assert!(text.len() > 1000, "{shell}: {} bytes", text.len());
            for sub in SUBCOMMANDS {
                assert!(text.contains(sub), "{shell} completions lack {sub}");
            }
            assert!(text.contains("keyring-file"), "{shell}: agent flags");
        }
        assert!(completions(Shell::Bash).contains("complete -F _swimnet"));
        assert!(completions(Shell::Zsh).starts_with("#compdef swimnet"));
        assert!(completions(Shell::Fish).contains("complete -c swimnet"));
    }

    #[test]
    fn man_page_lists_the_subcommands() {
        let mut buf = Vec::new();
        write_man_page(&mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains(".TH swimnet 1"), "{}", &text[..200]);
        for sub in SUBCOMMANDS {
            assert!(
                text.contains(&format!("swimnet\\-{sub}(1)")),
                "man lacks {sub}"
            );
        }
    }

    #[test]
    fn man_pages_go_one_per_command_into_a_new_directory() {
        let dir = std::env::temp_dir().join(format!("swimnet-man-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let names = write_man_pages(&dir.join("man1")).unwrap();
        for want in ["swimnet.1", "swimnet-agent.1", "swimnet-table-watch.1"] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let agent = std::fs::read_to_string(dir.join("man1/swimnet-agent.1")).unwrap();
        assert!(
            agent.contains("keyring\\-file"),
            "agent page lacks its flags"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
