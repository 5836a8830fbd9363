//! Who runs dbflow, as journals, backup catalogs and guard logs record it.
//!
//! CI runners and containers often have no `$USER`, so the environment variable alone
//! said "unknown" exactly where an audit trail matters most. The order, first found wins:
//! `DBFLOW_ACTOR` (set on purpose) → the CI's own name for whoever triggered the job →
//! the OS account of this process's uid → `$USER`/`$USERNAME` → `git config user.email` →
//! `uid:<n>`. Only a platform with none of these says "unknown".

use std::sync::OnceLock;

/// CI variables naming the person (or bot) a job runs for, in the order they are tried.
/// Each is set only by its own CI, so the order matters only for a runner that sets several.
pub const CI_VARIABLES: &[&str] = &[
    "GITHUB_ACTOR",                  // GitHub Actions
    "GITLAB_USER_LOGIN",             // GitLab CI
    "BUILDKITE_BUILD_CREATOR_EMAIL", // Buildkite
    "CIRCLE_USERNAME",               // CircleCI
    "BITBUCKET_STEP_TRIGGERER_UUID", // Bitbucket Pipelines
    "BUILD_REQUESTEDFOREMAIL",       // Azure Pipelines
    "BUILD_REQUESTEDFOR",            // Azure Pipelines
    "DRONE_COMMIT_AUTHOR",           // Drone / Woodpecker
    "CI_COMMIT_AUTHOR",              // Woodpecker
    "BUILD_USER_ID",                 // Jenkins (build-user-vars plugin)
];

/// The actor of this process (computed once: it cannot change while dbflow runs).
pub fn actor() -> String {
    static ACTOR: OnceLock<String> = OnceLock::new();
    ACTOR.get_or_init(find).clone()
}

fn find() -> String {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(name) = var("DBFLOW_ACTOR") {
        return name;
    }
    if let Some(name) = CI_VARIABLES.iter().find_map(|v| var(v)) {
        return name;
    }
    if let Some(name) = os_user() {
        return name;
    }
    if let Some(name) = var("USER").or_else(|| var("USERNAME")) {
        return name;
    }
    if let Some(email) = git_email() {
        return email;
    }
    uid().map_or_else(|| "unknown".to_string(), |uid| format!("uid:{uid}"))
}

/// The account name of this process's real uid (`/etc/passwd`, NSS), if it has one.
// The crate denies unsafe code; these two calls into libc are the exceptions: the
// account name by uid has no safe std API.
#[cfg(unix)]
#[allow(unsafe_code)]
fn os_user() -> Option<String> {
    // SAFETY: getpwuid_r writes into our buffer and `pwd`; the name pointer it returns
    // points into `buf`, which outlives the CStr read below.
    unsafe {
        let uid = libc::getuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(pwd.pw_name)
            .to_string_lossy()
            .into_owned();
        (!name.is_empty()).then_some(name)
    }
}

#[cfg(not(unix))]
fn os_user() -> Option<String> {
    None
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn uid() -> Option<u32> {
    // SAFETY: getuid cannot fail.
    Some(unsafe { libc::getuid() })
}

#[cfg(not(unix))]
fn uid() -> Option<u32> {
    None
}

fn git_email() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["config", "user.email"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let email = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !email.is_empty()).then_some(email)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_os_user_is_found_by_uid() {
        #[cfg(unix)]
        assert!(super::os_user().is_some_and(|n| !n.is_empty()));
    }
}
