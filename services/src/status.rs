//! What `ros service list` and `ros service ps` show: configured and catalog services with
//! whether they are enabled and how their containers are, as aligned text tables.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::ServicesConfig;
use crate::engine::ContainerInfo;

/// One line of `ros service list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListRow {
    pub service: String,
    /// `enabled` or `disabled`.
    pub enabled: &'static str,
    /// The container's state (`running`, `exited`, `created`), `-` without one, `unknown`
    /// when the engine could not be asked.
    pub state: String,
    /// Where the service is defined: a file, or `catalog:<entry>`.
    pub source: String,
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn state_of(containers: Option<&[ContainerInfo]>, name: &str) -> String {
    match containers {
        None => "unknown".into(),
        Some(cs) => cs
            .iter()
            .find(|c| c.service == name)
            .map(|c| c.state.clone())
            .unwrap_or_else(|| "-".into()),
    }
}

/// Every configured service and every catalog service, sorted by name. `containers` is
/// `None` when the engine could not be reached.
pub fn list_rows(cfg: &ServicesConfig, containers: Option<&[ContainerInfo]>) -> Vec<ListRow> {
    let mut rows: BTreeMap<String, ListRow> = BTreeMap::new();
    for (name, e) in &cfg.services {
        let source = match (&e.catalog, e.sources.last()) {
            (Some(entry), _) => format!("catalog:{entry}"),
            (None, Some(f)) => file_name(f),
            (None, None) => "-".into(),
        };
        let state = if e.service.is_err() {
            "invalid".to_string()
        } else {
            state_of(containers, name)
        };
        rows.insert(
            name.clone(),
            ListRow {
                service: name.clone(),
                enabled: "enabled",
                state,
                source,
            },
        );
    }
    for entry in cfg.catalog.values() {
        let names = if entry.services.is_empty() {
            vec![entry.name.clone()]
        } else {
            entry.services.clone()
        };
        for name in names {
            rows.entry(name.clone()).or_insert_with(|| ListRow {
                enabled: if entry.enabled { "enabled" } else { "disabled" },
                state: if entry.valid {
                    state_of(containers, &name)
                } else {
                    "invalid".into()
                },
                service: name,
                source: format!("catalog:{}", entry.name),
            });
        }
    }
    rows.into_values().collect()
}

/// The `list` table.
pub fn list_table(rows: &[ListRow]) -> String {
    let mut t = vec![vec![
        "SERVICE".to_string(),
        "ENABLED".into(),
        "STATE".into(),
        "SOURCE".into(),
    ]];
    for r in rows {
        t.push(vec![
            r.service.clone(),
            r.enabled.to_string(),
            r.state.clone(),
            r.source.clone(),
        ]);
    }
    table(&t)
}

/// The `ps` table of service containers, sorted by service.
pub fn ps_table(containers: &[ContainerInfo]) -> String {
    let mut sorted: Vec<&ContainerInfo> = containers.iter().collect();
    sorted.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
    let mut t = vec![vec![
        "SERVICE".to_string(),
        "CONTAINER ID".into(),
        "IMAGE".into(),
        "STATE".into(),
        "STATUS".into(),
    ]];
    for c in sorted {
        t.push(vec![
            c.service.clone(),
            c.id.chars().take(12).collect(),
            c.image.clone(),
            c.state.clone(),
            c.status.clone(),
        ]);
    }
    table(&t)
}

/// Left-aligned columns, three spaces apart, no trailing spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < r.len() {
                let pad = widths[i] - cell.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let t = table(&[
            vec!["A".into(), "BB".into(), "C".into()],
            vec!["long".into(), "x".into(), "".into()],
        ]);
        assert_eq!(t, "A      BB   C\nlong   x\n");
    }
}
