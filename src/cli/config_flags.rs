//! The flags of the training settings, made from their declarations (`run::Setting`): each
//! setting's flag, help line, section, value name and parser come from its one declaration, so
//! that a setting is never spelled twice. Messages below the command line name settings by
//! their `config.json` field; [`flag`] names them here.

use std::marker::PhantomData;
use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use crate::run::{Declaration, Kind, Overrides, Setting, Value};

/// The settings a command takes as flags.
pub trait SettingList {
    /// The settings, in `--help` order.
    const SETTINGS: &'static [Setting];
}

/// Every training setting: `alexnet train`.
#[derive(Debug, Clone, Copy)]
pub struct Training;

impl SettingList for Training {
    const SETTINGS: &'static [Setting] = Setting::ALL;
}

/// The data loader's settings: `alexnet bench` times the loader with them.
#[derive(Debug, Clone, Copy)]
pub struct Loader;

impl SettingList for Loader {
    const SETTINGS: &'static [Setting] = &[
        Setting::NumWorkers,
        Setting::Augment,
        Setting::CropScale,
        Setting::PadCrop,
        Setting::JpegDraft,
    ];
}

/// The network's settings: `summary`, `bench`, `warmup` and `import` build it with them.
#[derive(Debug, Clone, Copy)]
pub struct Network;

impl SettingList for Network {
    const SETTINGS: &'static [Setting] = &[Setting::Architecture];
}

/// The flags of `L`'s settings, as the values given; a setting not given keeps the value of
/// the configuration they are applied to (d2l's, or the saved one with `--resume`).
#[derive(Debug, Clone)]
pub struct SettingFlags<L> {
    given: Overrides,
    list: PhantomData<L>,
}

/// The flags of every training setting.
pub type ConfigFlags = SettingFlags<Training>;

impl<L> SettingFlags<L> {
    /// The settings given.
    pub fn overrides(&self) -> Overrides {
        self.given.clone()
    }
}

impl<L: SettingList> Args for SettingFlags<L> {
    fn augment_args(cmd: Command) -> Command {
        L::SETTINGS
            .iter()
            .fold(cmd, |cmd, setting| cmd.arg(arg(setting.declaration())))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl<L: SettingList> FromArgMatches for SettingFlags<L> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Self {
            given: Overrides::default(),
            list: PhantomData,
        };
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for &setting in L::SETTINGS {
            if let Some(value) = given(matches, setting.declaration()) {
                self.given.set(setting, value);
            }
        }
        Ok(())
    }
}

/// The argument's id: the flag's name with underscores, as clap's derive names its fields.
fn id(declaration: &Declaration) -> String {
    declaration.flag.trim_start_matches("--").replace('-', "_")
}

/// The flag of a declared setting.
fn arg(declaration: &Declaration) -> Arg {
    let mut arg = Arg::new(id(declaration))
        .long(declaration.flag.trim_start_matches("--"))
        .help(declaration.help)
        .required(false);
    if let Some(heading) = declaration.heading {
        arg = arg.help_heading(heading);
    }
    let valued = arg
        .action(ArgAction::Set)
        .value_name(declaration.value_name());
    match declaration.kind {
        Kind::Switch => valued.action(ArgAction::SetTrue).num_args(0),
        Kind::Count => valued.value_parser(clap::value_parser!(usize)),
        Kind::Seed => valued.value_parser(clap::value_parser!(u64)),
        Kind::Number => valued
            .value_parser(clap::value_parser!(f64))
            .allow_negative_numbers(true),
        Kind::Path => valued.value_parser(clap::value_parser!(PathBuf)),
        Kind::Text => valued.value_parser(clap::value_parser!(String)),
        Kind::Choice(values) => valued.value_parser(choices(values)),
        Kind::Choices(values) => valued
            .value_parser(choices(values))
            .action(ArgAction::Append)
            .value_delimiter(','),
        Kind::Numbers => valued
            .value_parser(clap::value_parser!(f64))
            .action(ArgAction::Append)
            .value_delimiter(','),
    }
}

/// A parser of `values`, each with its line in `--help`.
fn choices(values: &'static [(&'static str, &'static str)]) -> PossibleValuesParser {
    PossibleValuesParser::new(
        values
            .iter()
            .map(|(name, help)| PossibleValue::new(*name).help(*help)),
    )
}

/// The value given for a declared setting, if it was.
fn given(matches: &ArgMatches, declaration: &Declaration) -> Option<Value> {
    let id = id(declaration);
    match declaration.kind {
        Kind::Switch => matches.get_flag(&id).then_some(Value::On),
        Kind::Count => matches.get_one::<usize>(&id).map(|n| Value::Count(*n)),
        Kind::Seed => matches.get_one::<u64>(&id).map(|n| Value::Seed(*n)),
        Kind::Number => matches.get_one::<f64>(&id).map(|x| Value::Number(*x)),
        Kind::Path => matches
            .get_one::<PathBuf>(&id)
            .map(|p| Value::Path(p.clone())),
        Kind::Text | Kind::Choice(_) => matches
            .get_one::<String>(&id)
            .map(|t| Value::Text(t.clone())),
        Kind::Choices(_) => matches
            .get_many::<String>(&id)
            .map(|names| Value::Names(names.cloned().collect())),
        Kind::Numbers => matches
            .get_many::<f64>(&id)
            .map(|x| Value::Numbers(x.copied().collect())),
    }
}

/// The flag that sets `setting`.
pub fn flag(setting: Setting) -> &'static str {
    setting.declaration().flag
}

/// [`flag`] as a [`crate::run::SettingNames`].
pub fn flag_names(setting: Setting) -> String {
    flag(setting).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        flags: ConfigFlags,
    }

    /// A value of `setting`'s kind, as it is written, that differs from d2l's.
    fn written(setting: Setting) -> Option<&'static str> {
        Some(match setting.declaration().kind {
            Kind::Switch => return None,
            Kind::Choice(values) | Kind::Choices(values) => values[1].0,
            Kind::Numbers => "0.3,0.5",
            Kind::Path | Kind::Text => "best",
            _ if setting == Setting::Epochs => "2",
            _ => "3",
        })
    }

    /// Every setting's flag exists, and giving it sets that setting and no other.
    #[test]
    fn each_flag_sets_its_setting() {
        let base = crate::run::TrainingConfig::d2l(224);
        let command = Flags::command();
        for &setting in Setting::ALL {
            let name = flag(setting).trim_start_matches("--");
            assert!(command.get_arguments().any(|a| a.get_long() == Some(name)));
            let mut args = vec!["test", flag(setting)];
            args.extend(written(setting));
            let given = Flags::try_parse_from(&args).unwrap().flags.overrides();
            assert_eq!(given.changes(&base), [setting], "{args:?}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_clap_s_error_naming_the_flag() {
        let err = Flags::try_parse_from(["test", "--lr-schedule", "bogus"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("'--lr-schedule <LR_SCHEDULE>'"), "{err}");
        assert!(
            err.contains("[possible values: constant, step, cosine]"),
            "{err}"
        );
        let negative = Flags::try_parse_from(["test", "--momentum", "-0.5"]).unwrap();
        assert!(negative.flags.overrides().given(Setting::Momentum));
    }
}
