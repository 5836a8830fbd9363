//! `dbflow completions SHELL` (clap_complete) and `dbflow man` (clap_mangen).
//!
//! bash and fish also complete the project's own names at the moment of completion:
//! `dbflow run <TAB>` offers the workflows and tasks, `--env <TAB>` the environments, read
//! from the Workflowfile through a hidden `dbflow __names` so they are never stale. zsh and
//! zsh gets the same through helper functions in place of clap's `_default` for those
//! two values; PowerShell gets clap's static script (subcommands, flags, values).

use crate::cli::{Cli, NamesKind};
use crate::error::{Error, ExitCode, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;
use std::path::Path;

/// Prints the completion script for `shell` on stdout.
/// With `--json`: `{"shell", "script"}`.
pub fn completions(shell: Shell, json: bool) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "dbflow", &mut script);
    let mut script = String::from_utf8_lossy(&script).into_owned();
    match shell {
        Shell::Bash => script.push_str(BASH_DYNAMIC),
        Shell::Fish => script.push_str(FISH_DYNAMIC),
        Shell::Zsh => script = zsh_dynamic(&script),
        _ => {}
    }
    if json {
        crate::ui::json::print(
            &serde_json::json!({ "shell": shell.to_string(), "script": script }),
        );
        return Ok(ExitCode::Ok);
    }
    write_stdout(script.as_bytes())
}

/// Completes `dbflow run NAME` and `--env ENV` from the Workflowfile, falling back to
/// clap's completion for everything else.
const BASH_DYNAMIC: &str = r#"
# Names from the Workflowfile, asked at completion time.
_dbflow_names() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" i sub=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -e|--env|-f|--file|--color) ((i++)) ;;
            -*) ;;
            *) sub="${COMP_WORDS[i]}"; break ;;
        esac
    done
    if [[ "$prev" == "-e" || "$prev" == "--env" ]]; then
        COMPREPLY=($(compgen -W "$(dbflow __names environments 2>/dev/null)" -- "$cur"))
        return 0
    fi
    if [[ "$sub" == "run" && "$cur" != -* && "${COMP_WORDS[COMP_CWORD-1]}" == "run" ]]; then
        COMPREPLY=($(compgen -W "$(dbflow __names targets 2>/dev/null)" -- "$cur"))
        return 0
    fi
    _dbflow "$@"
}
if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _dbflow_names -o nosort -o bashdefault -o default dbflow
else
    complete -F _dbflow_names -o bashdefault -o default dbflow
fi
"#;

const FISH_DYNAMIC: &str = r#"
# Names from the Workflowfile, asked at completion time.
complete -c dbflow -n "__fish_seen_subcommand_from run" -f -a "(dbflow __names targets 2>/dev/null)"
complete -c dbflow -s e -l env -x -a "(dbflow __names environments 2>/dev/null)"
"#;

/// clap's zsh script with the environment and workflow values completed from the
/// Workflowfile: the helpers are defined right after the `#compdef` line.
fn zsh_dynamic(script: &str) -> String {
    const HELPERS: &str = r#"
_dbflow_environments() {
    local -a names
    names=(${(f)"$(dbflow __names environments 2>/dev/null)"})
    _describe -t environments 'environment' names
}
_dbflow_targets() {
    local -a names
    names=(${(f)"$(dbflow __names targets 2>/dev/null)"})
    _describe -t targets 'workflow or task' names
}
"#;
    let script = script
        .replace(":ENV:_default'", ":ENV:_dbflow_environments'")
        .replace(
            "':name -- Workflow or task name:_default'",
            "':name -- Workflow or task name:_dbflow_targets'",
        );
    match script.split_once('\n') {
        Some((first, rest)) if first.starts_with("#compdef") => {
            format!("{first}\n{HELPERS}{rest}")
        }
        _ => format!("{HELPERS}{script}"),
    }
}

/// `dbflow __names`: one name per line (no project: nothing, exit 0).
pub fn names(app: Option<&crate::app::App>, kind: NamesKind) -> Result<ExitCode> {
    let Some(app) = app else {
        return Ok(ExitCode::Ok);
    };
    let project = &app.project;
    let names: Vec<String> = match kind {
        NamesKind::Environments => project
            .environments
            .keys()
            .chain(project.aliases.keys())
            .cloned()
            .collect(),
        NamesKind::Targets => project
            .workflows
            .values()
            .filter(|w| !w.private)
            .map(|w| w.name.clone())
            .chain(
                project
                    .tasks
                    .values()
                    .filter(|t| !t.def.private)
                    .map(|t| t.name.clone()),
            )
            .collect(),
    };
    let mut text = names.join("\n");
    text.push('\n');
    write_stdout(text.as_bytes())
}

/// `dbflow man`: the page of `dbflow` on stdout, or with `--out DIR` one page per
/// command (`dbflow.1`, `dbflow-run.1`, `dbflow-migrate-status.1`, …). With `--json`:
/// `{"roff"}` or `{"written": DIR}`.
pub fn man(out: Option<&Path>, json: bool) -> Result<ExitCode> {
    let cmd = Cli::command();
    match out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(|e| Error::io("rendering the manual page", e))?;
            if json {
                let roff = String::from_utf8_lossy(&page);
                crate::ui::json::print(&serde_json::json!({ "roff": roff }));
                return Ok(ExitCode::Ok);
            }
            write_stdout(&page)
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            clap_mangen::generate_to(cmd, dir)
                .map_err(|e| Error::io(format!("writing pages into {}", dir.display()), e))?;
            eprintln!("wrote the manual pages into {}", dir.display());
            if json {
                crate::ui::json::print(
                    &serde_json::json!({ "written": dir.display().to_string() }),
                );
            }
            Ok(ExitCode::Ok)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|_| stdout.flush()) {
        // `dbflow man | head`: the reader has all it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::Ok),
        Err(e) => Err(Error::io("writing to stdout", e)),
        Ok(()) => Ok(ExitCode::Ok),
    }
}
