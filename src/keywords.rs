//! `FromStr` for the fieldless enums that name a choice on the command line or in a config
//! (window, padding, pooling, backend, …): one table of spellings per enum instead of a
//! hand-written `match` each.

/// Implements `FromStr` for a fieldless enum from its spellings, matched after ASCII
/// lower-casing. `$s` names the input in the error message; with `trim`, the input is also
/// trimmed and `$s` names the trimmed, lower-cased input.
///
/// ```ignore
/// from_keywords!(Pool, |s| "unknown pooling '{s}': expected cls or mean",
///     "cls" => Cls,
///     "mean" | "avg" => Mean,
/// );
/// ```
macro_rules! from_keywords {
    (trim $ty:ident, |$s:ident| $msg:literal, $($($word:literal)|+ => $variant:ident),+ $(,)?) => {
        impl std::str::FromStr for $ty {
            type Err = anyhow::Error;
            fn from_str(input: &str) -> anyhow::Result<Self> {
                let $s = input.trim().to_ascii_lowercase();
                match $s.as_str() {
                    $($($word)|+ => Ok($ty::$variant),)+
                    _ => anyhow::bail!($msg),
                }
            }
        }
    };
    ($ty:ident, |$s:ident| $msg:literal, $($($word:literal)|+ => $variant:ident),+ $(,)?) => {
        impl std::str::FromStr for $ty {
            type Err = anyhow::Error;
            fn from_str($s: &str) -> anyhow::Result<Self> {
                match $s.to_ascii_lowercase().as_str() {
                    $($($word)|+ => Ok($ty::$variant),)+
                    _ => anyhow::bail!($msg),
                }
            }
        }
    };
}
