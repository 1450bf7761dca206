//! Every kernel's Rust declaration (`kernels!` in src/backend/cuda/*.rs) against its
//! `extern "C" __global__` signature in kernels/*.cu: the same kernels, and for each argument
//! the same name, kind (pointer or scalar type), element type and constness. A mismatch here
//! is a wrong launch on a GPU; this test finds it without one.
//!
//! The CUDA side is read by a small parser written here (comments, line continuations and the
//! files' function-like instantiation macros expanded), independent of the Rust declarations.

use seisfuse::backend::cuda::launch::{ArgKind, Elem, KernelSig};
use seisfuse::backend::cuda::{all_signatures, KERNEL_SOURCES};
use seisfuse::DType;
use std::collections::BTreeMap;

/// One parameter of a CUDA kernel, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CParam {
    name: String,
    /// f32, bf16, i32, i64, u32, u64
    base: String,
    pointer: bool,
    constant: bool,
}

fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && i + 1 < b.len() && b[i + 1] == b'/' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && i + 1 < b.len() && b[i + 1] == b'*' {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Replaces whole-word occurrences of `from` by `to`.
fn replace_word(s: &str, from: &str, to: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    for c in s.chars().chain(std::iter::once('\0')) {
        if is_ident(c) {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push_str(if word == from { to } else { &word });
                word.clear();
            }
            if c != '\0' {
                out.push(c);
            }
        }
    }
    out
}

/// The text between the parenthesis at `open` and its match, and the index after it.
fn balanced(s: &str, open: usize) -> Option<(String, usize)> {
    let mut depth = 0;
    for (i, c) in s[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((s[open + 1..open + i].to_string(), open + i + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// The file's text with its function-like macros that define kernels expanded.
fn expand(source: &str) -> String {
    let text = strip_comments(source).replace("\\\n", " ");
    let mut macros: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    let mut body = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("#define") {
            let rest = rest.trim_start();
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            if rest[name.len()..].starts_with('(') {
                let (params, after) = balanced(rest, name.len()).expect("macro parameters");
                let params = params.split(',').map(|p| p.trim().to_string()).collect();
                macros.insert(name, (params, rest[after..].to_string()));
            }
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    macros.retain(|_, (_, b)| b.contains("__global__"));
    let mut out = body;
    for (name, (params, mbody)) in &macros {
        let mut expanded = String::new();
        let mut rest = out.as_str();
        while let Some(pos) = find_word(rest, name) {
            let open = pos + name.len();
            if !rest[open..].starts_with('(') {
                expanded.push_str(&rest[..open]);
                rest = &rest[open..];
                continue;
            }
            let (args, after) = balanced(rest, open).expect("macro arguments");
            let args: Vec<&str> = args.split(',').map(str::trim).collect();
            assert_eq!(args.len(), params.len(), "macro {name}: argument count");
            let mut b = mbody.clone();
            for (p, a) in params.iter().zip(&args) {
                b = replace_word(&b, p, a);
            }
            let b = b
                .replace(" ## ", "")
                .replace("## ", "")
                .replace(" ##", "")
                .replace("##", "");
            expanded.push_str(&rest[..pos]);
            expanded.push_str(&b);
            expanded.push('\n');
            rest = &rest[after..];
        }
        expanded.push_str(rest);
        out = expanded;
    }
    out
}

fn find_word(s: &str, w: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = s[from..].find(w) {
        let at = from + p;
        let before = s[..at].chars().last().is_none_or(|c| !is_ident(c));
        let after = s[at + w.len()..]
            .chars()
            .next()
            .is_none_or(|c| !is_ident(c));
        if before && after {
            return Some(at);
        }
        from = at + w.len();
    }
    None
}

fn parse_param(p: &str, kernel: &str) -> CParam {
    let spaced = p.replace('*', " * ");
    let toks: Vec<&str> = spaced
        .split_whitespace()
        .filter(|t| *t != "__restrict__")
        .collect();
    let name = toks.last().expect("parameter name").to_string();
    let ty = &toks[..toks.len() - 1];
    let pointer = ty.contains(&"*");
    let constant = ty.contains(&"const");
    let words: Vec<&str> = ty
        .iter()
        .copied()
        .filter(|t| *t != "*" && *t != "const")
        .collect();
    let base = match words.join(" ").as_str() {
        "float" => "f32",
        "bf16_t" => "bf16",
        "int" => "i32",
        "long long" => "i64",
        "unsigned int" | "unsigned" => "u32",
        "unsigned long long" => "u64",
        other => panic!("{kernel}: parameter {name} has a type this check does not know: {other}"),
    };
    CParam {
        name,
        base: base.into(),
        pointer,
        constant,
    }
}

/// kernel name → parameters, for every `extern "C" __global__` function of a .cu file.
fn cuda_kernels(source: &str) -> BTreeMap<String, Vec<CParam>> {
    let text = expand(source);
    let mut out = BTreeMap::new();
    let mut rest = text.as_str();
    while let Some(pos) = rest.find("extern \"C\" __global__ void") {
        let mut s = rest[pos + "extern \"C\" __global__ void".len()..].trim_start();
        if let Some(lb) = s.strip_prefix("__launch_bounds__") {
            let open = lb.find('(').expect("launch bounds");
            let (_, after) = balanced(lb, open).expect("launch bounds");
            s = lb[after..].trim_start();
        }
        let name: String = s.chars().take_while(|&c| is_ident(c)).collect();
        let open = s[name.len()..].find('(').expect("kernel parameters") + name.len();
        let (params, after) = balanced(s, open).expect("kernel parameters");
        let params = params
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| parse_param(p, &name))
            .collect();
        assert!(
            out.insert(name.clone(), params).is_none(),
            "kernel {name} defined twice"
        );
        rest = &s[after..];
    }
    out
}

/// The CUDA parameter a Rust declaration stands for, with T instantiated as `dtype`.
fn expected(name: &str, kind: ArgKind, dtype: Option<DType>) -> CParam {
    let (base, pointer, constant) = match kind {
        ArgKind::Ptr { elem, write, .. } => {
            let base = match elem {
                Elem::T => match dtype {
                    Some(DType::BF16) => "bf16",
                    _ => "f32",
                },
                Elem::f32 => "f32",
                Elem::bf16 => "bf16",
                Elem::i32 => "i32",
            };
            (base, true, !write)
        }
        ArgKind::i32 => ("i32", false, false),
        ArgKind::i64 => ("i64", false, false),
        ArgKind::u32 => ("u32", false, false),
        ArgKind::u64 => ("u64", false, false),
        ArgKind::f32 => ("f32", false, false),
    };
    CParam {
        name: name.to_string(),
        base: base.into(),
        pointer,
        constant,
    }
}

fn declared_by_file() -> BTreeMap<&'static str, Vec<&'static KernelSig>> {
    let mut m: BTreeMap<&str, Vec<&KernelSig>> = BTreeMap::new();
    for s in all_signatures() {
        m.entry(s.file).or_default().push(s);
    }
    m
}

#[test]
fn parser_reads_a_macro_instantiated_kernel() {
    let src = r#"
        // a comment with extern "C" __global__ void fake(int x)
        #define INSTANTIATE(SUF, T) \
            extern "C" __global__ void __launch_bounds__(32 * 4) op_##SUF(T* y, const T* __restrict__ x, \
                                                        const float* s, long long n, unsigned int k) { }
        INSTANTIATE(f32, float)
        INSTANTIATE(bf16, bf16_t)
        extern "C" __global__ void plain(int* idx, unsigned long long seed) { }
    "#;
    let k = cuda_kernels(src);
    assert_eq!(k.keys().collect::<Vec<_>>(), ["op_bf16", "op_f32", "plain"]);
    let p = &k["op_bf16"];
    assert_eq!(p.len(), 5);
    assert_eq!(
        p[0],
        CParam {
            name: "y".into(),
            base: "bf16".into(),
            pointer: true,
            constant: false
        }
    );
    assert!(p[1].constant && p[1].pointer && p[1].base == "bf16");
    assert_eq!((p[3].base.as_str(), p[4].base.as_str()), ("i64", "u32"));
    assert_eq!(k["plain"][1].base, "u64");
}

#[test]
fn every_declared_kernel_matches_its_cuda_signature() {
    let declared = declared_by_file();
    let mut checked = 0;
    for (file, sigs) in &declared {
        let src = KERNEL_SOURCES
            .iter()
            .find(|k| k.name == *file)
            .unwrap_or_else(|| {
                panic!("declarations name kernels/{file}.cu, which is not embedded")
            });
        let cuda = cuda_kernels(src.source);
        for sig in sigs {
            for (kname, dtype) in sig.instances() {
                let Some(params) = cuda.get(&kname) else {
                    panic!("{kname} is declared in Rust but not defined in kernels/{file}.cu");
                };
                assert_eq!(
                    params.len(),
                    sig.args.len(),
                    "{kname}: kernels/{file}.cu has {} parameters, the Rust declaration {}",
                    params.len(),
                    sig.args.len()
                );
                for (i, ((name, kind), c)) in sig.args.iter().zip(params).enumerate() {
                    let want = expected(name, *kind, dtype);
                    assert_eq!(
                        want, *c,
                        "{kname}, argument {i}: Rust declares {want:?}, kernels/{file}.cu has {c:?}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no kernel declarations were found");
    println!("{checked} kernel instantiations match their declarations");
}

#[test]
fn every_cuda_kernel_is_declared_in_rust() {
    let declared = declared_by_file();
    let mut missing = Vec::new();
    for src in KERNEL_SOURCES {
        let names: Vec<String> = declared
            .get(src.name)
            .map(|sigs| {
                sigs.iter()
                    .flat_map(|s| s.instances().into_iter().map(|(n, _)| n))
                    .collect()
            })
            .unwrap_or_default();
        for k in cuda_kernels(src.source).keys() {
            if !names.contains(k) {
                missing.push(format!("{k} (kernels/{}.cu)", src.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "kernels without a Rust declaration: {}",
        missing.join(", ")
    );
}
