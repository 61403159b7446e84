//! Lexing and parsing of templates into a small tree of nodes.

use serde_json::Value;

use super::functions::FUNCTIONS;
use super::{err, FormatError};

#[derive(Debug)]
pub(super) enum Node {
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
pub(super) struct Pipeline {
    /// Variables declared (`$x :=`) or assigned (`$x =`, when `assign`).
    pub decl: Vec<String>,
    pub assign: bool,
    /// Commands joined by `|`, each a list of operands.
    pub cmds: Vec<Vec<Operand>>,
}

#[derive(Debug)]
pub(super) enum Operand {
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
            "if" if toks.len() == 1 => return err("missing value for if"),
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
            _ if FUNCTIONS.contains(&id.as_str()) => Operand::Func(id),
            _ => return err(format!("function {id:?} not defined")),
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

/// The nodes of template `src`.
pub(super) fn parse(src: &str) -> Result<Vec<Node>, FormatError> {
    let items = lex(src)?;
    let mut pos = 0;
    let (nodes, end) = parse_list(&items, &mut pos)?;
    match end {
        Terminator::Eof => Ok(nodes),
        Terminator::End => err("unexpected {{end}}"),
        Terminator::Else(_) => err("unexpected {{else}}"),
    }
}
