//! Conditions on a run (`condition:` of tasks, `when:` of steps).

use crate::config::raw::{Platform, RawCondition};
use crate::config::{ResolvedEnv, Vars};

/// `Ok` when the condition holds, else the reason it does not (shown when skipping).
pub fn evaluate(condition: &RawCondition, env: &ResolvedEnv, vars: &Vars) -> Result<(), String> {
    if !condition.environments.is_empty()
        && !condition.environments.iter().any(|e| {
            // A fleet target (`production/acme`) is its environment.
            e.value == env.name
                || e.value == crate::config::fleet::base_env(&env.name)
                || env.alias.as_deref() == Some(e.value.as_str())
        })
    {
        let names: Vec<&str> = condition
            .environments
            .iter()
            .map(|e| e.value.as_str())
            .collect();
        return Err(format!(
            "environment `{}` is not one of {}",
            env.name,
            names.join(", ")
        ));
    }
    if !condition.protection.is_empty() && !condition.protection.contains(&env.protection) {
        return Err(format!(
            "environment `{}` is {}",
            env.name,
            env.protection.as_str()
        ));
    }
    for var in &condition.env_set {
        if vars.non_empty(var).is_none() {
            return Err(format!("{var} is not set"));
        }
    }
    for var in &condition.env_not_set {
        if vars.non_empty(var).is_some() {
            return Err(format!("{var} is set"));
        }
    }
    for (var, expected) in &condition.env_equals {
        let actual = vars.get(var).unwrap_or("");
        if actual != expected {
            return Err(format!("{var} is not `{expected}`"));
        }
    }
    if !condition.platforms.is_empty()
        && !condition
            .platforms
            .iter()
            .any(|p| p.value == Platform::current())
    {
        return Err(format!("platform is {:?}", Platform::current()).to_lowercase());
    }
    Ok(())
}
