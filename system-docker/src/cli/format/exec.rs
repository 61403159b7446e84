//! Execution of a parsed template over a JSON value.

use serde_json::Value;

use super::functions::{call_function, lookup, truthy, FUNCTIONS};
use super::parse::{Node, Operand, Pipeline};
use super::{exec_err, to_text, FormatError, Missing};

pub(super) struct Exec {
    vars: Vec<(String, Value)>,
    missing: Missing,
    header: bool,
}

impl Exec {
    /// An execution over `root` (also `$`); `header` renders column titles instead.
    pub(super) fn new(root: &Value, missing: Missing, header: bool) -> Self {
        Self {
            vars: vec![("$".into(), root.clone())],
            missing,
            header,
        }
    }

    /// The output of `nodes` with `dot` as `.`.
    pub(super) fn render(mut self, nodes: &[Node], dot: &Value) -> Result<String, FormatError> {
        let mut out = String::new();
        self.run(nodes, dot, &mut out)?;
        Ok(out)
    }

    fn run(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), FormatError> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.pipeline(pipe, dot)?;
                    if pipe.decl.is_empty() {
                        match self.null_field(pipe, dot, &v) {
                            Some(text) => out.push_str(text),
                            None => out.push_str(&to_text(&v)),
                        }
                    }
                }
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let mut done = false;
                    for (cond, body) in branches {
                        let mark = self.vars.len();
                        let v = self.pipeline(cond, dot)?;
                        if truthy(&v) || self.header {
                            self.run(body, dot, out)?;
                            done = true;
                        }
                        self.vars.truncate(mark);
                        if done {
                            break;
                        }
                    }
                    if !done {
                        self.block(otherwise, dot, out)?;
                    }
                }
                Node::With {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let v = self.pipeline(pipe, dot)?;
                    if truthy(&v) {
                        self.run(body, &v, out)?;
                    } else {
                        self.run(otherwise, dot, out)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range {
                    pipe,
                    body,
                    otherwise,
                } => self.range(pipe, body, otherwise, dot, out)?,
            }
        }
        Ok(())
    }

    /// How Go prints a field that is present but null in the JSON: docker evaluates
    /// templates on its typed structs, where null was a nil slice (`[]`), map (`map[]`) or
    /// pointer (`<nil>`). `None` unless the action is a plain field holding null.
    fn null_field(&self, pipe: &Pipeline, dot: &Value, v: &Value) -> Option<&'static str> {
        if !v.is_null() || self.missing != Missing::NoValue {
            return None;
        }
        let [cmd] = pipe.cmds.as_slice() else {
            return None;
        };
        let (base, chain) = match cmd.as_slice() {
            [Operand::Dot(chain)] => (dot.clone(), chain),
            [Operand::Var(name, chain)] => {
                let (_, v) = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n.as_str() == name.as_str())?;
                (v.clone(), chain)
            }
            _ => return None,
        };
        let (last, parent) = chain.split_last()?;
        let parent = self.resolve(base, parent).ok()?;
        let text = nil_text(last);
        // Nil pointers are usually left out of the JSON altogether (`omitempty`).
        if lookup(parent.as_object()?, last).is_none() && text != "<nil>" {
            return None;
        }
        Some(text)
    }

    fn block(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), FormatError> {
        let mark = self.vars.len();
        let r = self.run(nodes, dot, out);
        self.vars.truncate(mark);
        r
    }

    fn range(
        &mut self,
        pipe: &Pipeline,
        body: &[Node],
        otherwise: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> Result<(), FormatError> {
        let decl = &pipe.decl;
        // Declared variables take key and element, not the pipeline's value.
        let v = self.commands(&pipe.cmds, dot)?;
        let entries: Vec<(Value, Value)> = match v {
            Value::Array(a) => a
                .into_iter()
                .enumerate()
                .map(|(i, e)| (Value::from(i), e))
                .collect(),
            Value::Object(m) => m.into_iter().map(|(k, e)| (Value::String(k), e)).collect(),
            Value::Null => Vec::new(),
            Value::Number(n) => match n.as_u64() {
                Some(count) => (0..count)
                    .map(|i| (Value::from(i), Value::from(i)))
                    .collect(),
                None => return exec_err(format!("range can't iterate over {n}")),
            },
            other => return exec_err(format!("range can't iterate over {}", to_text(&other))),
        };
        if entries.is_empty() {
            return self.block(otherwise, dot, out);
        }
        for (key, elem) in entries {
            let mark = self.vars.len();
            match decl.as_slice() {
                [] => {}
                [e] => self.vars.push((e.clone(), elem.clone())),
                [k, e, ..] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((e.clone(), elem.clone()));
                }
            }
            let r = self.run(body, &elem, out);
            self.vars.truncate(mark);
            r?;
        }
        Ok(())
    }

    fn pipeline(&mut self, pipe: &Pipeline, dot: &Value) -> Result<Value, FormatError> {
        let v = self.commands(&pipe.cmds, dot)?;
        if let Some(name) = pipe.decl.first() {
            if pipe.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return exec_err(format!("undefined variable: {name}")),
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn commands(&mut self, cmds: &[Vec<Operand>], dot: &Value) -> Result<Value, FormatError> {
        let mut piped: Option<Value> = None;
        for cmd in cmds {
            piped = Some(self.command(cmd, dot, piped)?);
        }
        Ok(piped.unwrap_or(Value::Null))
    }

    fn command(
        &mut self,
        cmd: &[Operand],
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, FormatError> {
        let mut args = Vec::new();
        for op in &cmd[1..] {
            args.push(self.operand(op, dot)?);
        }
        args.extend(piped);
        match &cmd[0] {
            Operand::Func(name) => self.call(name, args),
            Operand::Dot(chain) if !args.is_empty() => self.method(dot, chain, &args),
            first if args.is_empty() => self.operand(first, dot),
            _ => exec_err("can't give argument to non-function"),
        }
    }

    /// Method calls on rows; only `.Label "key"` of `ps` rows exists.
    fn method(&self, dot: &Value, chain: &[String], args: &[Value]) -> Result<Value, FormatError> {
        let Some((name, recv)) = chain.split_last() else {
            return exec_err("can't give argument to non-function");
        };
        let recv = self.resolve(dot.clone(), recv)?;
        if self.header {
            return Ok(Value::String(String::new()));
        }
        if name != "Label" || args.len() != 1 {
            return exec_err(format!(
                "can't call method/function {name:?} with {} args",
                args.len()
            ));
        }
        let key = to_text(&args[0]);
        let value = match recv.get("Labels") {
            Some(Value::Object(m)) => m.get(&key).map(to_text),
            Some(Value::String(s)) => s
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string()),
            _ => None,
        };
        Ok(Value::String(value.unwrap_or_default()))
    }

    fn operand(&mut self, op: &Operand, dot: &Value) -> Result<Value, FormatError> {
        match op {
            Operand::Dot(chain) => self.resolve(dot.clone(), chain),
            Operand::Var(name, chain) => {
                let Some((_, v)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
                    return exec_err(format!("undefined variable: {name}"));
                };
                let v = v.clone();
                self.resolve(v, chain)
            }
            Operand::Literal(v) => Ok(v.clone()),
            Operand::Func(name) => self.call(name, Vec::new()),
            Operand::Paren(pipe, chain) => {
                let v = self.pipeline(pipe, dot)?;
                self.resolve(v, chain)
            }
        }
    }

    fn resolve(&self, mut v: Value, chain: &[String]) -> Result<Value, FormatError> {
        for name in chain {
            let next = match &v {
                Value::Object(m) => lookup(m, name).cloned(),
                Value::Null if self.missing == Missing::NoValue => Some(Value::Null),
                _ => None,
            };
            v = match next {
                Some(n) => n,
                None if self.header => Value::String(String::new()),
                None if self.missing == Missing::NoValue && v.is_object() => Value::Null,
                None => return exec_err(format!("can't evaluate field {name}")),
            };
        }
        Ok(v)
    }

    fn call(&self, name: &str, args: Vec<Value>) -> Result<Value, FormatError> {
        if self.header && FUNCTIONS.contains(&name) {
            return Ok(args
                .into_iter()
                .next()
                .unwrap_or(Value::String(String::new())));
        }
        call_function(name, args)
    }
}

/// Go's printing of a nil field of docker's API types, by field name.
fn nil_text(field: &str) -> &'static str {
    const POINTERS: &[&str] = &[
        "Health",
        "Healthcheck",
        "PidsLimit",
        "OomKillDisable",
        "MemorySwappiness",
        "Init",
        "StopTimeout",
        "IPAMConfig",
        "ContainerConfig",
        "Error",
        "Platform",
    ];
    const MAPS: &[&str] = &[
        "Labels",
        "ExposedPorts",
        "Volumes",
        "Ports",
        "PortBindings",
        "Tmpfs",
        "Sysctls",
        "StorageOpt",
        "Networks",
        "Data",
        "DriverOpts",
        "Options",
        "Annotations",
        "Attributes",
    ];
    if POINTERS.contains(&field) {
        "<nil>"
    } else if MAPS.contains(&field) {
        "map[]"
    } else {
        "[]"
    }
}
