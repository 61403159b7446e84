//! Capability sets: names as Docker writes them, and applying a set to the current process.

use std::collections::HashSet;

use caps::{CapSet, Capability};

/// Parses `CAP_CHOWN`, `chown` or `CHOWN`.
pub fn parse(name: &str) -> Option<Capability> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse().ok()
}

/// Every capability this kernel knows.
pub fn all_names() -> Vec<String> {
    caps::runtime::procfs_all_supported(None)
        .unwrap_or_else(|_| caps::all())
        .into_iter()
        .map(|c| c.to_string())
        .collect()
}

/// Limits the current process to `keep`: the bounding set loses everything else; for root
/// the effective and permitted sets become `keep`, for other users they are already empty
/// after `setuid`. Inheritable and ambient sets are cleared, as Docker does.
pub fn apply(keep: &[String], is_root: bool) -> Result<(), caps::errors::CapsError> {
    // A process cannot grant what it does not hold: when the engine itself runs with a
    // reduced set (inside another sandbox), privileged containers get what it has.
    let held = caps::read(None, CapSet::Permitted)?;
    let keep: HashSet<Capability> = keep
        .iter()
        .filter_map(|n| parse(n))
        .filter(|c| held.contains(c))
        .collect();
    let all = caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all());
    for cap in all.iter().filter(|c| !keep.contains(c)) {
        caps::drop(None, CapSet::Bounding, *cap)?;
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    if is_root {
        caps::set(None, CapSet::Effective, &keep)?;
        caps::set(None, CapSet::Permitted, &keep)?;
    }
    Ok(())
}

/// Computes the final set from Docker's `CapAdd`/`CapDrop` (each may say `ALL`).
pub fn compute(default: &[&str], add: &[String], drop: &[String]) -> Result<Vec<String>, String> {
    let mut set: Vec<String> = default.iter().map(|s| s.to_string()).collect();
    let norm = |n: &str| -> Result<String, String> {
        parse(n)
            .map(|c| c.to_string())
            .ok_or_else(|| format!("unknown capability: {n:?}"))
    };
    if drop.iter().any(|d| d.eq_ignore_ascii_case("ALL")) {
        set.clear();
    } else {
        for d in drop {
            let d = norm(d)?;
            set.retain(|c| *c != d);
        }
    }
    if add.iter().any(|a| a.eq_ignore_ascii_case("ALL")) {
        return Ok(all_names());
    }
    for a in add {
        let a = norm(a)?;
        if !set.contains(&a) {
            set.push(a);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_drop() {
        let d = ["CAP_CHOWN", "CAP_KILL"];
        assert_eq!(
            compute(&d, &["net_admin".into()], &["KILL".into()]).unwrap(),
            ["CAP_CHOWN", "CAP_NET_ADMIN"]
        );
        assert!(compute(&d, &[], &["ALL".into()]).unwrap().is_empty());
        assert!(compute(&d, &["bogus".into()], &[]).is_err());
    }
}
