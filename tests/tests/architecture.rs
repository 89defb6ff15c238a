//! The shape of the code, checked: which engine modules depend on which,
//! and how long functions are.
//!
//! * Module dependencies (`crate::x` paths in engine/src) may form no cycle
//!   other than the ones listed in `CYCLE_ALLOWED`, a list that only shrinks:
//!   a module joining a cycle fails, and so does a listed module that has
//!   left it (remove it from the list).
//! * Non-test functions in the engine, the appliance and firmware-config
//!   stay within `FN_LINES_MAX` lines, except those in `LONG_ALLOWED` with
//!   their current length as a ceiling: a listed function may shrink (and
//!   must leave the list once short), never grow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FN_LINES_MAX: usize = 70;

/// Engine modules allowed on a dependency cycle: none is left.
const CYCLE_ALLOWED: &[&str] = &[];

/// Dependencies allowed to point up a layer, (from, to): none is left, and
/// none may come back.
const UPWARD_ALLOWED: &[(&str, &str)] = &[];

/// Functions over the limit today: (file, function, lines at most).
const LONG_ALLOWED: &[(&str, &str, usize)] = &[
    ("engine/src/store/blob.rs", "put_blob_for", 121),
    ("engine/src/log/commit.rs", "builder", 153),
    ("engine/src/log/commit.rs", "writer", 116),
    ("engine/src/compliance/state.rs", "apply", 120),
    ("engine/src/integrity/export.rs", "verify_bundle", 114),
    ("engine/src/index/mod.rs", "insert", 79),
    ("engine/src/index/mod.rs", "remove_range", 80),
    ("engine/src/crypto/kek.rs", "open", 78),
    ("engine/src/store/mod.rs", "create", 126),
    ("engine/src/log/superblock.rs", "decode", 91),
    ("appliance/src/capture/metrics.rs", "new", 133),
    ("appliance/src/daemon/metrics.rs", "registry", 172),
    ("firmware-config/src/validate.rs", "validate", 344),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `text` with comments, string and char literals blanked (newlines kept),
/// so braces and words can be counted.
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || (next == Some('#') && !prev_ident(&b, i))) {
            // Raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') || prev_ident(&b, i) {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while j < b.len() && !b[j..].iter().take(close.len()).copied().eq(close.chars()) {
                j += 1;
            }
            for &ch in &b[i..(j + close.len()).min(b.len())] {
                out.push(blank(ch));
            }
            i = j + close.len();
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && char_literal_len(&b, i).is_some() {
            let n = char_literal_len(&b, i).expect("checked");
            out.extend(std::iter::repeat_n(' ', n));
            i += n;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `code` (from [`code_only`]) with its `#[cfg(test)]` modules blanked.
fn without_tests(code: &str) -> String {
    let mut out = Vec::new();
    let mut depth: i64 = 0;
    let mut skipping: Option<i64> = None;
    let mut test_next = false;
    for line in code.lines() {
        let t = line.trim();
        if skipping.is_none() && test_next && t.starts_with("mod ") {
            skipping = Some(depth);
        }
        test_next = t.starts_with("#[cfg(test)]") || (test_next && t.is_empty());
        let blank = skipping.is_some();
        for ch in line.chars() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if skipping == Some(depth) {
                        skipping = None;
                    }
                }
                _ => {}
            }
        }
        out.push(if blank { "" } else { line });
    }
    out.join("\n")
}

fn prev_ident(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// The length of a char literal starting at `i` ('x', '\n', '\u{..}'), or
/// `None` for a lifetime.
fn char_literal_len(b: &[char], i: usize) -> Option<usize> {
    match (b.get(i + 1), b.get(i + 2)) {
        (Some('\\'), _) => {
            let end = (i + 2..b.len().min(i + 12)).find(|&j| b[j] == '\'')?;
            Some(end - i + 1)
        }
        (Some(_), Some('\'')) => Some(3),
        _ => None,
    }
}

/// Non-test functions of a file: (name, lines from `fn` to its closing brace).
fn functions(text: &str) -> Vec<(String, usize)> {
    let code = code_only(text);
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    let mut skip_to: Option<(usize, i64)> = None; // inside a #[cfg(test)] block
    let mut depth: i64 = 0;
    let mut brackets: i64 = 0; // `[u8; 32]` in a signature is no declaration's end
    let mut open: Vec<(String, usize, i64)> = Vec::new();
    let mut test_next = false;
    for (n, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.starts_with("#[cfg(test)]") || t.starts_with("#[test]") {
            test_next = true;
        }
        if skip_to.is_none() {
            if let Some(name) = fn_name(t) {
                if test_next {
                    skip_to = Some((n, depth));
                } else if line.contains('{') || !t.ends_with(';') {
                    open.push((name, n, depth));
                }
                test_next = false;
            } else if t.starts_with("mod ") && test_next {
                skip_to = Some((n, depth));
                test_next = false;
            }
        }
        for ch in line.chars() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if let Some((_, d)) = skip_to {
                        if depth == d {
                            skip_to = None;
                        }
                    }
                    if let Some((_, _, d)) = open.last() {
                        if depth == *d {
                            let (name, start, _) = open.pop().expect("open");
                            out.push((name, n - start + 1));
                        }
                    }
                }
                '[' => brackets += 1,
                ']' => brackets -= 1,
                // A declaration without a body (a trait's), on one line or several.
                ';' if brackets == 0 && open.last().is_some_and(|(_, _, d)| *d == depth) => {
                    open.pop();
                }
                _ => {}
            }
        }
    }
    out
}

fn fn_name(t: &str) -> Option<String> {
    let mut words = t.split_whitespace().peekable();
    while let Some(w) = words.next() {
        match w {
            "pub" | "pub(crate)" | "pub(super)" | "async" | "const" | "unsafe" | "extern" => {
                continue
            }
            "fn" => {
                let name = words.next()?;
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                return (!name.is_empty()).then_some(name);
            }
            w if w.starts_with("pub(") => continue,
            _ => return None,
        }
    }
    None
}

#[test]
fn functions_stay_short() {
    let mut files = Vec::new();
    for dir in ["engine/src", "appliance/src", "firmware-config/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let allowed: BTreeMap<(String, String), usize> = LONG_ALLOWED
        .iter()
        .map(|(f, n, l)| ((f.to_string(), n.to_string()), *l))
        .collect();
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root()).unwrap_or(f).display().to_string();
        let rel = rel
            .trim_start_matches("./")
            .trim_start_matches("../")
            .to_string();
        let text = std::fs::read_to_string(f).expect("read source");
        for (name, len) in functions(&text) {
            let key = (rel.clone(), name.clone());
            match allowed.get(&key) {
                Some(&max) => {
                    seen.insert(key.clone());
                    if len > max {
                        problems.push(format!(
                            "{rel}: fn {name} grew to {len} lines (at most {max})"
                        ));
                    } else if len <= FN_LINES_MAX {
                        problems.push(format!(
                            "{rel}: fn {name} is {len} lines now: take it off LONG_ALLOWED"
                        ));
                    }
                }
                None if len > FN_LINES_MAX => problems.push(format!(
                    "{rel}: fn {name} is {len} lines (limit {FN_LINES_MAX})"
                )),
                None => {}
            }
        }
    }
    for key in allowed.keys() {
        if !seen.contains(key) {
            problems.push(format!(
                "{}: fn {} is gone: take it off LONG_ALLOWED",
                key.0, key.1
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The engine's module for a file: `layer::file` for a file inside a layer
/// folder (`log::zone`, `io::device` for everything under io/device/), the
/// layer itself for its mod.rs, the file's name for a file at the root.
fn module_of(src: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(src).expect("under src");
    let parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    match parts.as_slice() {
        [file] => file.clone(),
        [layer, file] if file == "mod" => layer.clone(),
        [layer, file, ..] => format!("{layer}::{file}"),
        [] => unreachable!("a file has a name"),
    }
}

/// The module a path after `crate::` names: `log::zone::ZoneSet` → `log::zone`,
/// `index::Index` → `index`, `error::Error` → `error`.
fn named_module(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut words = path.split("::").map(|w| {
        w.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect::<String>()
    });
    let first = words.next()?;
    if let Some(second) = words.next() {
        let both = format!("{first}::{second}");
        if modules.contains(&both) {
            return Some(both);
        }
    }
    modules.contains(&first).then_some(first)
}

/// engine module → the engine modules it names (`crate::x::y`, and each
/// name in `crate::{x, y::z}`), test code left out.
fn engine_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("engine/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules: BTreeSet<String> = files.iter().map(|p| module_of(&src, p)).collect();
    // A layer's own name is a module too (its mod.rs may re-export nothing).
    let layers: Vec<String> = modules
        .iter()
        .filter_map(|m| m.split_once("::"))
        .map(|(l, _)| l.to_string())
        .collect();
    modules.extend(layers);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = module_of(&src, f);
        if from == "lib" {
            continue;
        }
        let code = without_tests(&code_only(&std::fs::read_to_string(f).expect("read")));
        let deps = graph.entry(from.clone()).or_default();
        let mut named = Vec::new();
        for part in code.split("crate::").skip(1) {
            if let Some(inner) = part.strip_prefix('{') {
                let inner = inner.split('}').next().unwrap_or("");
                named.extend(inner.split(',').map(|i| i.trim().to_string()));
            } else {
                named.push(
                    part.split(|c: char| c.is_whitespace() || c == ';' || c == '{')
                        .next()
                        .unwrap_or("")
                        .to_string(),
                );
            }
        }
        for path in named {
            if let Some(m) = named_module(&path, &modules) {
                if m != from {
                    deps.insert(m);
                }
            }
        }
    }
    graph
}

/// The layers, bottom to top, as docs/ARCHITECTURE.md states them on its
/// `Layers, bottom to top:` line.
fn documented_layers() -> Vec<String> {
    let doc =
        std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
    let line = doc
        .lines()
        .find(|l| l.starts_with("Layers, bottom to top:"))
        .expect("docs/ARCHITECTURE.md states the layer order on a `Layers, bottom to top:` line");
    line.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn layer_of(module: &str) -> &str {
    module.split("::").next().expect("a name")
}

/// The modules that lie on a cycle (strongly connected components of more than one).
fn cyclic(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let reach = |start: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_string()];
        while let Some(m) = todo.pop() {
            for d in graph.get(&m).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    graph
        .keys()
        .filter(|m| reach(m).contains(*m))
        .cloned()
        .collect()
}

#[test]
fn engine_modules_form_no_new_cycle() {
    let graph = engine_graph();
    assert!(
        graph.contains_key("store") && graph["store"].contains("log::commit"),
        "the graph is read: {graph:?}"
    );
    let found = cyclic(&graph);
    let allowed: BTreeSet<String> = CYCLE_ALLOWED.iter().map(|s| s.to_string()).collect();
    let joined: Vec<_> = found.difference(&allowed).collect();
    let left: Vec<_> = allowed.difference(&found).collect();
    assert!(
        joined.is_empty() && left.is_empty(),
        "modules newly on a dependency cycle: {joined:?}; listed but no longer on one (take them off CYCLE_ALLOWED): {left:?}"
    );
}

#[test]
fn the_scanner_sees_through_strings_and_comments() {
    let text = "fn a() {\n    let s = \"}\"; // }\n    let c = '}';\n    let r = r#\"}\"#;\n}\n#[cfg(test)]\nmod tests {\n    fn b() {\n    }\n}\nfn c<'a>(x: &'a str) -> &'a str {\n    x\n}\ntrait T {\n    fn d(\n        &self,\n    ) -> u8;\n    fn e(&self) -> [u8; 2] {\n        [0; 2]\n    }\n}\n";
    assert_eq!(
        functions(text),
        vec![
            ("a".to_string(), 5),
            ("c".to_string(), 3),
            ("e".to_string(), 3)
        ]
    );
}

#[test]
fn the_folders_are_the_documented_layers() {
    let src = root().join("engine/src");
    let folders: BTreeSet<String> = std::fs::read_dir(&src)
        .expect("read engine/src")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().expect("a name").to_string_lossy().to_string())
        .collect();
    let documented: BTreeSet<String> = documented_layers().into_iter().collect();
    assert_eq!(
        folders, documented,
        "engine/src's folders and the layers docs/ARCHITECTURE.md names"
    );
}

#[test]
fn no_dependency_points_up_a_layer() {
    let layers = documented_layers();
    let rank = |m: &str| layers.iter().position(|l| l == layer_of(m));
    let graph = engine_graph();
    let allowed: BTreeSet<(String, String)> = UPWARD_ALLOWED
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let mut up = BTreeSet::new();
    for (from, deps) in &graph {
        for to in deps {
            let upward = match (rank(from), rank(to)) {
                (Some(a), Some(b)) => b > a,
                // A root module (error) is below every layer: it may name none.
                (None, Some(_)) => true,
                _ => false,
            };
            if upward {
                up.insert((from.clone(), to.clone()));
            }
        }
    }
    let new: Vec<_> = up.difference(&allowed).collect();
    let gone: Vec<_> = allowed.difference(&up).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "dependencies pointing up a layer: {new:?}; listed but gone (take them off UPWARD_ALLOWED): {gone:?}"
    );
}
