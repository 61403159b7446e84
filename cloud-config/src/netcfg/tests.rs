use std::net::IpAddr;

use serde_json::json;

use super::*;

/// The examples of cloud-init's v1 and v2 reference pages
/// (doc/examples/network-config-v1-*.yaml, network-config-format-v2.rst).
const V1_PHYSICAL_DHCP: &str = "
network:
  version: 1
  config:
  - type: physical
    name: eth0
    subnets:
      - type: dhcp
";

const V1_SUBNET_STATIC: &str = "
network:
  version: 1
  config:
    - type: physical
      name: interface0
      mac_address: '00:11:22:33:44:55'
      subnets:
        - type: static
          address: 192.168.23.14/27
          gateway: 192.168.23.1
          dns_nameservers:
            - 192.168.23.2
            - 8.8.8.8
          dns_search:
            - exemplary.maas
";

const V1_BONDED_PAIR: &str = "
network:
 version: 1
 config:
   - type: physical
     name: interface0
     mac_address: '00:11:22:33:44:55'
   - type: physical
     name: gbe0
     mac_address: 'cd:11:22:33:44:00'
   - type: physical
     name: gbe1
     mac_address: 'cd:11:22:33:44:02'
   - type: bond
     name: bond0
     bond_interfaces:
       - gbe0
       - gbe1
     params:
       bond-mode: active-backup
";

const V1_BONDED_VLAN: &str = "
network:
  version: 1
  config:
    - type: physical
      name: gbe0
      mac_address: 'cd:11:22:33:44:00'
    - type: physical
      name: gbe1
      mac_address: 'cd:11:22:33:44:02'
    - type: bond
      name: bond0
      bond_interfaces:
        - gbe0
        - gbe1
      params:
        bond-mode: 802.3ad
        bond-lacp_rate: fast
        bond-miimon: 100
        bond-xmit-hash-policy: layer3+4
    - type: vlan
      name: bond0.200
      vlan_link: bond0
      vlan_id: 200
      subnets:
        - type: dhcp4
";

const V1_BRIDGE: &str = "
network:
 version: 1
 config:
   - type: physical
     name: interface0
     mac_address: '00:11:22:33:44:55'
   - type: physical
     name: jumbo0
     mac_address: 'aa:11:22:33:44:55'
     mtu: 9000
   - type: bridge
     name: br0
     bridge_interfaces:
       - jumbo0
     params:
       bridge_ageing: 250
       bridge_stp: 'off'
";

const V1_MULTIPLE_VLAN: &str = "
network:
  version: 1
  config:
  - name: eth0
    mac_address: 'd4:be:d9:a8:49:13'
    mtu: 1500
    subnets:
    - address: 10.245.168.16/21
      dns_nameservers:
      - 10.245.168.2
      gateway: 10.245.168.1
      type: static
    type: physical
  - name: eth1
    mac_address: 'd4:be:d9:a8:49:15'
    mtu: 1500
    subnets:
    - address: 10.245.188.2/24
      dns_nameservers: []
      type: static
    type: physical
  - name: eth1.2667
    mtu: 1500
    subnets:
    - address: 10.245.184.2/24
      dns_nameservers: []
      type: static
    type: vlan
    vlan_id: 2667
    vlan_link: eth1
  - name: eth1.2668
    mtu: 1500
    subnets:
    - address: 10.245.185.1/24
      type: static
    type: vlan
    vlan_id: 2668
    vlan_link: eth1
  - address: [10.245.168.2]
    search:
    - dellstack
    type: nameserver
";

const V1_NAMESERVER: &str = "
network:
  version: 1
  config:
    - type: physical
      name: interface0
      mac_address: '00:11:22:33:44:55'
      subnets:
         - type: static
           address: 192.168.23.14/27
           gateway: 192.168.23.1
    - type: nameserver
      interface: interface0
      address:
        - 192.168.23.2
        - 8.8.8.8
      search:
        - exemplary
";

const V1_ROUTES: &str = "
network:
  version: 1
  config:
    - type: physical
      name: interface0
      mac_address: '00:11:22:33:44:55'
      subnets:
        - type: dhcp
          metric: 200
        - type: static
          address: 10.184.225.122
          netmask: 255.255.255.252
          routes:
            - gateway: 10.184.225.121
              netmask: 255.240.0.0
              destination: 10.176.0.0
            - gateway: 10.184.225.121
              netmask: 255.240.0.0
              destination: 10.208.0.0
    - type: physical
      name: eth1
      subnets:
        - type: static
          address: 192.168.23.14/24
        - type: static6
          address: fd00::14/64
    - type: route
      destination: 192.168.24.0/24
      gateway: 192.168.23.1
      metric: 3
    - type: route
      destination: default
      gateway: fd00::1
    - type: route
      destination: 192.168.25.0/24
      gateway: 172.16.0.1
";

const V2_DHCP: &str = "
network:
  version: 2
  ethernets:
    eno1:
      dhcp4: true
";

const V2_COMPLEX: &str = "
network:
  version: 2
  ethernets:
    id0:
      match:
        macaddress: '00:11:22:33:44:55'
      wakeonlan: true
      dhcp4: true
      addresses:
        - 192.168.14.2/24
        - 2001:1::1/64
      gateway4: 192.168.14.1
      gateway6: 2001:1::2
      nameservers:
        search: [foo.local, bar.local]
        addresses: [8.8.8.8]
      routes:
        - to: 192.0.2.0/24
          via: 11.0.0.1
          metric: 3
    lom:
      match:
        driver: ixgbe
      set-name: lom1
      dhcp6: true
    switchports:
      match:
        name: enp2*
      mtu: 1280
  bonds:
    bond0:
      interfaces: [id0, lom]
  bridges:
    br0:
      interfaces: [wlp1s0, switchports]
      dhcp4: true
  vlans:
    en-intra:
      id: 1
      link: id0
      dhcp4: yes
";

const V2_BOND: &str = "
version: 2
ethernets:
  eth0:
    match: {macaddress: '52:54:00:00:00:01'}
  eth1: {}
bonds:
  bond0:
    interfaces: [eth0, eth1]
    addresses: [10.0.0.5/24]
    routes:
      - {to: default, via: 10.0.0.1}
      - {to: '::/0', via: 'fd00::1', metric: 10}
    parameters:
      mode: 802.3ad
      mii-monitor-interval: 1s
      lacp-rate: fast
      transmit-hash-policy: layer3+4
      up-delay: 200ms
      down-delay: 200
      all-slaves-active: true
      arp-ip-targets: [10.0.0.1, 10.0.0.2]
      primary: eth1
      stp: true
";

const V2_VLAN: &str = "
version: '2'
ethernets:
  eth0: {dhcp4: false}
vlans:
  vlan100:
    id: 100
    link: eth0
    addresses: [10.100.0.5/24]
    gateway4: 10.100.0.1
";

const EXAMPLES: &[&str] = &[
    V1_PHYSICAL_DHCP,
    V1_SUBNET_STATIC,
    V1_BONDED_PAIR,
    V1_BONDED_VLAN,
    V1_BRIDGE,
    V1_MULTIPLE_VLAN,
    V1_NAMESERVER,
    V1_ROUTES,
    V2_DHCP,
    V2_COMPLEX,
    V2_BOND,
    V2_VLAN,
];

fn yaml(text: &str) -> Value {
    crate::node::parse(text).unwrap().to_json()
}

/// Translates, and checks that the result reads back.
fn ok(text: &str) -> Translated {
    let t = translate(&yaml(text)).unwrap_or_else(|e| panic!("{e}\n{text}"));
    reads_back(&t.network);
    t
}

/// `network` as `ros.network` in a document is accepted by our own schema, without
/// warnings, and reads back equal.
fn reads_back(network: &Network) {
    let doc = json!({"ros": {"network": serde_json::to_value(network).unwrap()}});
    let v = crate::parse_document("t", &serde_json::to_string_pretty(&doc).unwrap())
        .unwrap_or_else(|e| panic!("{e}\n{doc:#}"));
    assert_eq!(v.warnings, [], "{doc:#}");
    assert_eq!(
        v.config.ros.and_then(|r| r.network).as_ref(),
        Some(network),
        "{doc:#}"
    );
}

fn err(text: &str) -> String {
    translate(&yaml(text)).unwrap_err()
}

fn entry<'a>(t: &'a Translated, key: &str) -> &'a Interface {
    let all = t.network.interfaces.as_ref().expect("interfaces");
    all.get(key)
        .unwrap_or_else(|| panic!("no {key} in {:?}", all.keys()))
}

fn cidrs(list: &[&str]) -> Option<Vec<Cidr>> {
    Some(list.iter().map(|s| Cidr::parse(s).unwrap()).collect())
}

fn name(s: &str) -> IfName {
    IfName::parse(s).unwrap()
}

fn ips(list: &[&str]) -> Option<Vec<IpAddr>> {
    Some(list.iter().map(|s| s.parse().unwrap()).collect())
}

fn words(list: &[&str]) -> Option<Vec<SingleLine>> {
    Some(list.iter().map(|s| SingleLine::parse(s).unwrap()).collect())
}

fn opts(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, SingleLine>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SingleLine::parse(v).unwrap()))
            .collect(),
    )
}

fn route(to: &str, via: Option<&str>, metric: Option<u32>) -> Route {
    Route {
        to: crate::network::parse_destination(to).unwrap(),
        via: via.map(|v| v.parse().unwrap()),
        metric,
    }
}

#[test]
fn translations_validate() {
    for text in EXAMPLES {
        ok(text);
    }
}

/// Every value of every example replaced by values of other shapes: the translation never
/// panics, and whatever it accepts, our schema accepts.
#[test]
fn mutated_examples_translate_or_fail_cleanly() {
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                pointers(
                    v,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                )
            }),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
            _ => {}
        }
        out.push(at);
    }
    let replacements = [
        json!(null),
        json!(0),
        json!(70000),
        json!(-1),
        json!(1.5),
        json!(true),
        json!(""),
        json!("x"),
        json!("eth0"),
        json!("10.0.0.1"),
        json!("fd00::1/64"),
        json!([]),
        json!(["eth0", 5]),
        json!({}),
        json!({"eth0": {}}),
    ];
    let mut accepted = 0;
    for text in EXAMPLES {
        let doc = yaml(text);
        let mut paths = Vec::new();
        pointers(&doc, String::new(), &mut paths);
        for path in paths {
            for r in &replacements {
                let mut d = doc.clone();
                match d.pointer_mut(&path) {
                    Some(slot) => *slot = r.clone(),
                    None => d = r.clone(),
                }
                if let Ok(t) = translate(&d) {
                    reads_back(&t.network);
                    accepted += 1;
                }
            }
        }
    }
    assert!(accepted > 100, "{accepted}");
}

#[test]
fn v1_physical_dhcp() {
    let t = ok(V1_PHYSICAL_DHCP);
    assert_eq!(
        t.network,
        Network {
            dns: None,
            interfaces: Some(BTreeMap::from([(
                "eth0".to_owned(),
                Interface {
                    dhcp: Some(true),
                    ..Interface::default()
                }
            )])),
        }
    );
    assert_eq!(t.warnings, Vec::<String>::new());
}

#[test]
fn v1_static_gateway_dns() {
    let t = ok(V1_SUBNET_STATIC);
    let i = entry(&t, "interface0");
    assert_eq!(
        i.match_,
        Some(Selector::Mac([0, 0x11, 0x22, 0x33, 0x44, 0x55]))
    );
    assert_eq!(i.addresses, cidrs(&["192.168.23.14/27"]));
    assert_eq!(i.gateway, Some("192.168.23.1".parse().unwrap()));
    assert_eq!(i.dhcp, None);
    let dns = t.network.dns.as_ref().unwrap();
    assert_eq!(dns.nameservers, ips(&["192.168.23.2", "8.8.8.8"]));
    assert_eq!(dns.search, words(&["exemplary.maas"]));
    assert_eq!(t.warnings, Vec::<String>::new());
}

#[test]
fn v1_bond_of_two_nics() {
    let t = ok(V1_BONDED_PAIR);
    let bond = entry(&t, "bond0");
    assert_eq!(bond.bond_opts, opts(&[("mode", "active-backup")]));
    for nic in ["gbe0", "gbe1"] {
        assert_eq!(entry(&t, nic).bond, Some(name("bond0")));
    }
    assert_eq!(entry(&t, "interface0").bond, None);
    assert_eq!(t.warnings, Vec::<String>::new());

    let t = ok(V1_BONDED_VLAN);
    assert_eq!(
        entry(&t, "bond0").bond_opts,
        opts(&[
            ("lacp_rate", "fast"),
            ("miimon", "100"),
            ("mode", "802.3ad"),
            ("xmit_hash_policy", "layer3+4"),
        ])
    );
    assert_eq!(
        entry(&t, "bond0").vlans,
        Some(vec![Vlan {
            id: 200,
            name: Some(name("bond0.200"))
        }])
    );
    assert_eq!(entry(&t, "bond0.200").dhcp, Some(true));
}

#[test]
fn v1_bond_without_params_is_still_a_bond() {
    let t = ok("
version: 1
config:
  - {type: bond, name: bond1, bond_interfaces: [eth9, eth8], params: {bond-use-carrier: 1, bond-frobnicate: 2}}
  - {type: physical, name: eth8, mac_address: '52:54:00:00:00:08'}
");
    assert_eq!(entry(&t, "bond1").bond_opts, opts(&[("use_carrier", "1")]));
    // Referred to before it is defined.
    let eth8 = entry(&t, "eth8");
    assert_eq!(eth8.bond, Some(name("bond1")));
    assert_eq!(eth8.match_, Some(Selector::Mac([0x52, 0x54, 0, 0, 0, 8])));
    // A member that is not defined is taken as an interface name, as cloud-init does.
    assert_eq!(entry(&t, "eth9").bond, Some(name("bond1")));
    assert_eq!(
        t.warnings,
        ["config[0].params.bond-frobnicate: not a bonding option ros knows; ignored"]
    );
}

#[test]
fn v1_bridge() {
    let t = ok(V1_BRIDGE);
    assert_eq!(entry(&t, "br0").bridge, Some(Bridge::Is(true)));
    let jumbo = entry(&t, "jumbo0");
    assert_eq!(jumbo.bridge, Some(Bridge::Port(name("br0"))));
    assert_eq!(jumbo.mtu, Some(9000));
    assert_eq!(
        t.warnings,
        [
            "network.config[2].params.bridge_ageing: bridge parameters are not supported; ignored",
            "network.config[2].params.bridge_stp: bridge parameters are not supported; ignored",
        ]
    );
}

#[test]
fn v1_vlans() {
    let t = ok(V1_MULTIPLE_VLAN);
    let eth1 = entry(&t, "eth1");
    assert_eq!(
        eth1.vlans,
        Some(vec![
            Vlan {
                id: 2667,
                name: Some(name("eth1.2667"))
            },
            Vlan {
                id: 2668,
                name: Some(name("eth1.2668"))
            },
        ])
    );
    let v = entry(&t, "eth1.2667");
    assert_eq!(v.addresses, cidrs(&["10.245.184.2/24"]));
    assert_eq!(v.mtu, Some(1500));
    assert_eq!(v.match_, None);
    let dns = t.network.dns.as_ref().unwrap();
    // Given twice (subnet and nameserver entry), kept once.
    assert_eq!(dns.nameservers, ips(&["10.245.168.2"]));
    assert_eq!(dns.search, words(&["dellstack"]));
    assert_eq!(t.warnings, Vec::<String>::new());
}

#[test]
fn v1_interface_nameserver_is_global() {
    let t = ok(V1_NAMESERVER);
    let dns = t.network.dns.as_ref().unwrap();
    assert_eq!(dns.nameservers, ips(&["192.168.23.2", "8.8.8.8"]));
    assert_eq!(dns.search, words(&["exemplary"]));
}

#[test]
fn v1_routes() {
    let t = ok(V1_ROUTES);
    let i = entry(&t, "interface0");
    assert_eq!(i.dhcp, Some(true));
    assert_eq!(i.addresses, cidrs(&["10.184.225.122/30"]));
    assert_eq!(
        i.routes,
        Some(vec![
            route("10.176.0.0/12", Some("10.184.225.121"), None),
            route("10.208.0.0/12", Some("10.184.225.121"), None),
        ])
    );
    // Global routes go to the interface on the gateway's subnet, of the gateway's family.
    assert_eq!(
        entry(&t, "eth1").routes,
        Some(vec![
            route("192.168.24.0/24", Some("192.168.23.1"), Some(3)),
            route("::/0", Some("fd00::1"), None),
        ])
    );
    assert_eq!(
        t.warnings,
        [
            "network.config[0].subnets[0].metric: not supported; ignored",
            "network.config[4]: no interface has a static address on the subnet of gateway 172.16.0.1; \
             skipped",
        ]
    );
}

#[test]
fn v1_netmasks_and_prefixes() {
    let t = ok("
version: 1
config:
  - type: physical
    name: eth0
    subnets:
      - {type: static, address: 10.0.0.5/255.255.0.0}
      - {type: static, address: 10.1.0.5, prefix: 20}
      - {type: static6, address: 'fd00::5', netmask: 'ffff:ffff:ffff:ffff::', gateway: 'fd00::1'}
      - {type: static, address: 10.2.0.5}
      - {type: static, address: 10.3.0.5/24, gateway: 10.3.0.1}
      - {type: manual, control: auto}
");
    let i = entry(&t, "eth0");
    assert_eq!(
        i.addresses,
        cidrs(&[
            "10.0.0.5/16",
            "10.1.0.5/20",
            "fd00::5/64",
            "10.2.0.5/24",
            "10.3.0.5/24"
        ])
    );
    assert_eq!(i.gateway_ipv6, Some("fd00::1".parse().unwrap()));
    assert_eq!(i.gateway, Some("10.3.0.1".parse().unwrap()));
    assert_eq!(
        t.warnings,
        ["config[0].subnets[3].address: no prefix or netmask; /24 assumed, as cloud-init does"]
    );
}

#[test]
fn v2_dhcp() {
    let t = ok(V2_DHCP);
    assert_eq!(entry(&t, "eno1").dhcp, Some(true));
    assert_eq!(t.warnings, Vec::<String>::new());
}

#[test]
fn v2_complex_example() {
    let t = ok(V2_COMPLEX);
    let id0 = entry(&t, "id0");
    assert_eq!(
        id0.match_,
        Some(Selector::Mac([0, 0x11, 0x22, 0x33, 0x44, 0x55]))
    );
    assert_eq!(id0.dhcp, Some(true));
    assert_eq!(id0.addresses, cidrs(&["192.168.14.2/24", "2001:1::1/64"]));
    assert_eq!(id0.gateway, Some("192.168.14.1".parse().unwrap()));
    assert_eq!(id0.gateway_ipv6, Some("2001:1::2".parse().unwrap()));
    assert_eq!(
        id0.routes,
        Some(vec![route("192.0.2.0/24", Some("11.0.0.1"), Some(3))])
    );
    assert_eq!(id0.bond, Some(name("bond0")));
    assert_eq!(
        id0.vlans,
        Some(vec![Vlan {
            id: 1,
            name: Some(name("en-intra"))
        }])
    );
    assert_eq!(entry(&t, "en-intra").dhcp, Some(true));
    let sw = entry(&t, "switchports");
    assert_eq!(sw.match_, Some(Selector::Name("enp2*".to_owned())));
    assert_eq!(sw.mtu, Some(1280));
    assert_eq!(sw.bridge, Some(Bridge::Port(name("br0"))));
    assert_eq!(entry(&t, "wlp1s0").bridge, Some(Bridge::Port(name("br0"))));
    let br0 = entry(&t, "br0");
    assert_eq!(br0.bridge, Some(Bridge::Is(true)));
    assert_eq!(br0.dhcp, Some(true));
    assert_eq!(entry(&t, "bond0").bond_opts, Some(BTreeMap::new()));
    // lom matches by driver only: skipped, and so is its place in bond0.
    assert!(!t.network.interfaces.as_ref().unwrap().contains_key("lom"));
    let dns = t.network.dns.as_ref().unwrap();
    assert_eq!(dns.nameservers, ips(&["8.8.8.8"]));
    assert_eq!(dns.search, words(&["foo.local", "bar.local"]));
    assert_eq!(
        t.warnings,
        [
            "network.ethernets.id0.wakeonlan: not supported; ignored",
            "network.ethernets.lom.match.driver: matching by driver is not supported; ignored",
            "network.ethernets.lom.match: selects no MAC address or name ros can match; entry \
             skipped",
            "network.bonds.bond0.interfaces[1]: \"lom\" was skipped; not linked",
            "network.bridges.br0.interfaces[0]: \"wlp1s0\" is not defined; taken as an interface \
             name",
        ]
    );
}

#[test]
fn v2_bond_parameters() {
    let t = ok(V2_BOND);
    let bond = entry(&t, "bond0");
    assert_eq!(
        bond.bond_opts,
        opts(&[
            ("all_slaves_active", "1"),
            ("arp_ip_target", "10.0.0.1,10.0.0.2"),
            ("downdelay", "200"),
            ("lacp_rate", "fast"),
            ("miimon", "1000"),
            ("mode", "802.3ad"),
            ("primary", "eth1"),
            ("updelay", "200"),
            ("xmit_hash_policy", "layer3+4"),
        ])
    );
    assert_eq!(bond.addresses, cidrs(&["10.0.0.5/24"]));
    assert_eq!(
        bond.routes,
        Some(vec![
            route("default", Some("10.0.0.1"), None),
            route("::/0", Some("fd00::1"), Some(10)),
        ])
    );
    assert_eq!(entry(&t, "eth0").bond, Some(name("bond0")));
    assert_eq!(entry(&t, "eth1").bond, Some(name("bond0")));
    assert_eq!(
        t.warnings,
        ["bonds.bond0.parameters.stp: not a bond parameter ros supports; ignored"]
    );

    // `primary` needs a name: an id matched by MAC has none ros can write.
    let t = ok("
version: 2
ethernets:
  nic: {match: {macaddress: '52:54:00:00:00:01'}}
bonds:
  bond0: {interfaces: [nic], parameters: {primary: nic, mii-monitor-interval: 1min}}
");
    assert_eq!(entry(&t, "bond0").bond_opts, Some(BTreeMap::new()));
    assert_eq!(
        t.warnings,
        [
            "bonds.bond0.parameters.mii-monitor-interval: \"1min\" is not a value for bonding \
             option miimon; ignored",
            "bonds.bond0.parameters.primary: \"nic\" has no fixed interface name to make \
             primary; ignored",
        ]
    );
}

#[test]
fn v2_bridge_parameters_warn() {
    let t = ok("
version: 2
ethernets:
  eth0: {}
bridges:
  br0:
    interfaces: [eth0]
    addresses: [10.1.0.1/24]
    parameters: {stp: false, forward-delay: 0}
");
    assert_eq!(entry(&t, "eth0").bridge, Some(Bridge::Port(name("br0"))));
    assert_eq!(entry(&t, "br0").addresses, cidrs(&["10.1.0.1/24"]));
    assert_eq!(
        t.warnings,
        [
            "bridges.br0.parameters.forward-delay: bridge parameters are not supported; ignored",
            "bridges.br0.parameters.stp: bridge parameters are not supported; ignored",
        ]
    );
}

#[test]
fn v2_vlan_and_string_version() {
    let t = ok(V2_VLAN);
    assert_eq!(
        entry(&t, "eth0"),
        &Interface {
            dhcp: Some(false),
            vlans: Some(vec![Vlan {
                id: 100,
                name: Some(name("vlan100"))
            }]),
            ..Interface::default()
        }
    );
    let v = entry(&t, "vlan100");
    assert_eq!(v.addresses, cidrs(&["10.100.0.5/24"]));
    assert_eq!(v.gateway, Some("10.100.0.1".parse().unwrap()));
    assert_eq!(t.warnings, Vec::<String>::new());
}

#[test]
fn wrapped_and_bare_forms_agree() {
    let wrapped = ok(V2_COMPLEX);
    let bare = V2_COMPLEX.replace("\n  ", "\n").replace("network:\n", "");
    let bare = ok(&bare);
    assert_eq!(wrapped.network, bare.network);
    assert!(
        bare.warnings[0].starts_with("ethernets.id0."),
        "{:?}",
        bare.warnings
    );

    let v1 = ok("network: {version: '1', config: [{type: physical, name: eth0}]}");
    assert_eq!(entry(&v1, "eth0"), &Interface::default());
}

#[test]
fn disabled_config_is_empty() {
    let t = ok("network: {config: disabled}");
    assert_eq!(t.network, Network::default());
    assert_eq!(
        t.warnings,
        ["network.config: network configuration is disabled; nothing to translate"]
    );
}

#[test]
fn unsupported_items_warn() {
    let t = ok("
version: 2
renderer: networkd
ethernets:
  eth0:
    match: {macaddress: '52:54:00:00:00:01', name: 'en*'}
    set-name: lan0
    dhcp4: true
    dhcp6: true
    accept-ra: false
    routes:
      - {to: 10.9.0.0/16, via: 10.0.0.1, table: 100}
      - {to: 10.8.0.0/16, type: blackhole}
      - {to: 10.7.0.0/16, via: 10.0.0.1, on-link: true}
wifis:
  wlan0: {dhcp4: true}
");
    let eth0 = entry(&t, "eth0");
    assert_eq!(eth0.match_, Some(Selector::Mac([0x52, 0x54, 0, 0, 0, 1])));
    assert_eq!(
        eth0.routes,
        Some(vec![route("10.7.0.0/16", Some("10.0.0.1"), None)])
    );
    assert_eq!(
        t.warnings,
        [
            "ethernets.eth0.match.name: ros matches by MAC or by name, not both; matching by MAC",
            "ethernets.eth0.accept-ra: IPv6 autoconfiguration options are not supported; ignored",
            "ethernets.eth0.dhcp6: DHCPv6 is not supported; skipped",
            "ethernets.eth0.routes[0].table: routes in other tables are not supported; route \
             skipped",
            "ethernets.eth0.routes[1].type: \"blackhole\" routes are not supported; route skipped",
            "ethernets.eth0.routes[2].on-link: not supported; ignored",
            "ethernets.eth0.set-name: renaming is not supported; the link keeps its kernel name \
             (\"lan0\" not applied)",
            "renderer: ros configures the network itself; ignored",
            "wifis: wifis are not supported; skipped",
        ]
    );

    let t = ok("
version: 1
config:
  - type: physical
    name: eth0
    accept-ra: true
    subnets:
      - {type: dhcp6}
      - {type: ipv6_slaac}
  - {type: infiniband, name: ib0}
  - {type: loopback, name: lo}
");
    assert_eq!(entry(&t, "eth0"), &Interface::default());
    assert_eq!(
        t.warnings,
        [
            "config[0].accept-ra: router advertisement options are not supported; ignored",
            "config[0].subnets[0].type: \"dhcp6\" is not supported (ros has no DHCPv6 or SLAAC \
             client); subnet skipped",
            "config[0].subnets[1].type: \"ipv6_slaac\" is not supported (ros has no DHCPv6 or \
             SLAAC client); subnet skipped",
            "config[1].type: \"infiniband\" is not supported; skipped",
            "config[2].type: lo is always brought up by ros; skipped",
        ]
    );
}

#[test]
fn errors_name_path_and_value() {
    let cases = [
        ("[1, 2]", "network-config: expected a map, got a list"),
        (
            "ethernets: {}",
            "network-config: version: missing; expected 1 or 2",
        ),
        (
            "network: {version: 3}",
            "network-config: network.version: expected 1 or 2, got number 3",
        ),
        (
            "version: 1\nconfig: {}",
            "network-config: config: expected a list, got a map",
        ),
        (
            "version: 1",
            "network-config: config: missing; expected a list",
        ),
        (
            "version: 2\nethernets:\n  eth0:\n    addresses: [10.0.0.4/24, 10.0.0.5]",
            "network-config: ethernets.eth0.addresses[1]: expected ADDRESS/PREFIX (10.0.0.5/24, \
             fd00::5/64), got \"10.0.0.5\"",
        ),
        (
            "version: 2\nethernets: {eth0: {gateway4: 'fd00::1'}}",
            "network-config: ethernets.eth0.gateway4: expected an IPv4 address, got \"fd00::1\"",
        ),
        (
            "version: 2\nethernets: {eth0: {routes: [{to: 10.0.0.0/8, via: 'fd00::1'}]}}",
            "network-config: ethernets.eth0.routes[0]: gateway fd00::1 and destination \
             10.0.0.0/8 are of different IP versions",
        ),
        (
            "version: 2\nethernets: {eth0: {}}\nvlans: {v: {id: 5000, link: eth0}}",
            "network-config: vlans.v.id: expected a VLAN id 1-4094, got number 5000",
        ),
        (
            "version: 2\nvlans: {v: {id: 5}}",
            "network-config: vlans.v.link: missing",
        ),
        (
            "version: 2\nethernets: {eth0: {mtu: 9}}",
            "network-config: ethernets.eth0.mtu: expected an MTU 68-65535, got number 9",
        ),
        (
            "version: 2\nethernets: {x: {match: {macaddress: 'zz'}}}",
            "network-config: ethernets.x.match.macaddress: expected a MAC address \
             xx:xx:xx:xx:xx:xx (quoted in YAML), got \"zz\"",
        ),
        (
            "version: 2\nethernets: {eth0: {}}\nbonds: {eth0: {}}",
            "network-config: ethernets.eth0: \"eth0\" is defined twice (first at bonds.eth0)",
        ),
        (
            "version: 2\nbonds: {a-very-long-bond-name: {}}",
            "network-config: bonds.a-very-long-bond-name: expected an interface name (1 to 15 \
             characters, no '/', ':' or spaces), got \"a-very-long-bond-name\"",
        ),
        (
            "version: 1\nconfig: [{type: physical}]",
            "network-config: config[0].name: missing",
        ),
        (
            "version: 1\nconfig: [{type: physical, name: eth0, subnets: [{type: static, \
             address: 10.0.0.5, netmask: 255.0.255.0}]}]",
            "network-config: config[0].subnets[0].netmask: expected a netmask of the address's \
             family, got \"255.0.255.0\"",
        ),
        (
            "version: 1\nconfig: [{type: physical, name: eth0, subnets: [{type: static, \
             address: 10.0.0.300/24}]}]",
            "network-config: config[0].subnets[0].address: expected ADDRESS or ADDRESS/PREFIX, \
             got \"10.0.0.300/24\"",
        ),
        (
            "version: 1\nconfig: [{type: vlan, name: v, vlan_link: eth0}]",
            "network-config: config[0].vlan_id: missing",
        ),
        (
            "version: 1\nconfig: [{type: nameserver, address: [1.1.1.1, dns.example]}]",
            "network-config: config[0].address[1]: expected an IP address, got \"dns.example\"",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), want, "{text}");
    }
}

#[test]
fn helpers() {
    assert_eq!(mask_prefix("255.255.255.0", false), Some(24));
    assert_eq!(mask_prefix("0.0.0.0", false), Some(0));
    assert_eq!(mask_prefix("255.255.255.255", false), Some(32));
    assert_eq!(mask_prefix("255.0.255.0", false), None);
    assert_eq!(mask_prefix("ffff:ffff::", true), Some(32));
    assert_eq!(mask_prefix("ffff:ffff::", false), None);
    assert_eq!(mask_prefix("33", false), None);
    assert_eq!(mask_prefix("64", true), Some(64));
    assert_eq!(millis("2s").as_deref(), Some("2000"));
    assert_eq!(millis("150ms").as_deref(), Some("150"));
    assert_eq!(millis("1.5s"), None);
    let net = Cidr::parse("10.1.2.3/16").unwrap();
    assert!(contains(&net, "10.1.200.1".parse().unwrap()));
    assert!(!contains(&net, "10.2.0.1".parse().unwrap()));
    assert!(!contains(&net, "fd00::1".parse().unwrap()));
}
