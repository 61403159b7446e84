//! Start order: which services must be up before which, from `io.ros.after`,
//! `io.ros.before` and the containers a service needs (`volumes_from`, `container:NAME`
//! namespaces). A reference to an unknown service and a dependency cycle are errors of the
//! services involved, naming the reference or the cycle; they do not stop the rest.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::model::{labels, Service};

/// The dependency graph: for each service, the services that must be up before it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    pub deps: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// `names` and everything they depend on, transitively.
    pub fn closure<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut queue: VecDeque<String> = names.into_iter().cloned().collect();
        while let Some(n) = queue.pop_front() {
            if out.insert(n.clone()) {
                if let Some(ds) = self.deps.get(&n) {
                    queue.extend(ds.iter().cloned());
                }
            }
        }
        out
    }

    /// Every service, each after what it depends on (ties by name); services in a cycle
    /// come last, by name.
    pub fn topological(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut placed: BTreeSet<&str> = BTreeSet::new();
        loop {
            let ready: Vec<&String> = self
                .deps
                .iter()
                .filter(|(n, ds)| {
                    !placed.contains(n.as_str())
                        && ds
                            .iter()
                            .all(|d| placed.contains(d.as_str()) || !self.deps.contains_key(d))
                })
                .map(|(n, _)| n)
                .collect();
            if ready.is_empty() {
                break;
            }
            for n in ready {
                placed.insert(n);
                out.push(n.clone());
            }
        }
        out.extend(
            self.deps
                .keys()
                .filter(|n| !placed.contains(n.as_str()))
                .cloned(),
        );
        out
    }

    /// The services that depend on `name` directly.
    pub fn dependents(&self, name: &str) -> BTreeSet<String> {
        self.deps
            .iter()
            .filter(|(_, ds)| ds.contains(name))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// Builds the graph of `services` (`None`: a service whose definition is invalid, known by
/// name only). References to `optional` services (catalog entries not enabled) are ignored.
/// Returns the graph and, per service, why it cannot be ordered.
pub fn graph(
    services: &BTreeMap<String, Option<&Service>>,
    optional: &BTreeSet<String>,
) -> (Graph, BTreeMap<String, String>) {
    let mut g = Graph::default();
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in services.keys() {
        g.deps.entry(name.clone()).or_default();
    }
    for (name, svc) in services {
        let Some(svc) = svc else { continue };
        for (label, targets, before) in [
            (labels::AFTER, svc.after(), false),
            (labels::BEFORE, svc.before(), true),
        ] {
            for t in targets {
                if t == *name {
                    errors
                        .entry(name.clone())
                        .or_default()
                        .push(format!("{label} names the service itself"));
                } else if services.contains_key(&t) {
                    let (later, first) = if before { (&t, name) } else { (name, &t) };
                    g.deps
                        .entry(later.clone())
                        .or_default()
                        .insert(first.clone());
                } else if !optional.contains(&t) {
                    errors
                        .entry(name.clone())
                        .or_default()
                        .push(format!("{label} names unknown service {t:?}"));
                }
            }
        }
        for r in svc.references() {
            if r != *name && services.contains_key(&r) {
                g.deps.entry(name.clone()).or_default().insert(r);
            }
        }
    }
    for (name, cycle) in cycles(&g) {
        errors.entry(name).or_default().push(format!(
            "dependency cycle: {} (each starts after the next)",
            cycle.join(" → ")
        ));
    }
    let errors = errors.into_iter().map(|(k, v)| (k, v.join("; "))).collect();
    (g, errors)
}

/// Every service on a cycle, with the shortest cycle through it (`a, b, a`).
fn cycles(g: &Graph) -> BTreeMap<String, Vec<String>> {
    // Kahn: what cannot be peeled off is on a cycle or depends on one.
    let mut left: BTreeMap<&String, BTreeSet<&String>> = g
        .deps
        .iter()
        .map(|(n, ds)| (n, ds.iter().filter(|d| g.deps.contains_key(*d)).collect()))
        .collect();
    loop {
        let free: Vec<&String> = left
            .iter()
            .filter(|(_, ds)| ds.is_empty())
            .map(|(n, _)| *n)
            .collect();
        if free.is_empty() {
            break;
        }
        for n in &free {
            left.remove(n);
        }
        for ds in left.values_mut() {
            for n in &free {
                ds.remove(n);
            }
        }
    }
    let mut out = BTreeMap::new();
    for start in left.keys() {
        // Shortest path from `start` back to itself, by BFS over the remaining edges.
        let mut prev: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue: VecDeque<&String> = VecDeque::from([*start]);
        let mut found = false;
        while let Some(n) = queue.pop_front() {
            for d in left.get(n).into_iter().flatten() {
                if d == start {
                    prev.insert(*start, n);
                    found = true;
                    break;
                }
                if !prev.contains_key(d) {
                    prev.insert(d, n);
                    queue.push_back(d);
                }
            }
            if found {
                break;
            }
        }
        if !found {
            continue;
        }
        let mut path = vec![(*start).clone()];
        let mut cur = prev[start];
        while cur != *start {
            path.push(cur.clone());
            cur = prev[cur];
        }
        path.push((*start).clone());
        // `prev` walks the path backwards: start ← … ← start.
        path.reverse();
        out.insert((*start).clone(), path);
    }
    out
}

#[cfg(test)]
mod topo_tests {
    use super::*;

    #[test]
    fn topological_puts_dependencies_first() {
        let mut g = Graph::default();
        g.deps
            .insert("docker".into(), ["network".to_string()].into());
        g.deps.insert("network".into(), ["udev".to_string()].into());
        g.deps.insert("udev".into(), BTreeSet::new());
        g.deps.insert("a".into(), ["b".to_string()].into());
        g.deps.insert("b".into(), ["a".to_string()].into());
        assert_eq!(g.topological(), ["udev", "network", "docker", "a", "b"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceDef;
    use serde_json::json;

    fn svc(name: &str, labels: serde_json::Value) -> Service {
        let def = ServiceDef::parse(&json!({"image": "x", "labels": labels})).unwrap();
        Service::from_def(name, def).unwrap()
    }

    fn build(list: &[Service]) -> (Graph, BTreeMap<String, String>) {
        let map = list.iter().map(|s| (s.name.clone(), Some(s))).collect();
        graph(&map, &BTreeSet::new())
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn after_and_before_edges() {
        let (g, errors) = build(&[
            svc("aa", json!({})),
            svc("bb", json!({"io.ros.after": "aa"})),
            svc("cc", json!({"io.ros.before": "dd", "io.ros.after": "aa"})),
            svc("dd", json!({"io.ros.after": "bb"})),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(g.deps["dd"], set(&["bb", "cc"]));
        assert_eq!(
            g.closure([&"dd".to_string()]),
            set(&["aa", "bb", "cc", "dd"])
        );
        assert_eq!(g.dependents("aa"), set(&["bb", "cc"]));
    }

    #[test]
    fn cycles_are_named() {
        let (_, errors) = build(&[
            svc("xx", json!({"io.ros.after": "yy"})),
            svc("yy", json!({"io.ros.after": "zz"})),
            svc("zz", json!({"io.ros.after": "xx"})),
            svc("ww", json!({"io.ros.after": "xx"})),
            svc("ok", json!({})),
        ]);
        assert_eq!(
            errors.keys().cloned().collect::<BTreeSet<_>>(),
            set(&["xx", "yy", "zz"])
        );
        assert!(errors["xx"].contains("xx → yy → zz → xx"), "{errors:?}");
    }

    #[test]
    fn unknown_and_optional_references() {
        let a = svc("aa", json!({"io.ros.after": "nope, opt"}));
        let map = BTreeMap::from([("aa".to_string(), Some(&a))]);
        let (_, errors) = graph(&map, &set(&["opt"]));
        assert_eq!(errors["aa"], "io.ros.after names unknown service \"nope\"");
    }

    #[test]
    fn references_order_like_after() {
        let def = ServiceDef::parse(
            &json!({"image": "x", "volumes_from": ["data"], "net": "container:netns"}),
        )
        .unwrap();
        let s = Service::from_def("app", def).unwrap();
        let (g, errors) = build(&[s, svc("data", json!({})), svc("netns", json!({}))]);
        assert!(errors.is_empty());
        assert_eq!(g.deps["app"], set(&["data", "netns"]));
    }
}
