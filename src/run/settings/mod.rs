//! Every setting a user chooses for a training run, declared once ([`table`]): its field in
//! `config.json`, its flag and help, how its value is written, its checks with their messages,
//! whether `--resume` may change it, and how the report names it when it is not d2l's.
//!
//! From the declarations, the command line builds its flags (`cli::config_flags`), the config
//! runs its checks ([`TrainingConfig::validate`]), a resumed run finds what changed
//! ([`Overrides::changes`]) and the report prints what is not d2l's ([`not_d2l`]). Messages
//! below the command line name a setting by its field; the command line names it by its flag.
//!
//! Adding a setting: a field with d2l's default in [`TrainingConfig`] (or one of its parts), one
//! entry in [`table`], and its use where it acts.

mod table;
mod validate;

pub use table::Setting;
pub use validate::ConfigError;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::config::TrainingConfig;

/// How a setting is written on the command line, which decides how its text is parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A whole number.
    Count,
    /// A 64-bit seed.
    Seed,
    /// A real number; a negative one parses, so that the setting's check names its range.
    Number,
    /// A flag without a value: given means on.
    Switch,
    /// A file or folder.
    Path,
    /// Free text.
    Text,
    /// One of these values, each with its line in `--help`.
    Choice(&'static [(&'static str, &'static str)]),
    /// A comma-separated list of these values.
    Choices(&'static [(&'static str, &'static str)]),
    /// A comma-separated list of real numbers.
    Numbers,
}

/// A value given for a setting, as its [`Kind`] parsed it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// [`Kind::Count`].
    Count(usize),
    /// [`Kind::Seed`].
    Seed(u64),
    /// [`Kind::Number`].
    Number(f64),
    /// [`Kind::Switch`], given.
    On,
    /// [`Kind::Path`].
    Path(PathBuf),
    /// [`Kind::Text`], or the name of a [`Kind::Choice`].
    Text(String),
    /// The names of a [`Kind::Choices`].
    Names(Vec<String>),
    /// [`Kind::Numbers`].
    Numbers(Vec<f64>),
}

/// Reading a [`Value`] as its setting's kind; a mismatch is a slip in [`table`], which the
/// tests of every setting catch.
impl Value {
    fn count(&self) -> usize {
        match self {
            Self::Count(n) => *n,
            other => panic!("a count setting was given {other:?}"),
        }
    }

    fn seed(&self) -> u64 {
        match self {
            Self::Seed(n) => *n,
            other => panic!("a seed setting was given {other:?}"),
        }
    }

    fn number(&self) -> f64 {
        match self {
            Self::Number(x) => *x,
            other => panic!("a number setting was given {other:?}"),
        }
    }

    fn path(&self) -> PathBuf {
        match self {
            Self::Path(p) => p.clone(),
            other => panic!("a path setting was given {other:?}"),
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            other => panic!("a text setting was given {other:?}"),
        }
    }

    fn names(&self) -> &[String] {
        match self {
            Self::Names(names) => names,
            other => panic!("a list setting was given {other:?}"),
        }
    }

    fn numbers(&self) -> &[f64] {
        match self {
            Self::Numbers(x) => x,
            other => panic!("a number-list setting was given {other:?}"),
        }
    }
}

/// One rule a setting's value must follow, perhaps with another setting's.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// Whether the configuration follows it.
    pub holds: fn(&TrainingConfig) -> bool,
    /// What to say when it does not: `{flag}` stands for the setting's name, `{value}` for its
    /// value and `{needs}` for the name of [`Check::needs`].
    pub message: &'static str,
    /// The other setting the message names.
    pub needs: Option<Setting>,
}

/// Everything about one setting.
#[derive(Debug, Clone, Copy)]
pub struct Declaration {
    /// The setting.
    pub setting: Setting,
    /// Its dotted path in `config.json`.
    pub field: &'static str,
    /// Its flag, `--…`.
    pub flag: &'static str,
    /// How `--help` shows its value; `None` is the field's last part in capitals.
    pub value_name: Option<&'static str>,
    /// Its line in `--help`.
    pub help: &'static str,
    /// The `--help` section it is listed in, also its report line's name.
    pub heading: Option<&'static str>,
    /// How its value is written.
    pub kind: Kind,
    /// Whether a resumed run may change it.
    pub may_resume: bool,
    /// Its value in a configuration, as messages show it.
    pub show: fn(&TrainingConfig) -> String,
    /// Writes a given value into a configuration.
    pub set: fn(&mut TrainingConfig, &Value),
    /// The rules its value follows.
    pub checks: &'static [Check],
    /// How the report says it when its value is not d2l's: `{}` stands for the value; `None`
    /// for the settings of the report's protocol line, or reported otherwise.
    pub report: Option<&'static str>,
}

impl Declaration {
    /// What the declarations leave out: no value name, heading, checks or report phrase, fixed
    /// on resume.
    const PLAIN: Self = Self {
        setting: Setting::Epochs,
        field: "",
        flag: "",
        value_name: None,
        help: "",
        heading: None,
        kind: Kind::Count,
        may_resume: false,
        show: |_| String::new(),
        set: |_, _| {},
        checks: &[],
        report: None,
    };

    /// The value name `--help` shows.
    pub fn value_name(&self) -> String {
        match self.value_name {
            Some(name) => name.to_string(),
            None => self
                .flag
                .trim_start_matches("--")
                .replace('-', "_")
                .to_uppercase(),
        }
    }
}

/// Declares the settings: the [`Setting`] enum, in `--help` order, and each one's
/// [`Declaration`], whose unnamed fields are [`Declaration::PLAIN`]'s.
macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $name:ident { $($field:ident: $value:expr),* $(,)? } )*) => {
        /// A field of `config.json` that a user chooses.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Setting {
            $( $(#[doc = $doc])* $name, )*
        }

        impl Setting {
            /// Every setting, in `--help` order (also the order conflicts are reported in).
            pub const ALL: &'static [Setting] = &[$(Setting::$name),*];

            /// Its declaration.
            // A declaration that names every field leaves PLAIN nothing to fill.
            #[allow(clippy::needless_update)]
            pub fn declaration(self) -> &'static Declaration {
                match self {
                    $(Setting::$name => const {
                        &Declaration {
                            setting: Setting::$name,
                            $($field: $value,)*
                            ..Declaration::PLAIN
                        }
                    },)*
                }
            }
        }
    };
}
pub(crate) use settings;

impl Setting {
    /// Its path in `config.json`.
    pub fn field(self) -> &'static str {
        self.declaration().field
    }

    /// Its value in `config`, as messages show it (`all` for no limit, `off` for no clipping).
    pub fn value_in(self, config: &TrainingConfig) -> String {
        (self.declaration().show)(config)
    }

    /// The first of its rules that `config` breaks.
    pub fn broken_check(self, config: &TrainingConfig) -> Option<&'static Check> {
        self.declaration()
            .checks
            .iter()
            .find(|check| !(check.holds)(config))
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}

/// How a message names settings: by field ([`Setting::field`]) or, on the command line, by flag.
pub type SettingNames<'a> = &'a dyn Fn(Setting) -> String;

/// The field names, for messages outside the command line.
pub fn field_names(setting: Setting) -> String {
    setting.field().to_string()
}

/// Fills a check's message: `{flag}` and `{needs}` named by `name`, `{value}` as given.
pub fn fill(check: &Check, setting: Setting, value: &str, name: SettingNames) -> String {
    let mut message = check
        .message
        .replace("{flag}", &name(setting))
        .replace("{value}", value);
    if let Some(needs) = check.needs {
        message = message.replace("{needs}", &name(needs));
    }
    message
}

/// Values given for some settings of a run; a setting not given keeps the base
/// configuration's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides(BTreeMap<Setting, Value>);

impl Overrides {
    /// Gives `setting` this value.
    pub fn set(&mut self, setting: Setting, value: Value) {
        self.0.insert(setting, value);
    }

    /// `self` with `setting` given `value`.
    pub fn with(mut self, setting: Setting, value: Value) -> Self {
        self.set(setting, value);
        self
    }

    /// Whether `setting` was given.
    pub fn given(&self, setting: Setting) -> bool {
        self.0.contains_key(&setting)
    }

    /// `base` with every given value applied.
    pub fn applied_to(&self, mut base: TrainingConfig) -> TrainingConfig {
        for (setting, value) in &self.0 {
            (setting.declaration().set)(&mut base, value);
        }
        base
    }

    /// The settings given with another value than `config` has, in [`Setting::ALL`]'s order.
    pub fn changes(&self, config: &TrainingConfig) -> Vec<Setting> {
        let changed = self.applied_to(config.clone());
        Setting::ALL
            .iter()
            .copied()
            .filter(|s| s.value_in(&changed) != s.value_in(config))
            .collect()
    }
}

/// The report's phrases for the settings of `config` that are not d2l's, by report line
/// (`--help` heading), in `--help` order.
pub fn not_d2l(config: &TrainingConfig) -> Vec<(&'static str, Vec<String>)> {
    let d2l = TrainingConfig::d2l(config.model.image_size);
    let mut lines: Vec<(&'static str, Vec<String>)> = Vec::new();
    for setting in Setting::ALL {
        let declaration = setting.declaration();
        let (Some(heading), Some(phrase)) = (declaration.heading, declaration.report) else {
            continue;
        };
        let value = setting.value_in(config);
        if value == setting.value_in(&d2l) {
            continue;
        }
        let phrase = phrase.replace("{}", &value);
        match lines.iter_mut().find(|(h, _)| *h == heading) {
            Some((_, phrases)) => phrases.push(phrase),
            None => lines.push((heading, vec![phrase])),
        }
    }
    lines
}

/// The value named `name` among `values`, which the command line has checked it is.
fn named<T: Copy + fmt::Display>(values: &[T], name: &str) -> T {
    *values
        .iter()
        .find(|v| v.to_string() == name)
        .unwrap_or_else(|| panic!("{name} is one of the declared values"))
}

/// `n`, or `none` for no value: how optional counts show.
fn or_none<T: fmt::Display>(value: Option<T>, none: &str) -> String {
    value.map_or(none.to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests;
