use super::*;

fn network(yaml: &str) -> Network {
    let v = ros_cloud_config::parse_document("test", yaml).unwrap();
    v.config.ros.unwrap().network.unwrap()
}

fn link(name: &str, mac: u8) -> Link {
    Link {
        name: name.into(),
        mac: Some([0x52, 0x54, 0, 0, 0, mac]),
        devtype: None,
    }
}

fn host() -> Vec<Link> {
    vec![
        Link {
            name: "lo".into(),
            mac: None,
            devtype: None,
        },
        link("eth0", 1),
        link("eth1", 2),
        link("eth2", 3),
        link("docker0", 9),
        link("vethabc", 8),
    ]
}

#[test]
fn the_most_specific_entry_wins() {
    let n = network(
        r#"
ros:
  network:
    interfaces:
      "eth*": {dhcp: true}
      mac=52:54:00:00:00:02: {addresses: [10.0.0.2/24]}
      eth2: {dhcp: false, mtu: 9000}
      "*": {mtu: 1400}
"#,
    );
    let p = plan(&n, &host());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let names: Vec<&str> = p.links.iter().map(|l| l.name.as_str()).collect();
    // lo and the engine's links are never selected by a glob.
    assert_eq!(names, ["eth0", "eth1", "eth2"]);
    let eth0 = p.get("eth0").unwrap();
    assert!(eth0.dhcp);
    assert_eq!(eth0.entry.as_deref(), Some("eth*"));
    let eth1 = p.get("eth1").unwrap();
    assert!(!eth1.dhcp);
    assert_eq!(eth1.addresses[0].to_string(), "10.0.0.2/24");
    let eth2 = p.get("eth2").unwrap();
    assert_eq!((eth2.dhcp, eth2.mtu), (false, Some(9000)));
}

#[test]
fn match_overrides_the_key() {
    let n = network(
        r#"
ros:
  network:
    interfaces:
      uplink: {match: "mac=52:54:00:00:00:03", dhcp: true}
"#,
    );
    let p = plan(&n, &host());
    assert_eq!(p.links.len(), 1);
    assert_eq!(p.links[0].name, "eth2");
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn bonds_bridges_and_vlans() {
    let n = network(
        r#"
ros:
  network:
    interfaces:
      bond0:
        bond_opts: {miimon: 100, mode: active-backup}
        addresses: [10.1.0.5/24]
        gateway: 10.1.0.1
        vlans: "30"
      eth0: {bond: bond0}
      eth1: {bond: bond0, dhcp: true}
      br0: {bridge: true, address: 10.2.0.1/24}
      eth2: {bridge: br0, vlans: "100,200:mgmt"}
      mgmt: {addresses: [10.3.0.2/24, "fd00::2/64"], gateway_ipv6: "fd00::1"}
"#,
    );
    let p = plan(&n, &host());
    let names: Vec<&str> = p.links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["bond0", "br0", "eth0", "eth1", "eth2", "eth2.100", "mgmt", "bond0.30"]
    );
    let bond = p.get("bond0").unwrap();
    assert_eq!(bond.create, Some(LinkKind::Bond));
    // The mode is set before anything else.
    assert_eq!(
        bond.bond_opts,
        [
            ("mode".to_string(), "active-backup".to_string()),
            ("miimon".to_string(), "100".to_string())
        ]
    );
    assert_eq!(bond.routes[0].via.unwrap().to_string(), "10.1.0.1");
    assert_eq!(bond.routes[0].to.prefix, 0);
    assert_eq!(p.get("eth0").unwrap().master.as_deref(), Some("bond0"));
    // A port's DHCP is dropped, and said.
    assert!(!p.get("eth1").unwrap().dhcp);
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains("eth1 is a port of bond0")));
    assert_eq!(p.get("br0").unwrap().create, Some(LinkKind::Bridge));
    assert_eq!(p.get("eth2").unwrap().master.as_deref(), Some("br0"));
    assert_eq!(
        p.get("mgmt").unwrap().create,
        Some(LinkKind::Vlan {
            parent: "eth2".into(),
            id: 200
        })
    );
    assert_eq!(p.get("mgmt").unwrap().addresses.len(), 2);
    assert_eq!(
        p.get("bond0.30").unwrap().create,
        Some(LinkKind::Vlan {
            parent: "bond0".into(),
            id: 30
        })
    );
}

#[test]
fn missing_links_are_warned_and_created_ones_are_not_globbed() {
    let n = network(
        r#"
ros:
  network:
    interfaces:
      eth9: {dhcp: true}
      "*": {dhcp: true}
      br0: {bridge: true}
"#,
    );
    let mut links = host();
    // br0 exists from an earlier run: it is the bridge, not a glob match.
    links.push(link("br0", 7));
    let p = plan(&n, &links);
    assert!(p.warnings.iter().any(|w| w.contains("no link named eth9")));
    assert!(!p.get("br0").unwrap().dhcp);
    assert!(p.get("eth0").unwrap().dhcp);
    assert!(p.get("docker0").is_none());
}

#[test]
fn no_interfaces_is_an_empty_plan() {
    let p = plan(&Network::default(), &host());
    assert!(p.links.is_empty());
    assert!(p.reaches_nothing());
}

#[test]
fn a_config_for_other_links_reaches_nothing() {
    let n = network(
        r#"
ros:
  network:
    interfaces:
      ens3: {dhcp: true}
      mac=52:54:00:99:99:99: {addresses: [10.0.0.9/24]}
      eth0: {mtu: 1400}
"#,
    );
    let p = plan(&n, &host());
    // eth0 is configured, but with neither an address nor DHCP.
    assert!(p.get("eth0").is_some());
    assert!(p.reaches_nothing());
    let n = network("ros:\n  network:\n    interfaces:\n      eth0: {dhcp: true}\n");
    assert!(!plan(&n, &host()).reaches_nothing());
}

#[test]
fn a_vlan_with_its_parents_mac_is_not_selected_by_it() {
    let n = network(
        r#"
ros:
  network:
    interfaces:
      mac=52:54:00:00:00:01: {dhcp: true, vlans: "42:vlan42"}
"#,
    );
    let mut links = host();
    // vlan42 exists from an earlier run and carries eth0's MAC.
    links.push(Link {
        name: "vlan42".into(),
        mac: Some([0x52, 0x54, 0, 0, 0, 1]),
        devtype: Some("vlan".into()),
    });
    let p = plan(&n, &links);
    assert!(p.get("eth0").unwrap().dhcp);
    let v = p.get("vlan42").unwrap();
    assert!(!v.dhcp);
    assert!(matches!(v.create, Some(LinkKind::Vlan { id: 42, .. })));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}
