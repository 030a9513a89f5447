//! Command-line arguments for the benchmark binaries, strictly: an unknown
//! flag, a flag given twice, a flag without its value, or a value that
//! does not parse is an error naming the flag, never a silent default.
//!
//! A command line is leading positional words (`serve strata`), then
//! flags (`--secs 5`, `--quiet`). Each binary takes what it knows, then
//! calls [`Args::finish`], which rejects whatever was left over:
//!
//! ```
//! use strata_bench::args::Args;
//!
//! let mut a = Args::new(["load", "127.0.0.1:9", "--secs", "0.5"]);
//! assert_eq!(a.positional().as_deref(), Some("load"));
//! assert_eq!(a.positional().as_deref(), Some("127.0.0.1:9"));
//! let secs = a.secs("--secs", 5.0).unwrap();
//! assert_eq!(secs.as_millis(), 500);
//! assert_eq!(a.value("--conns", 64usize).unwrap(), 64);
//! a.finish().unwrap();
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A command-line mistake; [`ArgError::exit`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(String);

impl ArgError {
    /// An error with this message (for checks the binary makes itself).
    pub fn new(msg: impl Into<String>) -> ArgError {
        ArgError(msg.into())
    }

    /// Prints `error: <message>` and the usage on standard error and
    /// exits with status 2.
    pub fn exit(&self, usage: &str) -> ! {
        eprintln!("error: {self}\n\n{usage}");
        std::process::exit(2);
    }
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// The arguments, and which of them have been taken.
#[derive(Debug)]
pub struct Args {
    items: Vec<String>,
    taken: Vec<bool>,
    positionals: usize,
}

impl Args {
    /// The given arguments (without the program name).
    pub fn new<I, S>(items: I) -> Args
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let items: Vec<String> = items.into_iter().map(Into::into).collect();
        let taken = vec![false; items.len()];
        Args {
            items,
            taken,
            positionals: 0,
        }
    }

    /// The process's arguments. With `-h` or `--help` anywhere, prints
    /// `usage` on standard output and exits with status 0.
    pub fn from_env(usage: &str) -> Args {
        let args = Args::new(std::env::args().skip(1));
        if args.items.iter().any(|a| a == "-h" || a == "--help") {
            println!("{usage}");
            std::process::exit(0);
        }
        args
    }

    /// The next leading positional word, if the next argument is one
    /// (does not start with `-`).
    pub fn positional(&mut self) -> Option<String> {
        let i = self.positionals;
        let word = self.items.get(i).filter(|a| !a.starts_with('-'))?;
        self.taken[i] = true;
        self.positionals += 1;
        Some(word.clone())
    }

    /// The one position of `name`, if given; an error if given twice.
    fn find(&self, name: &str) -> Result<Option<usize>, ArgError> {
        let mut at = self
            .items
            .iter()
            .enumerate()
            .filter(|&(i, a)| a == name && !self.taken[i])
            .map(|(i, _)| i);
        match (at.next(), at.next()) {
            (Some(_), Some(_)) => Err(ArgError(format!("{name} is given more than once"))),
            (first, _) => Ok(first),
        }
    }

    /// Whether the switch `name` (a flag without a value) is given.
    pub fn flag(&mut self, name: &str) -> Result<bool, ArgError> {
        let at = self.find(name)?;
        if let Some(i) = at {
            self.taken[i] = true;
        }
        Ok(at.is_some())
    }

    /// The text after `name`, if `name` is given.
    pub fn raw(&mut self, name: &str) -> Result<Option<String>, ArgError> {
        let Some(i) = self.find(name)? else {
            return Ok(None);
        };
        let value = self
            .items
            .get(i + 1)
            .filter(|v| !v.starts_with("--"))
            .ok_or_else(|| ArgError(format!("{name} needs a value")))?
            .clone();
        self.taken[i] = true;
        self.taken[i + 1] = true;
        Ok(Some(value))
    }

    /// The value of `name` parsed as `T`, or `default` when not given.
    pub fn value<T>(&mut self, name: &str, default: T) -> Result<T, ArgError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.raw(name)? {
            None => Ok(default),
            Some(v) => parse(name, &v),
        }
    }

    /// Like [`Args::value`], and the value must be at least `min`.
    pub fn at_least<T>(&mut self, name: &str, default: T, min: T) -> Result<T, ArgError>
    where
        T: FromStr + PartialOrd + fmt::Display,
        T::Err: fmt::Display,
    {
        let v = self.value(name, default)?;
        if v < min {
            return Err(ArgError(format!("{name} must be at least {min}, not {v}")));
        }
        Ok(v)
    }

    /// A duration in seconds, fractions allowed (`0.5`); it must be more
    /// than zero.
    pub fn secs(&mut self, name: &str, default: f64) -> Result<Duration, ArgError> {
        let s: f64 = self.value(name, default)?;
        match Duration::try_from_secs_f64(s) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(ArgError(format!(
                "{name} must be a number of seconds above zero, not {s}"
            ))),
        }
    }

    /// A comma-separated list (`1,16`), each item parsed as `T`, or
    /// `default` (in the same form) when not given. Empty lists and empty
    /// items are errors.
    pub fn list<T>(&mut self, name: &str, default: &str) -> Result<Vec<T>, ArgError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let text = self.raw(name)?.unwrap_or_else(|| default.to_string());
        text.split(',')
            .map(|item| {
                if item.is_empty() {
                    Err(ArgError(format!("{name}: empty item in {text:?}")))
                } else {
                    parse(name, item)
                }
            })
            .collect()
    }

    /// A comma-separated list of words, each one of `allowed`.
    pub fn choices(
        &mut self,
        name: &str,
        default: &str,
        allowed: &[&str],
    ) -> Result<Vec<String>, ArgError> {
        let words: Vec<String> = self.list(name, default)?;
        if let Some(bad) = words.iter().find(|w| !allowed.contains(&w.as_str())) {
            return Err(ArgError(format!(
                "{name}: unknown {bad:?}; use {}",
                allowed.join(", ")
            )));
        }
        Ok(words)
    }

    /// Succeeds if every argument was taken; otherwise names the first
    /// one that was not.
    pub fn finish(self) -> Result<(), ArgError> {
        match self.taken.iter().position(|t| !t) {
            None => Ok(()),
            Some(i) => {
                let a = &self.items[i];
                Err(ArgError(if a.starts_with('-') {
                    format!("unknown flag {a}")
                } else {
                    format!("unexpected argument {a:?}")
                }))
            }
        }
    }
}

fn parse<T>(name: &str, text: &str) -> Result<T, ArgError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    text.parse()
        .map_err(|e| ArgError(format!("{name}: cannot read {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Args {
        Args::new(line.split_whitespace())
    }

    #[test]
    fn values_flags_and_defaults() {
        let mut a = args("--reps 6 --quiet --depths 1,16");
        assert_eq!(a.value("--reps", 3usize), Ok(6));
        assert_eq!(a.value("--conns", 64usize), Ok(64));
        assert_eq!(a.flag("--quiet"), Ok(true));
        assert_eq!(a.flag("--progress"), Ok(false));
        assert_eq!(a.list::<usize>("--depths", "1"), Ok(vec![1, 16]));
        assert_eq!(a.list::<usize>("--other", "2,3"), Ok(vec![2, 3]));
        assert_eq!(a.finish(), Ok(()));
    }

    #[test]
    fn a_value_that_does_not_parse_names_the_flag() {
        let e = args("--reps 0.5").value("--reps", 3usize).unwrap_err();
        assert!(
            e.to_string().starts_with("--reps: cannot read \"0.5\""),
            "{e}"
        );
        let e = args("--depths 1,x")
            .list::<usize>("--depths", "1")
            .unwrap_err();
        assert!(
            e.to_string().starts_with("--depths: cannot read \"x\""),
            "{e}"
        );
        let e = args("--depths 1,,16")
            .list::<usize>("--depths", "1")
            .unwrap_err();
        assert!(e.to_string().contains("empty item"), "{e}");
    }

    #[test]
    fn a_missing_or_repeated_value_is_an_error() {
        let e = args("--secs").secs("--secs", 5.0).unwrap_err();
        assert_eq!(e.to_string(), "--secs needs a value");
        let e = args("--secs --reps 2").secs("--secs", 5.0).unwrap_err();
        assert_eq!(e.to_string(), "--secs needs a value");
        let e = args("--secs 1 --secs 2").secs("--secs", 5.0).unwrap_err();
        assert_eq!(e.to_string(), "--secs is given more than once");
    }

    #[test]
    fn seconds_take_fractions_and_must_be_positive() {
        assert_eq!(
            args("--secs 0.5").secs("--secs", 5.0),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(args("").secs("--secs", 5.0), Ok(Duration::from_secs(5)));
        for bad in ["0", "-1", "nan", "inf", "1e30"] {
            let e = args(&format!("--secs {bad}"))
                .secs("--secs", 5.0)
                .unwrap_err();
            assert!(e.to_string().starts_with("--secs "), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_and_left_over_arguments_fail_finish() {
        // `--depth` is the `load` command's flag, not the benchmark's.
        let mut a = args("--depths 1 --depth 1");
        a.list::<usize>("--depths", "1,16").unwrap();
        assert_eq!(a.finish().unwrap_err().to_string(), "unknown flag --depth");
        let mut a = args("--reps 3 7");
        a.value("--reps", 1usize).unwrap();
        assert_eq!(
            a.finish().unwrap_err().to_string(),
            "unexpected argument \"7\""
        );
    }

    #[test]
    fn positionals_lead() {
        let mut a = args("serve strata --workers 2");
        assert_eq!(a.positional().as_deref(), Some("serve"));
        assert_eq!(a.positional().as_deref(), Some("strata"));
        assert_eq!(a.positional(), None);
        assert_eq!(a.value("--workers", 1usize), Ok(2));
        assert_eq!(a.finish(), Ok(()));
        // A flag's value is not a positional word.
        let mut a = args("--secs 5");
        assert_eq!(a.positional(), None);
    }

    #[test]
    fn bounds_and_choices() {
        let e = args("--reps 0").at_least("--reps", 3usize, 1).unwrap_err();
        assert_eq!(e.to_string(), "--reps must be at least 1, not 0");
        assert_eq!(args("").at_least("--reps", 3usize, 1), Ok(3));
        let modes = ["pinned", "shared"];
        assert_eq!(
            args("--modes shared").choices("--modes", "pinned,shared", &modes),
            Ok(vec!["shared".to_string()])
        );
        let e = args("--modes pined")
            .choices("--modes", "pinned,shared", &modes)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--modes: unknown \"pined\"; use pinned, shared"
        );
    }
}
