//! `--format` templates: the part of Go's `text/template` that docker users write
//! (`{{.Field.Sub}}`, `{{json .}}`, `{{index .Labels "k"}}`, `{{range}}`, `{{if}}`, `{{with}}`,
//! pipes, variables, docker's extra functions), evaluated over JSON values, plus the
//! `table`/`json` list formats of `ps` and `images`.

use serde_json::{Map, Value};

use super::tabwriter;

/// A template that did not parse or could not be executed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("template parsing error: {0}")]
pub struct FormatError(String);

fn err<T>(msg: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError(msg.into()))
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

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    Range {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug)]
struct Pipeline {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Vec<Operand>>,
}

#[derive(Debug)]
enum Operand {
    /// `.` followed by a (possibly empty) field chain.
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Literal(Value),
    Func(String),
    Paren(Box<Pipeline>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Num(Value),
    Ident(String),
    LParen,
    RParen(Vec<String>),
    Pipe,
    Comma,
    Declare,
    Assign,
}

enum Item {
    Text(String),
    Action(Vec<Tok>),
}

impl Template {
    /// Parses `src`.
    pub fn parse(src: &str) -> Result<Self, FormatError> {
        let items = lex(src)?;
        let mut pos = 0;
        let (nodes, end) = parse_list(&items, &mut pos)?;
        match end {
            Terminator::Eof => Ok(Self { nodes }),
            Terminator::End => err("unexpected {{end}}"),
            Terminator::Else(_) => err("unexpected {{else}}"),
        }
    }

    /// Executes the template over `data`.
    pub fn render(&self, data: &Value, missing: Missing) -> Result<String, FormatError> {
        let mut exec = Exec {
            vars: vec![("$".into(), data.clone())],
            missing,
            header: false,
        };
        let mut out = String::new();
        exec.run(&self.nodes, data, &mut out)?;
        Ok(out)
    }

    /// Executes the template over a header row: fields resolve to column titles (missing
    /// ones to nothing) and functions pass their first argument through, as docker's
    /// header functions do.
    pub fn render_header(&self, header: &Value) -> Result<String, FormatError> {
        let mut exec = Exec {
            vars: vec![("$".into(), header.clone())],
            missing: Missing::NoValue,
            header: true,
        };
        let mut out = String::new();
        exec.run(&self.nodes, header, &mut out)?;
        Ok(out)
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

// ---- lexing ----

fn lex(src: &str) -> Result<Vec<Item>, FormatError> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            push_text(&mut items, rest, trim_next, false);
            break;
        };
        let after = &rest[open + 2..];
        let trim_prev =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        push_text(&mut items, &rest[..open], trim_next, trim_prev);
        let body = if trim_prev { &after[1..] } else { after };
        let trimmed = body.trim_start();
        if let Some(comment) = trimmed.strip_prefix("/*") {
            let Some(end) = comment.find("*/") else {
                return err("unclosed comment");
            };
            let tail = comment[end + 2..].trim_start();
            let (tail, trim) = match tail.strip_prefix("-}}") {
                Some(t) => (t, true),
                None => match tail.strip_prefix("}}") {
                    Some(t) => (t, false),
                    None => return err("comment ends before closing delimiter"),
                },
            };
            trim_next = trim;
            rest = tail;
            continue;
        }
        let (toks, consumed, trim) = lex_action(body)?;
        items.push(Item::Action(toks));
        trim_next = trim;
        rest = &body[consumed..];
    }
    Ok(items)
}

fn push_text(items: &mut Vec<Item>, text: &str, trim_start: bool, trim_end: bool) {
    let text = if trim_start { text.trim_start() } else { text };
    let text = if trim_end { text.trim_end() } else { text };
    if !text.is_empty() {
        items.push(Item::Text(text.to_string()));
    }
}

/// Lexes one action body up to and including its closing `}}`; returns the tokens, the
/// bytes consumed and whether the action ended with ` -}}`.
fn lex_action(src: &str) -> Result<(Vec<Tok>, usize, bool), FormatError> {
    let bytes = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    loop {
        let ws_start = i;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            return err("unclosed action");
        }
        let rest = &src[i..];
        if rest.starts_with("-}}") && i > ws_start {
            return Ok((toks, i + 3, true));
        }
        if rest.starts_with("}}") {
            return Ok((toks, i + 2, false));
        }
        let c = bytes[i];
        match c {
            b'"' => {
                let (s, len) = lex_string(rest)?;
                toks.push(Tok::Str(s));
                i += len;
            }
            b'`' => {
                let Some(end) = rest[1..].find('`') else {
                    return err("unterminated raw quoted string");
                };
                toks.push(Tok::Str(rest[1..1 + end].to_string()));
                i += end + 2;
            }
            b'.' => {
                let (chain, len) = lex_chain(rest);
                if chain.is_empty() && rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
                    let (n, len) = lex_number(rest)?;
                    toks.push(Tok::Num(n));
                    i += len;
                } else {
                    toks.push(Tok::Field(chain));
                    i += len.max(1);
                }
            }
            b'$' => {
                let name_len = rest[1..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len() - 1);
                let name = format!("${}", &rest[1..1 + name_len]);
                let (chain, len) = lex_chain(&rest[1 + name_len..]);
                toks.push(Tok::Var(name, chain));
                i += 1 + name_len + len;
            }
            b'(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                let (chain, len) = lex_chain(&rest[1..]);
                toks.push(Tok::RParen(chain));
                i += 1 + len;
            }
            b'|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            b',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            b':' if rest.starts_with(":=") => {
                toks.push(Tok::Declare);
                i += 2;
            }
            b'=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            b'-' | b'+' | b'0'..=b'9' => {
                let (n, len) = lex_number(rest)?;
                toks.push(Tok::Num(n));
                i += len;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let len = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                toks.push(Tok::Ident(rest[..len].to_string()));
                i += len;
            }
            _ => {
                let ch = rest.chars().next().unwrap_or('?');
                return err(format!("unexpected {ch:?} in command"));
            }
        }
    }
}

/// A `.A.B` chain at the start of `src` (possibly just `.`); returns names and bytes used.
fn lex_chain(src: &str) -> (Vec<String>, usize) {
    let mut chain = Vec::new();
    let mut i = 0;
    while src[i..].starts_with('.') {
        let name_len = src[i + 1..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(src.len() - i - 1);
        if name_len == 0 {
            if chain.is_empty() {
                return (chain, 1);
            }
            break;
        }
        chain.push(src[i + 1..i + 1 + name_len].to_string());
        i += 1 + name_len;
    }
    (chain, i)
}

fn lex_string(src: &str) -> Result<(String, usize), FormatError> {
    let mut out = String::new();
    let mut chars = src.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, other)) => out.push(other),
                None => break,
            },
            '\n' => break,
            c => out.push(c),
        }
    }
    err("unterminated quoted string")
}

fn lex_number(src: &str) -> Result<(Value, usize), FormatError> {
    let len = src
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '-' || c == '+'))))
        .map_or(src.len(), |(i, _)| i);
    let text = &src[..len];
    if let Ok(n) = text.parse::<i64>() {
        return Ok((Value::from(n), len));
    }
    match text.parse::<f64>() {
        Ok(f) => Ok((Value::from(f), len)),
        Err(_) => err(format!("bad number syntax: {text:?}")),
    }
}

// ---- parsing ----

enum Terminator {
    Eof,
    End,
    Else(Vec<Tok>),
}

fn parse_list(items: &[Item], pos: &mut usize) -> Result<(Vec<Node>, Terminator), FormatError> {
    let mut nodes = Vec::new();
    while let Some(item) = items.get(*pos) {
        *pos += 1;
        let toks = match item {
            Item::Text(t) => {
                nodes.push(Node::Text(t.clone()));
                continue;
            }
            Item::Action(toks) => toks,
        };
        let keyword = match toks.first() {
            Some(Tok::Ident(k)) => k.as_str(),
            None => return err("missing value for command"),
            _ => "",
        };
        match keyword {
            "end" => return Ok((nodes, Terminator::End)),
            "else" => return Ok((nodes, Terminator::Else(toks[1..].to_vec()))),
            "if" => nodes.push(parse_if(items, pos, &toks[1..])?),
            "range" | "with" => {
                let pipe = parse_pipeline_all(&toks[1..])?;
                let (body, end) = parse_list(items, pos)?;
                let otherwise = match end {
                    Terminator::End => Vec::new(),
                    Terminator::Else(rest) if rest.is_empty() => {
                        let (otherwise, end) = parse_list(items, pos)?;
                        expect_end(end)?;
                        otherwise
                    }
                    Terminator::Else(_) => {
                        return err(format!("unexpected else-clause in {keyword}"))
                    }
                    Terminator::Eof => return err(format!("unexpected EOF in {keyword}")),
                };
                nodes.push(if keyword == "range" {
                    Node::Range {
                        pipe,
                        body,
                        otherwise,
                    }
                } else {
                    Node::With {
                        pipe,
                        body,
                        otherwise,
                    }
                });
            }
            _ => nodes.push(Node::Action(parse_pipeline_all(toks)?)),
        }
    }
    Ok((nodes, Terminator::Eof))
}

fn expect_end(end: Terminator) -> Result<(), FormatError> {
    match end {
        Terminator::End => Ok(()),
        Terminator::Else(_) => err("expected end; found else"),
        Terminator::Eof => err("unexpected EOF"),
    }
}

fn parse_if(items: &[Item], pos: &mut usize, cond: &[Tok]) -> Result<Node, FormatError> {
    let mut branches = Vec::new();
    let mut cond = parse_pipeline_all(cond)?;
    loop {
        let (body, end) = parse_list(items, pos)?;
        branches.push((cond, body));
        match end {
            Terminator::End => {
                return Ok(Node::If {
                    branches,
                    otherwise: Vec::new(),
                })
            }
            Terminator::Else(rest) if rest.is_empty() => {
                let (otherwise, end) = parse_list(items, pos)?;
                expect_end(end)?;
                return Ok(Node::If {
                    branches,
                    otherwise,
                });
            }
            Terminator::Else(rest) if rest.first() == Some(&Tok::Ident("if".into())) => {
                cond = parse_pipeline_all(&rest[1..])?;
            }
            Terminator::Else(_) => return err("unexpected tokens after else"),
            Terminator::Eof => return err("unexpected EOF in if"),
        }
    }
}

fn parse_pipeline_all(toks: &[Tok]) -> Result<Pipeline, FormatError> {
    let mut pos = 0;
    let pipe = parse_pipeline(toks, &mut pos)?;
    if pos != toks.len() {
        return err(format!("unexpected {:?} in operand", toks[pos]));
    }
    Ok(pipe)
}

fn parse_pipeline(toks: &[Tok], pos: &mut usize) -> Result<Pipeline, FormatError> {
    let mut decl = Vec::new();
    let mut assign = false;
    let mut look = *pos;
    let mut names = Vec::new();
    while let Some(Tok::Var(name, chain)) = toks.get(look) {
        if !chain.is_empty() {
            break;
        }
        names.push(name.clone());
        look += 1;
        match toks.get(look) {
            Some(Tok::Comma) if names.len() < 2 => look += 1,
            Some(Tok::Declare) | Some(Tok::Assign) => {
                assign = toks[look] == Tok::Assign;
                decl = std::mem::take(&mut names);
                *pos = look + 1;
                break;
            }
            _ => break,
        }
    }
    let mut cmds = Vec::new();
    loop {
        let mut cmd = Vec::new();
        while let Some(tok) = toks.get(*pos) {
            match tok {
                Tok::Pipe | Tok::RParen(_) => break,
                _ => cmd.push(parse_operand(toks, pos)?),
            }
        }
        if cmd.is_empty() {
            return err("missing value for command");
        }
        cmds.push(cmd);
        if toks.get(*pos) == Some(&Tok::Pipe) {
            *pos += 1;
        } else {
            break;
        }
    }
    Ok(Pipeline { decl, assign, cmds })
}

fn parse_operand(toks: &[Tok], pos: &mut usize) -> Result<Operand, FormatError> {
    let tok = toks[*pos].clone();
    *pos += 1;
    Ok(match tok {
        Tok::Field(chain) => Operand::Dot(chain),
        Tok::Var(name, chain) => Operand::Var(name, chain),
        Tok::Str(s) => Operand::Literal(Value::String(s)),
        Tok::Num(n) => Operand::Literal(n),
        Tok::Ident(id) => match id.as_str() {
            "true" => Operand::Literal(Value::Bool(true)),
            "false" => Operand::Literal(Value::Bool(false)),
            "nil" => Operand::Literal(Value::Null),
            _ => Operand::Func(id),
        },
        Tok::LParen => {
            let inner = parse_pipeline(toks, pos)?;
            match toks.get(*pos) {
                Some(Tok::RParen(chain)) => {
                    *pos += 1;
                    Operand::Paren(Box::new(inner), chain.clone())
                }
                _ => return err("unclosed left paren"),
            }
        }
        other => return err(format!("unexpected {other:?} in operand")),
    })
}

// ---- execution ----

struct Exec {
    vars: Vec<(String, Value)>,
    missing: Missing,
    header: bool,
}

impl Exec {
    fn run(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), FormatError> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.pipeline(pipe, dot)?;
                    if pipe.decl.is_empty() {
                        out.push_str(&to_text(&v));
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
                None => return err(format!("range can't iterate over {n}")),
            },
            other => return err(format!("range can't iterate over {}", to_text(&other))),
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
                    None => return err(format!("undefined variable: {name}")),
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
            _ => err("can't give argument to non-function"),
        }
    }

    /// Method calls on rows; only `.Label "key"` of `ps` rows exists.
    fn method(&self, dot: &Value, chain: &[String], args: &[Value]) -> Result<Value, FormatError> {
        let Some((name, recv)) = chain.split_last() else {
            return err("can't give argument to non-function");
        };
        let recv = self.resolve(dot.clone(), recv)?;
        if self.header {
            return Ok(Value::String(String::new()));
        }
        if name != "Label" || args.len() != 1 {
            return err(format!(
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
                    return err(format!("undefined variable: {name}"));
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
                None => return err(format!("can't evaluate field {name}")),
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

const FUNCTIONS: &[&str] = &[
    "json", "upper", "lower", "title", "join", "split", "index", "len", "eq", "ne", "lt", "le",
    "gt", "ge", "not", "and", "or", "print", "printf", "println", "truncate", "pad",
];

fn call_function(name: &str, args: Vec<Value>) -> Result<Value, FormatError> {
    let arity = |n: usize| -> Result<(), FormatError> {
        if args.len() == n {
            Ok(())
        } else {
            err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    Ok(match name {
        "json" => {
            arity(1)?;
            Value::String(serde_json::to_string(&args[0]).unwrap_or_default())
        }
        "upper" => {
            arity(1)?;
            Value::String(to_text(&args[0]).to_uppercase())
        }
        "lower" => {
            arity(1)?;
            Value::String(to_text(&args[0]).to_lowercase())
        }
        "title" => {
            arity(1)?;
            Value::String(title(&to_text(&args[0])))
        }
        "join" => {
            arity(2)?;
            let sep = to_text(&args[1]);
            match &args[0] {
                Value::Array(a) => {
                    Value::String(a.iter().map(to_text).collect::<Vec<_>>().join(&sep))
                }
                Value::Null => Value::String(String::new()),
                other => Value::String(to_text(other)),
            }
        }
        "split" => {
            arity(2)?;
            let (text, sep) = (to_text(&args[0]), to_text(&args[1]));
            Value::Array(
                text.split(sep.as_str())
                    .map(|p| Value::String(p.into()))
                    .collect(),
            )
        }
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                return err("wrong number of args for index: want at least 1 got 0");
            };
            let mut v = first.clone();
            for key in keys {
                v = match (&v, key) {
                    (Value::Object(m), k) => m.get(&to_text(k)).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(n)) => {
                        match n.as_u64().and_then(|i| a.get(i as usize)) {
                            Some(e) => e.clone(),
                            None => {
                                return err(format!("error calling index: index out of range: {n}"))
                            }
                        }
                    }
                    (Value::Null, _) => Value::Null,
                    _ => {
                        return err(format!(
                            "error calling index: can't index item of type {}",
                            type_name(&v)
                        ))
                    }
                };
            }
            v
        }
        "len" => {
            arity(1)?;
            Value::from(match &args[0] {
                Value::String(s) => s.len(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::Null => 0,
                other => {
                    return err(format!(
                        "error calling len: len of type {}",
                        type_name(other)
                    ))
                }
            })
        }
        "eq" | "ne" => {
            if args.len() < 2 {
                return err(format!("missing argument for comparison in {name}"));
            }
            let eq = args[1..].iter().any(|b| values_equal(&args[0], b));
            Value::Bool(if name == "eq" { eq } else { !eq })
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(2)?;
            let ord = compare(&args[0], &args[1]).ok_or_else(|| {
                FormatError(format!("incompatible types for comparison in {name}"))
            })?;
            Value::Bool(match name {
                "lt" => ord.is_lt(),
                "le" => ord.is_le(),
                "gt" => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
        "not" => {
            arity(1)?;
            Value::Bool(!truthy(&args[0]))
        }
        "and" => args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "print" => Value::String(sprint(&args)),
        "println" => {
            let mut out = args.iter().map(to_text).collect::<Vec<_>>().join(" ");
            out.push('\n');
            Value::String(out)
        }
        "printf" => {
            let Some((fmt, rest)) = args.split_first() else {
                return err("wrong number of args for printf: want at least 1 got 0");
            };
            Value::String(sprintf(&to_text(fmt), rest))
        }
        "truncate" => {
            arity(2)?;
            let text = to_text(&args[0]);
            let n = args[1].as_u64().unwrap_or(0) as usize;
            Value::String(text.chars().take(n).collect())
        }
        "pad" => {
            arity(3)?;
            let l = args[1].as_u64().unwrap_or(0) as usize;
            let r = args[2].as_u64().unwrap_or(0) as usize;
            Value::String(format!(
                "{}{}{}",
                " ".repeat(l),
                to_text(&args[0]),
                " ".repeat(r)
            ))
        }
        _ => return err(format!("function {name:?} not defined")),
    })
}

/// A field by its exact name, else case-insensitively: docker evaluates templates on Go
/// structs (`.ID`) and falls back to the raw JSON (`.Id`), so both spellings work.
fn lookup<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    m.get(name).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric() && c != '_' && c != '\'';
    }
    out
}

/// Go's `fmt.Sprint`: spaces only between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !a.is_string() && !args[i - 1].is_string() {
            out.push(' ');
        }
        out.push_str(&to_text(a));
    }
    out
}

/// A small `fmt.Sprintf`: `%s %v %d %q %%`, with an optional width (`%-10s`).
fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&n) = chars.peek() {
            if n == '-' || n.is_ascii_digit() {
                spec.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let text = match verb {
            'q' => go_quote(&to_text(arg)),
            _ => to_text(arg),
        };
        let left = spec.starts_with('-');
        let width: usize = spec.trim_start_matches('-').parse().unwrap_or(0);
        let pad = width.saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.push_str(&" ".repeat(pad));
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(&text);
        }
    }
    out
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
        assert_eq!(render("{{.Config.Env}}", &d), "<no value>");
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
        let t = Template::parse("{{nosuch .A}}").unwrap();
        assert!(t.render(&json!({}), Missing::NoValue).is_err());
        let t = Template::parse("{{.Nope}}").unwrap();
        assert_eq!(
            t.render(&json!({"ID": "x"}), Missing::Error)
                .unwrap_err()
                .to_string(),
            "template parsing error: can't evaluate field Nope"
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
