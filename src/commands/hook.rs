//! `dbflow hook install`.

use crate::app::App;
use crate::error::{Error, ExitCode, Result};
use crate::guard::hook;

pub fn install(app: &App) -> Result<ExitCode> {
    let cwd = std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))?;
    let binary = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| Error::io("finding the dbflow binary", e))?;
    let installed = hook::install(&cwd, &binary)?;
    let shown = installed
        .path
        .strip_prefix(&cwd)
        .unwrap_or(&installed.path)
        .display()
        .to_string();
    app.ui.out(&format!(
        "✔ {} {shown}: runs `{} scan --staged` before each commit",
        if installed.updated {
            "updated"
        } else {
            "installed"
        },
        binary.display()
    ));
    if let Some(chained) = &installed.chained {
        app.ui.out(&format!(
            "  the previous pre-commit hook is kept as {} and runs first",
            chained.strip_prefix(&cwd).unwrap_or(chained).display()
        ));
    }
    app.ui.out("  bypass it once with `git commit --no-verify`");
    Ok(ExitCode::Ok)
}
