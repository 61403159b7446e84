//! Kernel command line overrides.

use ros_cloud_config::cmdline::{self, split_args};
use serde_json::json;

#[test]
fn splits_like_the_kernel() {
    assert_eq!(
        split_args(r#"root=/dev/sda1  ros.x="a b" "ros.y=c d" quiet"#),
        vec![
            (1, "root=/dev/sda1".to_owned()),
            (17, "ros.x=a b".to_owned()),
            (29, "ros.y=c d".to_owned()),
            (41, "quiet".to_owned()),
        ]
    );
}

#[test]
fn design_examples() {
    let c = cmdline::parse(
        "BOOT_IMAGE=/vmlinuz console=ttyS0 ros.state.dev=LABEL=ROS_STATE \
         ros.state.autoformat=[/dev/vdb] ros.cloud_init.datasources=[nocloud,ec2] ros.debug \
         rancher.recovery ros.cloud_config_url=http://10.0.0.1/cc.yml ros.boot_timeout=90\n",
    );
    assert_eq!(c.errors, vec![]);
    assert_eq!(c.warnings, vec![]);
    assert_eq!(
        c.value,
        json!({"ros": {
            "state": {"dev": "LABEL=ROS_STATE", "autoformat": ["/dev/vdb"]},
            "cloud_init": {"datasources": ["nocloud", "ec2"]},
            "debug": true,
            "recovery": true,
            "cloud_config_url": "http://10.0.0.1/cc.yml",
            "boot_timeout": 90,
        }})
    );
}

#[test]
fn quoting_later_wins_and_double_dash() {
    let c = cmdline::parse(
        r#"ros.environment.GREETING="hello world" ros.debug=false ros.debug=yes -- ros.console=evil"#,
    );
    assert_eq!(c.errors, vec![]);
    assert_eq!(
        c.value,
        json!({"ros": {"environment": {"GREETING": "hello world"}, "debug": true}})
    );
}

#[test]
fn values_that_are_not_yaml_are_strings() {
    let c = cmdline::parse("ros.console=[broken ros.environment.A= ros.environment.B=#x");
    assert_eq!(c.errors, vec![]);
    assert_eq!(
        c.value,
        json!({"ros": {"console": "[broken", "environment": {"A": "", "B": "#x"}}})
    );
}

#[test]
fn bad_overrides_are_reported_and_left_out() {
    let c = cmdline::parse("quiet ros.debug=maybe ros.console=ubuntu ros.consle=x ros..y=1");
    assert_eq!(c.value, json!({"ros": {"console": "ubuntu"}}));
    let errors: Vec<String> = c.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        vec![r#"cmdline:1:17: ros.debug: expected a boolean, got "maybe""#]
    );
    let warnings: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            r#"cmdline:1:42: warning: ros.consle: unknown key (did you mean "ros.console"?)"#,
            "cmdline:1:55: warning: ros..y: malformed key, ignored",
        ]
    );
}

#[test]
fn value_positions_point_into_the_command_line() {
    let c = cmdline::parse("ro ros.cloud_init.datasources=[nocloud,7]");
    let errors: Vec<String> = c.errors.iter().map(ToString::to_string).collect();
    // column 40 is the `7`
    assert_eq!(
        errors,
        vec!["cmdline:1:40: ros.cloud_init.datasources[1]: expected a string, got integer 7"]
    );
}

#[test]
fn no_overrides() {
    let c = cmdline::parse("");
    assert_eq!(c.value, json!({}));
    let c = cmdline::parse("root=/dev/sda ros quiet rosy.x=1");
    assert_eq!(c.value, json!({}));
}
