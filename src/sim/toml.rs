//! A small TOML subset parser for scenario files, with the line of every value kept for errors.
//!
//! Supported: comments, `key = value` (bare, quoted and dotted keys), `[table]`, `[[array]]`
//! (a header path that crosses an array of tables lands in its last element, as in TOML),
//! strings ("basic" with escapes, 'literal'), integers (with `_`), floats, booleans, arrays
//! (may span lines) and inline tables. Not supported: dates, multi-line strings. Written here
//! rather than pulled in as a crate so that errors name the line and so the router build is not
//! touched (this module only exists with the `sim` feature).

use std::fmt;

/// A parsed value with the (1-based) line it started on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spanned {
    pub(crate) value: Value,
    pub(crate) line: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Spanned>),
    Table(Table),
}

/// A table: entries in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Table {
    pub(crate) entries: Vec<(String, Spanned)>,
}

impl Table {
    pub(crate) fn get(&self, key: &str) -> Option<&Spanned> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Spanned> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

impl Value {
    /// The TOML type name, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "boolean",
            Value::Array(_) => "array",
            Value::Table(_) => "table",
        }
    }
}

/// A syntax error at a line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParseError {
    pub(crate) line: u32,
    pub(crate) msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}

/// Parse a whole document into its root table.
pub(crate) fn parse(text: &str) -> Result<Table, ParseError> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    let mut root = Table::default();
    let mut current: Vec<String> = Vec::new();
    loop {
        p.skip_ws_comments_newlines();
        let Some(c) = p.peek() else { break };
        let line = p.line;
        if c == b'[' {
            p.pos += 1;
            let array = p.peek() == Some(b'[');
            if array {
                p.pos += 1;
            }
            p.skip_ws();
            let path = p.key_path()?;
            p.skip_ws();
            p.expect(b']')?;
            if array {
                p.expect(b']')?;
            }
            p.end_of_line()?;
            open_table(&mut root, &path, array, line)?;
            current = path;
        } else {
            let path = p.key_path()?;
            p.skip_ws();
            p.expect(b'=')?;
            p.skip_ws();
            let value = p.value()?;
            p.end_of_line()?;
            let table = resolve(&mut root, &current, line)?;
            insert_dotted(table, &path, value, line)?;
        }
    }
    Ok(root)
}

fn err<T>(line: u32, msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        msg: msg.into(),
    })
}

/// Walk `path` from the root, creating tables, entering the last element of arrays of tables.
fn resolve<'a>(
    root: &'a mut Table,
    path: &[String],
    line: u32,
) -> Result<&'a mut Table, ParseError> {
    let mut t = root;
    for key in path {
        if t.get(key).is_none() {
            t.entries.push((
                key.clone(),
                Spanned {
                    value: Value::Table(Table::default()),
                    line,
                },
            ));
        }
        let entry = t.get_mut(key).expect("inserted above");
        t = match &mut entry.value {
            Value::Table(inner) => inner,
            Value::Array(items) => match items.last_mut().map(|s| &mut s.value) {
                Some(Value::Table(inner)) => inner,
                _ => {
                    return err(
                        line,
                        format!("`{key}` is an array of values, not of tables"),
                    )
                }
            },
            other => {
                return err(
                    line,
                    format!("`{key}` is already a {}, not a table", other.type_name()),
                )
            }
        };
    }
    Ok(t)
}

fn open_table(root: &mut Table, path: &[String], array: bool, line: u32) -> Result<(), ParseError> {
    let (last, parent) = path
        .split_last()
        .expect("key_path returns at least one key");
    let parent = resolve(root, parent, line)?;
    match parent.get_mut(last) {
        None => {
            let fresh = Spanned {
                value: Value::Table(Table::default()),
                line,
            };
            let value = if array {
                Value::Array(vec![fresh])
            } else {
                fresh.value
            };
            parent.entries.push((last.clone(), Spanned { value, line }));
            Ok(())
        }
        Some(existing) => match (&mut existing.value, array) {
            (Value::Array(items), true) => {
                items.push(Spanned {
                    value: Value::Table(Table::default()),
                    line,
                });
                Ok(())
            }
            (Value::Table(_), false) => Ok(()),
            _ => err(
                line,
                format!(
                    "`{last}` was already defined on line {} in another way",
                    existing.line
                ),
            ),
        },
    }
}

fn insert_dotted(
    table: &mut Table,
    path: &[String],
    value: Spanned,
    line: u32,
) -> Result<(), ParseError> {
    let (last, parent) = path
        .split_last()
        .expect("key_path returns at least one key");
    let t = resolve(table, parent, line)?;
    if let Some(prev) = t.get(last) {
        return err(
            line,
            format!("duplicate key `{last}` (first set on line {})", prev.line),
        );
    }
    t.entries.push((last.clone(), value));
    Ok(())
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    line: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.pos += 1;
        }
    }

    fn skip_comment(&mut self) {
        if self.peek() == Some(b'#') {
            while !matches!(self.peek(), None | Some(b'\n')) {
                self.pos += 1;
            }
        }
    }

    fn skip_ws_comments_newlines(&mut self) {
        loop {
            self.skip_ws();
            self.skip_comment();
            if self.peek() == Some(b'\n') {
                self.pos += 1;
                self.line += 1;
            } else {
                return;
            }
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), ParseError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            err(
                self.line,
                format!("expected `{}`, found {}", c as char, self.describe_here()),
            )
        }
    }

    fn describe_here(&self) -> String {
        match self.peek() {
            None => "end of file".into(),
            Some(b'\n') => "end of line".into(),
            Some(_) => {
                let rest = &self.s[self.pos..];
                let end = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(rest.len())
                    .min(20);
                format!("`{}`", String::from_utf8_lossy(&rest[..end]).trim_end())
            }
        }
    }

    fn end_of_line(&mut self) -> Result<(), ParseError> {
        self.skip_ws();
        self.skip_comment();
        match self.peek() {
            None => Ok(()),
            Some(b'\n') => {
                self.pos += 1;
                self.line += 1;
                Ok(())
            }
            _ => err(
                self.line,
                format!(
                    "unexpected {} after the value (one `key = value` per line)",
                    self.describe_here()
                ),
            ),
        }
    }

    fn key_path(&mut self) -> Result<Vec<String>, ParseError> {
        let mut path = vec![self.key()?];
        loop {
            self.skip_ws();
            if self.peek() == Some(b'.') {
                self.pos += 1;
                self.skip_ws();
                path.push(self.key()?);
            } else {
                return Ok(path);
            }
        }
    }

    fn key(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(b'"') | Some(b'\'') => self.string(),
            _ => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                {
                    self.pos += 1;
                }
                if start == self.pos {
                    return err(
                        self.line,
                        format!("expected a key, found {}", self.describe_here()),
                    );
                }
                Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
            }
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let quote = self.peek().expect("caller checked");
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return err(self.line, "unterminated string");
            };
            self.pos += 1;
            match c {
                b'\n' => return err(self.line, "unterminated string (strings end on their line)"),
                c if c == quote => break,
                b'\\' if quote == b'"' => {
                    let Some(e) = self.peek() else {
                        return err(self.line, "unterminated string");
                    };
                    self.pos += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        b'\\' => b'\\',
                        b'"' => b'"',
                        other => {
                            return err(
                                self.line,
                                format!("unknown escape `\\{}` in string", other as char),
                            )
                        }
                    });
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).or_else(|_| err(self.line, "string is not valid UTF-8"))
    }

    fn value(&mut self) -> Result<Spanned, ParseError> {
        let line = self.line;
        let value = match self.peek() {
            Some(b'"') | Some(b'\'') => Value::Str(self.string()?),
            Some(b'[') => {
                let mut items = Vec::new();
                self.list(b']', "array", |p| {
                    items.push(p.value()?);
                    Ok(())
                })?;
                Value::Array(items)
            }
            Some(b'{') => {
                let mut table = Table::default();
                self.list(b'}', "inline table", |p| {
                    let kline = p.line;
                    let path = p.key_path()?;
                    p.skip_ws();
                    p.expect(b'=')?;
                    p.skip_ws();
                    let v = p.value()?;
                    insert_dotted(&mut table, &path, v, kline)
                })?;
                Value::Table(table)
            }
            _ => self.scalar()?,
        };
        Ok(Spanned { value, line })
    }

    /// The items of an array or inline table after its opening bracket: `item` reads one, items
    /// are separated by commas (one may trail), `close` ends the list. Arrays may span lines.
    fn list(
        &mut self,
        close: u8,
        what: &str,
        mut item: impl FnMut(&mut Self) -> Result<(), ParseError>,
    ) -> Result<(), ParseError> {
        self.pos += 1;
        loop {
            self.skip_ws_comments_newlines();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(());
            }
            item(self)?;
            self.skip_ws_comments_newlines();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => {
                    return err(
                        self.line,
                        format!(
                            "expected `,` or `{}` in {what}, found {}",
                            close as char,
                            self.describe_here()
                        ),
                    )
                }
            }
        }
    }

    fn scalar(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'+' | b'.'))
        {
            self.pos += 1;
        }
        let word = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
        match word.as_str() {
            "" => err(
                self.line,
                format!("expected a value, found {}", self.describe_here()),
            ),
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => {
                let clean: String = word.chars().filter(|&c| c != '_').collect();
                if let Ok(i) = clean.parse::<i64>() {
                    return Ok(Value::Int(i));
                }
                let looks_numeric = clean
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
                match clean.parse::<f64>() {
                    Ok(f) if looks_numeric => Ok(Value::Float(f)),
                    _ => err(
                        self.line,
                        format!("`{word}` is not a value (strings need quotes: \"{word}\")"),
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_arrays_and_values() {
        let doc = r#"
# comment
name = "hetero" # trailing
seed = 1_000
ratio = 0.5
on = true

[[link]]
name = 'a'
rate = [1, 2,
   3]   # spans lines
up = { delay = 20, loss = 0.5 }

[[link]]
name = "b"
[link.down]
delay = 40
"#;
        let t = parse(doc).unwrap();
        assert_eq!(t.get("seed").unwrap().value, Value::Int(1000));
        assert_eq!(t.get("ratio").unwrap().value, Value::Float(0.5));
        assert_eq!(t.get("on").unwrap().value, Value::Bool(true));
        let Value::Array(links) = &t.get("link").unwrap().value else {
            panic!()
        };
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].line, 8);
        let Value::Table(l1) = &links[1].value else {
            panic!()
        };
        let Value::Table(down) = &l1.get("down").unwrap().value else {
            panic!()
        };
        assert_eq!(down.get("delay").unwrap().value, Value::Int(40));
        assert_eq!(down.get("delay").unwrap().line, 17);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("a = 1\nb = oops\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.msg.contains("quotes"), "{e}");
        let e = parse("a = 1\n\na = 2\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.msg.contains("duplicate"), "{e}");
        let e = parse("x = \"open\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse("[t]\nk = 1 2\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("k = [1, 2\n").unwrap_err();
        assert!(e.msg.contains("expected"), "{e}");
    }
}
