//! Merging config documents with the precedence of DESIGN.md §7.
//!
//! Layers, low to high: shipped defaults, `cloud-config.d/*` in name order, the user's
//! `cloud-config.yml`, the kernel command line. Maps merge key by key; scalars and lists
//! replace (a list in a higher layer is the whole list, so a user can remove an entry).
//! Layers are normalized JSON ([`crate::to_json`]) of validated documents: a document that
//! failed validation never reaches a merge.

use serde_json::Value;

/// Merges `over` into `base`: maps merge, anything else in `over` replaces.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The documents that make up the running config, by layer.
#[derive(Clone, Debug, Default)]
pub struct Layers {
    /// `/usr/share/ros/os-config.yml`.
    pub defaults: Option<Value>,
    /// `cloud-config.d/*`: (file name, document), in any order; merged sorted by name.
    pub dropins: Vec<(String, Value)>,
    /// `/var/lib/ros/conf/cloud-config.yml`.
    pub user: Option<Value>,
    /// Kernel command line overrides.
    pub cmdline: Option<Value>,
}

impl Layers {
    /// The merged document (an empty map when there are no layers).
    pub fn merged(&self) -> Value {
        let mut dropins: Vec<&(String, Value)> = self.dropins.iter().collect();
        dropins.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Value::Object(Default::default());
        let ordered = self
            .defaults
            .iter()
            .chain(dropins.into_iter().map(|(_, v)| v))
            .chain(self.user.iter())
            .chain(self.cmdline.iter());
        for layer in ordered {
            merge(&mut out, layer.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_scalars_and_lists_replace() {
        let mut a = json!({"ros": {"state": {"dev": "LABEL=A", "autoformat": ["/dev/sda"]}, "debug": false}, "runcmd": ["a", "b"]});
        merge(
            &mut a,
            json!({"ros": {"state": {"autoformat": ["/dev/vdb"]}, "debug": true}, "runcmd": ["c"]}),
        );
        assert_eq!(
            a,
            json!({"ros": {"state": {"dev": "LABEL=A", "autoformat": ["/dev/vdb"]}, "debug": true}, "runcmd": ["c"]})
        );
        // a scalar over a map replaces it, and a map over a scalar too
        let mut b = json!({"x": {"y": 1}});
        merge(&mut b, json!({"x": 2}));
        assert_eq!(b, json!({"x": 2}));
        merge(&mut b, json!({"x": {"z": 3}}));
        assert_eq!(b, json!({"x": {"z": 3}}));
    }

    #[test]
    fn precedence() {
        let layers = Layers {
            defaults: Some(
                json!({"hostname": "default", "ros": {"console": "default", "debug": false, "sysctl": {"a": "1"}}}),
            ),
            dropins: vec![
                (
                    "20-b.yml".into(),
                    json!({"hostname": "from-b", "ros": {"sysctl": {"b": "2"}}}),
                ),
                (
                    "10-a.yml".into(),
                    json!({"hostname": "from-a", "timezone": "UTC"}),
                ),
            ],
            user: Some(json!({"ros": {"console": "user"}})),
            cmdline: Some(json!({"ros": {"debug": true}})),
        };
        assert_eq!(
            layers.merged(),
            json!({"hostname": "from-b", "timezone": "UTC", "ros": {"console": "user", "debug": true, "sysctl": {"a": "1", "b": "2"}}})
        );
        assert_eq!(Layers::default().merged(), json!({}));
    }
}
