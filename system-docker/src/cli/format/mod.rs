//! `--format` templates: the part of Go's `text/template` that docker users write
//! (`{{.Field.Sub}}`, `{{json .}}`, `{{index .Labels "k"}}`, `{{range}}`, `{{if}}`, `{{with}}`,
//! pipes, variables, docker's extra functions), evaluated over JSON values, plus the
//! `table`/`json` list formats of `ps` and `images`.

mod exec;
mod functions;
mod parse;

use serde_json::Value;

use super::tabwriter;
use exec::Exec;
use parse::Node;

/// A template that did not parse or could not be executed; shown like Go's errors, the
/// command adds docker's wording around it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("template: :1: {0}")]
    Parse(String),
    #[error("template: :1: {0}")]
    Exec(String),
}

impl FormatError {
    /// docker's wording for the list formats of `ps` and `images`.
    pub fn list_message(&self) -> String {
        match self {
            FormatError::Parse(_) => format!("failed to parse template: {self}"),
            FormatError::Exec(_) => format!("failed to execute template: {self}"),
        }
    }

    /// docker's wording and exit status for `inspect`-style `--format` errors (64, EX_USAGE,
    /// for a template that does not parse).
    pub fn inspect_status(&self) -> (i32, String) {
        let code = match self {
            FormatError::Parse(_) => 64,
            FormatError::Exec(_) => 1,
        };
        (code, format!("template parsing error: {self}"))
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError::Parse(msg.into()))
}

fn exec_err<T>(msg: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError::Exec(msg.into()))
}

/// What a field that does not exist in the data becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// An error, as for docker's typed rows (`ps`, `images`).
    Error,
    /// `<no value>`, as for raw API JSON (`inspect`).
    NoValue,
}

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    /// Parses `src`.
    pub fn parse(src: &str) -> Result<Self, FormatError> {
        Ok(Self {
            nodes: parse::parse(src)?,
        })
    }

    /// Executes the template over `data`.
    pub fn render(&self, data: &Value, missing: Missing) -> Result<String, FormatError> {
        Exec::new(data, missing, false).render(&self.nodes, data)
    }

    /// Executes the template over a header row: fields resolve to column titles (missing
    /// ones to nothing) and functions pass their first argument through, as docker's
    /// header functions do.
    pub fn render_header(&self, header: &Value) -> Result<String, FormatError> {
        Exec::new(header, Missing::NoValue, true).render(&self.nodes, header)
    }
}

/// A list format of `ps`/`images`: `table …` (header row, aligned columns), `json`
/// (`{{json .}}`) or a plain template, with `\t` and `\n` escapes expanded.
#[derive(Debug)]
pub struct ListFormat {
    table: bool,
    template: Template,
}

impl ListFormat {
    /// Parses a `--format` value; `default_table` is used for an empty value or bare `table`.
    pub fn parse(format: &str, default_table: &str) -> Result<Self, FormatError> {
        let format = if format.is_empty() || format.trim() == "table" {
            default_table
        } else {
            format
        };
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) => (true, rest),
            None if format == "json" => (false, "{{json .}}"),
            None => (false, format),
        };
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        Ok(Self {
            table,
            template: Template::parse(&body)?,
        })
    }

    /// Renders `rows`; `header` maps field names to column titles.
    pub fn render(&self, rows: &[Value], header: &Value) -> Result<String, FormatError> {
        let mut out = String::new();
        if self.table {
            out.push_str(&self.template.render_header(header)?);
            out.push('\n');
        }
        for row in rows {
            out.push_str(&self.template.render(row, Missing::Error)?);
            out.push('\n');
        }
        Ok(if self.table {
            tabwriter::align(&out, 10, 3)
        } else {
            out
        })
    }
}

/// A value as Go's template engine prints it: strings bare, lists `[a b]`, maps
/// `map[k:v]`, missing or null values `<no value>`.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(to_text).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", to_text(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// `s` in double quotes with Go's `strconv.Quote` escapes.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(src: &str, data: &Value) -> String {
        Template::parse(src)
            .unwrap()
            .render(data, Missing::NoValue)
            .unwrap()
    }

    fn inspect() -> Value {
        json!({
            "Id": "abc123",
            "State": {"Status": "running", "Pid": 42, "Running": true},
            "Config": {
                "Image": "busybox",
                "Labels": {"com.example": "x", "io.ros.scope": "system"},
                "Cmd": ["sleep", "10"],
                "Env": null
            },
            "Mounts": [{"Source": "/a", "Destination": "/b"}, {"Source": "/c", "Destination": "/d"}]
        })
    }

    #[test]
    fn fields_and_nesting() {
        let d = inspect();
        assert_eq!(render("{{.State.Status}}", &d), "running");
        assert_eq!(render("{{.Id}} {{.ID}}", &d), "abc123 abc123");
        assert_eq!(render("{{.Config.Image}}", &d), "busybox");
        assert_eq!(render("pid={{.State.Pid}}", &d), "pid=42");
        assert_eq!(render("{{.Config.Cmd}}", &d), "[sleep 10]");
        assert_eq!(render("{{.Nope}}", &d), "<no value>");
        assert_eq!(render("{{.Config.Env}}", &d), "[]");
        assert_eq!(render("{{json .Config.Env}}", &d), "null");
        assert_eq!(render("{{.Config.Nope.Deeper}}", &d), "<no value>");
        assert_eq!(render("{{.}}", &json!("x")), "x");
    }

    #[test]
    fn json_function() {
        let d = inspect();
        assert_eq!(
            render("{{json .State}}", &d),
            r#"{"Pid":42,"Running":true,"Status":"running"}"#
        );
        assert_eq!(render("{{json .Config.Cmd}}", &d), r#"["sleep","10"]"#);
        assert_eq!(
            render("{{.State | json}}", &d),
            r#"{"Pid":42,"Running":true,"Status":"running"}"#
        );
        assert_eq!(render("{{json .Config.Env}}", &d), "null");
    }

    #[test]
    fn functions() {
        let d = inspect();
        assert_eq!(render(r#"{{index .Config.Labels "com.example"}}"#, &d), "x");
        assert_eq!(
            render(r#"{{index .Config.Labels "missing"}}"#, &d),
            "<no value>"
        );
        assert_eq!(render("{{upper .State.Status}}", &d), "RUNNING");
        assert_eq!(render("{{.State.Status | upper}}", &d), "RUNNING");
        assert_eq!(render("{{lower \"ABC\"}}", &d), "abc");
        assert_eq!(render(r#"{{join .Config.Cmd " "}}"#, &d), "sleep 10");
        assert_eq!(render("{{len .Mounts}}", &d), "2");
        assert_eq!(
            render(r#"{{printf "%s-%d" .Config.Image .State.Pid}}"#, &d),
            "busybox-42"
        );
        assert_eq!(render(r#"{{title "hello world"}}"#, &d), "Hello World");
        assert_eq!(render(r#"{{truncate .Id 3}}"#, &d), "abc");
        assert_eq!(render(r#"{{index (split "a:b" ":") 1}}"#, &d), "b");
    }

    #[test]
    fn control_structures() {
        let d = inspect();
        assert_eq!(
            render("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", &d),
            "/a:/b /c:/d "
        );
        assert_eq!(
            render(
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
                &d
            ),
            "com.example=x;io.ros.scope=system;"
        );
        assert_eq!(render("{{range $i, $m := .Mounts}}{{$i}}{{end}}", &d), "01");
        assert_eq!(
            render("{{range .Config.Env}}x{{else}}none{{end}}", &d),
            "none"
        );
        assert_eq!(
            render("{{if .State.Running}}up{{else}}down{{end}}", &d),
            "up"
        );
        assert_eq!(
            render(
                r#"{{if eq .State.Status "exited"}}e{{else if eq .State.Status "running"}}r{{end}}"#,
                &d
            ),
            "r"
        );
        assert_eq!(render("{{with .State}}{{.Pid}}{{end}}", &d), "42");
        assert_eq!(render("{{with .Nope}}x{{else}}y{{end}}", &d), "y");
        assert_eq!(
            render("{{$s := .State.Status}}{{$s}}/{{$.Id}}", &d),
            "running/abc123"
        );
        assert_eq!(render("a {{- \" b \" -}} c", &d), "a b c");
        assert_eq!(render("{{/* note */}}x", &d), "x");
        assert_eq!(
            render("{{if and .State.Running (not .Nope)}}ok{{end}}", &d),
            "ok"
        );
    }

    #[test]
    fn errors() {
        assert!(Template::parse("{{.A").is_err());
        assert!(Template::parse("{{if .A}}x").is_err());
        assert!(Template::parse("{{end}}").is_err());
        assert_eq!(
            Template::parse("{{nosuch .A}}").unwrap_err().to_string(),
            "template: :1: function \"nosuch\" not defined"
        );
        let e = Template::parse("{{.Nope}}")
            .unwrap()
            .render(&json!({"ID": "x"}), Missing::Error)
            .unwrap_err();
        assert_eq!(e, FormatError::Exec("can't evaluate field Nope".into()));
        assert_eq!(
            e.list_message(),
            "failed to execute template: template: :1: can't evaluate field Nope"
        );
        let e = Template::parse("{{if}}").unwrap_err();
        assert_eq!(
            e.inspect_status(),
            (
                64,
                "template parsing error: template: :1: missing value for if".into()
            )
        );
    }

    fn ps_rows() -> (Vec<Value>, Value) {
        let rows = vec![
            json!({"ID": "0123456789ab", "Image": "busybox", "Command": "\"sleep 100\"",
                   "RunningFor": "2 minutes ago", "Status": "Up 2 minutes", "Ports": "",
                   "Names": "web", "Labels": "a=1,b=2"}),
            json!({"ID": "ba9876543210", "Image": "localhost:5000/app:1", "Command": "\"sh\"",
                   "RunningFor": "3 hours ago", "Status": "Exited (0) 1 hour ago", "Ports": "",
                   "Names": "db", "Labels": ""}),
        ];
        let header = json!({"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
            "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES",
            "Labels": "LABELS"});
        (rows, header)
    }

    #[test]
    fn table_format_has_header_and_alignment() {
        let (rows, header) = ps_rows();
        let f = ListFormat::parse("table {{.ID}}\\t{{.Names}}\\t{{upper .Status}}", "").unwrap();
        assert_eq!(
            f.render(&rows, &header).unwrap(),
            "CONTAINER ID   NAMES     STATUS\n\
             0123456789ab   web       UP 2 MINUTES\n\
             ba9876543210   db        EXITED (0) 1 HOUR AGO\n"
        );
    }

    #[test]
    fn plain_and_json_formats() {
        let (rows, header) = ps_rows();
        let f = ListFormat::parse("{{.Names}}: {{.Label \"b\"}}", "").unwrap();
        assert_eq!(f.render(&rows, &header).unwrap(), "web: 2\ndb: \n");
        let f = ListFormat::parse("json", "").unwrap();
        let out = f.render(&rows[..1], &header).unwrap();
        assert!(
            out.starts_with(r#"{"Command":"\"sleep 100\"","ID":"0123456789ab""#),
            "{out}"
        );
        let f = ListFormat::parse("", "table {{.ID}}").unwrap();
        assert_eq!(f.render(&[], &header).unwrap(), "CONTAINER ID\n");
    }

    #[test]
    fn quoting_like_go() {
        assert_eq!(go_quote("sh -c \"echo\""), r#""sh -c \"echo\"""#);
        assert_eq!(go_quote("a\tb…"), "\"a\\tb…\"");
    }
}
