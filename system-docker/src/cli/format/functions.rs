//! The functions templates can call: Go's builtins that docker users reach for (`index`,
//! `len`, `eq`, `printf`, …) and docker's own (`json`, `join`, `split`, `upper`, `pad`, …).

use serde_json::{Map, Value};

use super::{exec_err, go_quote, to_text, FormatError};

pub(super) const FUNCTIONS: &[&str] = &[
    "json", "upper", "lower", "title", "join", "split", "index", "len", "eq", "ne", "lt", "le",
    "gt", "ge", "not", "and", "or", "print", "printf", "println", "truncate", "pad",
];

pub(super) fn call_function(name: &str, args: Vec<Value>) -> Result<Value, FormatError> {
    let arity = |n: usize| -> Result<(), FormatError> {
        if args.len() == n {
            Ok(())
        } else {
            exec_err(format!(
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
                return exec_err("wrong number of args for index: want at least 1 got 0");
            };
            let mut v = first.clone();
            for key in keys {
                v = match (&v, key) {
                    (Value::Object(m), k) => m.get(&to_text(k)).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(n)) => {
                        match n.as_u64().and_then(|i| a.get(i as usize)) {
                            Some(e) => e.clone(),
                            None => {
                                return exec_err(format!(
                                    "error calling index: index out of range: {n}"
                                ))
                            }
                        }
                    }
                    (Value::Null, _) => Value::Null,
                    _ => {
                        return exec_err(format!(
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
                    return exec_err(format!(
                        "error calling len: len of type {}",
                        type_name(other)
                    ))
                }
            })
        }
        "eq" | "ne" => {
            if args.len() < 2 {
                return exec_err(format!("missing argument for comparison in {name}"));
            }
            let eq = args[1..].iter().any(|b| values_equal(&args[0], b));
            Value::Bool(if name == "eq" { eq } else { !eq })
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(2)?;
            let ord = compare(&args[0], &args[1]).ok_or_else(|| {
                FormatError::Exec(format!("incompatible types for comparison in {name}"))
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
                return exec_err("wrong number of args for printf: want at least 1 got 0");
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
        _ => return exec_err(format!("function {name:?} not defined")),
    })
}

/// A field by its exact name, else case-insensitively: docker evaluates templates on Go
/// structs (`.ID`) and falls back to the raw JSON (`.Id`), so both spellings work.
pub(super) fn lookup<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
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

pub(super) fn truthy(v: &Value) -> bool {
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
